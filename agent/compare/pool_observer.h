#pragma once

#include <cstdint>

#include "compare/compare_engine.h"
#include "replay/response_observer.h"

namespace shadowtap::compare {

// What a mirror pool reports about compared requests, handed to the engine as
// one part of their exchanges: one observer for the pools to the mirror
// (Part::kMirror), one for those to the secondary (Part::kSecondary).
class PoolObserver final : public replay::ResponseObserver {
 public:
  PoolObserver(CompareEngine& engine, Part part) : engine_(engine), part_(part) {}

  void onResponse(uint64_t exchangeId, model::Response&& response) override {
    engine_.onResponse(exchangeId, part_, std::move(response));
  }
  void onMissing(uint64_t exchangeId) override { engine_.onMissing(exchangeId, part_); }

 private:
  CompareEngine& engine_;
  const Part part_;
};

}  // namespace shadowtap::compare
