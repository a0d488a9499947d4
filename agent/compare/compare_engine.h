#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "compare/comparator.h"
#include "compare/compare_stats.h"
#include "compare/diff_writer.h"
#include "model/response.h"
#include "http/response_framer.h"

namespace shadowtap::compare {

struct EngineOptions {
  size_t maxPending = 16384;                 // exchanges waiting for responses
  uint64_t pendingTimeoutNs = 30'000'000'000ULL;  // then expired (counted)
  size_t queueCapacity = 1024;               // complete exchanges waiting for the comparison thread
  size_t maxEndpoints = 1024;                // counters per endpoint (all rules together)
  // Bytes of responses kept (pending and queued exchanges together): a
  // response that would go over is not kept, its part counted missing
  // (CompareStats::overMemory). Without it 16,384 pending exchanges of three
  // 1 MiB bodies could hold 48 GiB.
  uint64_t maxHeldBytes = 256ULL << 20;
};

// What a kept response holds: its body (as kept) and header fields (name,
// value and a field's overhead, as HTTP/2 counts it).
uint64_t heldBytes(const model::Response& response);

// Which response of an exchange.
enum class Part : uint8_t { kPrimary = 0, kMirror = 1, kSecondary = 2 };

// Joins the three responses to one request, which come from different threads
// in any order: the primary's (capture thread, from ResponsePairing), the
// mirror's and the secondary's (replay threads). Complete exchanges are
// compared by the rule's Comparator on the engine's own thread (start()), or
// inline in the calling thread when the engine was not started (tests); results
// are counted in stats() and differing pairs go to the DiffWriter.
//
// Every begun exchange ends in exactly one CompareStats outcome. Each part must
// be reported at most once, as a response or as missing. All methods except
// start()/stop() are thread-safe and never block on a comparison.
class CompareEngine {
 public:
  // `comparators[i]` serves rule i + 1 (nullptr: rule not compared). `writer`
  // may be null; it must outlive the engine.
  CompareEngine(const EngineOptions& options, std::vector<std::unique_ptr<Comparator>> comparators,
                DiffWriter* writer);
  ~CompareEngine();
  CompareEngine(const CompareEngine&) = delete;
  CompareEngine& operator=(const CompareEngine&) = delete;

  bool start();
  // Compares what is queued, then joins the thread. Pending exchanges stay pending.
  void stop();

  // Starts an exchange; returns its id (> 0), or 0 when it cannot be compared
  // (rule not compared, maxPending reached: counted in `refused`). With
  // `withSecondary` the exchange waits for a secondary response as well.
  uint64_t begin(uint32_t ruleId, std::string method, std::string target, bool withSecondary, uint64_t nowNs);
  // Whether rule `ruleId` has a comparator: a rule of the start, or one a
  // reload changed that took over its predecessor's (adopt()); a rule a reload
  // added has none.
  bool compares(uint32_t ruleId) const;
  // Rule `ruleId`, made by a reload, continues compared rule `predecessor`
  // (the same traffic, changed settings): it is compared with the
  // predecessor's comparator and the noise it learned. `predecessor` 0 (or
  // not compared) takes a reused id's earlier adoption back. Control thread.
  void adopt(uint32_t ruleId, uint32_t predecessor);
  void onResponse(uint64_t id, Part part, model::Response&& response);
  // The part's response will never come.
  void onMissing(uint64_t id, Part part);
  // Periodic: exchanges older than pendingTimeoutNs are given up (expired).
  void expire(uint64_t nowNs);

  // Adapters for the framers: ResponsePairing(engine.sink(Part::kPrimary)),
  // or a http::ResponseFramer over a mirror connection's bytes.
  http::ResponseSink& sink(Part part) { return sinks_[static_cast<size_t>(part)]; }

  const CompareStats& stats() const { return stats_; }
  // Noisy fields remembered for an endpoint of a rule (for tests and debugging;
  // call when the engine is idle or stopped).
  std::vector<std::string> noisyPaths(uint32_t ruleId, const std::string& endpoint) const;

 private:
  enum class PartState : uint8_t { kWaiting, kHave, kMissing };
  struct Exchange {
    uint32_t ruleId = 0;
    std::string method;
    std::string target;
    uint64_t beganNs = 0;
    uint32_t comparatorId = 0;   // the rule whose comparator compares it (an adopted rule's predecessor)
    bool withSecondary = false;  // the rule has a secondary: its response is expected
    PartState state[3] = {PartState::kWaiting, PartState::kWaiting, PartState::kWaiting};
    model::Response response[3];
    uint64_t held = 0;  // heldBytes() of the responses kept
  };
  class PartSink final : public http::ResponseSink {
   public:
    PartSink() = default;
    void bind(CompareEngine* engine, Part part) {
      engine_ = engine;
      part_ = part;
    }
    void onResponse(uint64_t id, model::Response&& response) override { engine_->onResponse(id, part_, std::move(response)); }
    void onNoResponse(uint64_t id, http::NoResponse) override { engine_->onMissing(id, part_); }

   private:
    CompareEngine* engine_ = nullptr;
    Part part_ = Part::kPrimary;
  };

  void resolve(uint64_t id, Part part, PartState state, model::Response* response);
  // The rule whose comparator serves `ruleId` (itself unless adopted); 0 for
  // none. Under mutex_.
  uint32_t comparatorOf(uint32_t ruleId) const;
  // The exchange's kept responses are let go of (under mutex_).
  void release(const Exchange& ex);
  void compareNow(Exchange& ex);
  void run();

  const EngineOptions options_;
  std::vector<std::unique_ptr<Comparator>> comparators_;
  DiffWriter* writer_;
  CompareStats stats_;
  PartSink sinks_[3];
  std::atomic<uint64_t> nextId_{1};

  mutable std::mutex mutex_;
  std::unordered_map<uint32_t, uint32_t> adopted_;  // a reload's changed rule -> its comparator's rule
  std::unordered_map<uint64_t, Exchange> pending_;
  std::deque<Exchange> queue_;
  uint64_t held_ = 0;  // sum of the pending and queued exchanges' `held`
  std::condition_variable cv_;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
  // Comparators keep noise memory: one comparison at a time.
  mutable std::mutex compareMutex_;
};

}  // namespace shadowtap::compare
