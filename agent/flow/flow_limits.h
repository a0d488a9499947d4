#pragma once

#include <cstddef>
#include <cstdint>

namespace shadowtap::flow {

// Every bound of the flow stage. Whatever is cut off by a limit is counted in
// FlowStats; nothing is dropped silently.
struct FlowLimits {
  // Flows tracked at once (live + lingering closed). A new flow beyond it makes
  // room by forgetting the oldest closed flow, else by evicting the least
  // recently used live flow (its consumer gets onEnd(kEvicted)).
  size_t maxFlows = 65536;
  // Out-of-order payload bytes held per flow; beyond it the first hole becomes a gap.
  size_t maxFlowBufferBytes = 4 << 20;
  // Out-of-order pieces held per flow, because many tiny pieces cost more than
  // their payload; beyond it the first hole becomes a gap.
  size_t maxFlowBufferSegments = 4096;
  // Out-of-order bytes of all flows plus every consumer's bufferedBytes(). Beyond
  // it the flows holding the most out-of-order bytes give up their holes first;
  // if consumers alone are over it, the flow whose consumer holds most is evicted.
  size_t maxTotalBufferBytes = 256 << 20;
  // A live flow with no segment for this long ends with kIdle.
  uint64_t idleTimeoutNs = 60'000'000'000;
  // A hole whose oldest waiting segment (or FIN) is this old is given up (a gap).
  uint64_t gapTimeoutNs = 1'000'000'000;
  // A flow ended by FIN or RST is remembered this long, so that late
  // retransmissions are ignored instead of starting a mid-stream flow.
  uint64_t closedLingerNs = 5'000'000'000;
};

// A segment starting further than this ahead of the delivery point is taken
// for garbage (or a sequence number from another connection) and dropped.
inline constexpr uint64_t kMaxAheadBytes = uint64_t{1} << 30;

}  // namespace shadowtap::flow
