#pragma once

// pipeline_bench's last stage: the real Pipeline (Pipeline::create from a
// parsed command line, workers, routers, mirror pools, the metrics registry)
// fed by a synthetic segment source, mirroring to an HTTP/1 sink on loopback in
// the same process. What the agent carries end to end, and the CPU it spends
// per mirrored request (the process's CPU less the producer's and the sink's
// threads), without BPF, root or namespaces.
#include <cstdint>
#include <vector>

#include "flow/segment.h"

namespace shadowtap::bench {

// A segment of a synthetic capture; `endsRequest`: the last one of a request.
struct AgentSegment {
  flow::Segment segment;  // payload points into the caller's buffer
  bool endsRequest = false;
};

struct AgentRun {
  double seconds = 0;        // first segment pushed to last answer
  uint64_t answered = 0;     // requests the sink answered
  uint64_t lost = 0;         // handed to the mirror and not answered (any outcome but a response)
  double agentCpuSeconds = 0;
};

// Pushes `segments` in order, holding back while more than `window` requests
// are pushed and not yet answered (so the figure is what the agent carries, not
// how fast a queue overflows); waits for `requests` answers (at most 30 s).
AgentRun runAgent(const std::vector<AgentSegment>& segments, uint64_t requests, uint32_t workers, uint64_t window);

}  // namespace shadowtap::bench
