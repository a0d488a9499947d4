#pragma once

#include "replay/replay_job.h"

namespace shadowtap::replay {

// Where the capture thread hands rewritten requests (the Replayer in the agent,
// a collector in tests and benchmarks).
class JobSink {
 public:
  virtual ~JobSink() = default;

  // Takes the job or drops it; never blocks. Returns false when the job was
  // dropped (and counted by the sink).
  virtual bool submit(ReplayJob&& job) = 0;
};

}  // namespace shadowtap::replay
