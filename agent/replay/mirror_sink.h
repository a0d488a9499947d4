#pragma once

#include "model/request.h"

namespace shadowtap::replay {

// Where rewritten requests go to be mirrored: a MirrorPool in the agent and in
// `shadowtap replay`, a collector in tests.
class MirrorSink {
 public:
  virtual ~MirrorSink() = default;

  // Takes the request or drops it; never blocks. False when it was dropped
  // (and counted by the sink).
  virtual bool submit(model::Request&& request) = 0;
};

}  // namespace shadowtap::replay
