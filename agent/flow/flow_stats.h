#pragma once

#include <atomic>
#include <cstdint>

#include "base/stats_sink.h"

namespace shadowtap::flow {

// Counters of the flow stage. Written by the capture thread only, read by any
// thread (relaxed). Identities that hold whenever ingest()/expire() is not running:
//
// Segments: every ingest() call is counted in `segments` and in exactly one of
//   segments == inOrderSegments + outOfOrderSegments + retransmitSegments
//             + tooFarSegments + beyondFinSegments + lateSegments
//             + noPayloadIgnored + controlSegments + declinedSegments
//   (a segment with payload is inOrder if any of its bytes were delivered at once,
//   else outOfOrder if any were buffered, else retransmit if any duplicated
//   bytes already delivered or buffered, else beyondFin.)
//
// Payload bytes: every captured payload byte ends up in exactly one place:
//   payloadBytes == deliveredBytes + retransmitBytes + tooFarBytes
//                   + beyondFinBytes + lateBytes + declinedBytes + outOfOrderBytes
//   where outOfOrderBytes is the gauge of bytes still buffered (0 after shutdown()).
//   gapBytes are stream bytes that were never captured, so they are not payload;
//   per flow, bytes delivered + gap bytes == the stream length reached.
//
// Flows:
//   flowsCreated == liveFlows + endedFin + endedRst + endedIdle + endedEvicted + endedShutdown
//   endedEvicted == flowsEvicted + flowsEvictedMemory
//   flowsReplaced is part of endedRst (a new SYN ended the previous connection).
//
// Gaps: gaps == gapsTimeout + gapsFlowLimit + gapsTotalLimit + gapsAtEnd.
struct FlowStats {
  // Segments by outcome.
  std::atomic<uint64_t> segments{0};
  std::atomic<uint64_t> inOrderSegments{0};
  std::atomic<uint64_t> outOfOrderSegments{0};
  std::atomic<uint64_t> retransmitSegments{0};
  std::atomic<uint64_t> tooFarSegments{0};     // > kMaxAheadBytes ahead of delivery
  std::atomic<uint64_t> beyondFinSegments{0};  // all payload after the FIN
  std::atomic<uint64_t> lateSegments{0};       // for a closed (lingering) flow
  std::atomic<uint64_t> noPayloadIgnored{0};   // no payload, no SYN, unknown flow
  std::atomic<uint64_t> controlSegments{0};    // no payload, on a live or new flow
  std::atomic<uint64_t> declinedSegments{0};   // the factory returned no consumer

  // Payload bytes by outcome.
  std::atomic<uint64_t> payloadBytes{0};
  std::atomic<uint64_t> deliveredBytes{0};
  std::atomic<uint64_t> retransmitBytes{0};  // duplicate / overlapping bytes trimmed
  std::atomic<uint64_t> tooFarBytes{0};
  std::atomic<uint64_t> beyondFinBytes{0};
  std::atomic<uint64_t> lateBytes{0};
  std::atomic<uint64_t> declinedBytes{0};

  // Gaps (holes given up), by reason.
  std::atomic<uint64_t> gaps{0};
  std::atomic<uint64_t> gapBytes{0};
  std::atomic<uint64_t> gapsTimeout{0};
  std::atomic<uint64_t> gapsFlowLimit{0};
  std::atomic<uint64_t> gapsTotalLimit{0};
  std::atomic<uint64_t> gapsAtEnd{0};  // holes still open when the flow ended

  // Flows.
  std::atomic<uint64_t> flowsCreated{0};
  std::atomic<uint64_t> flowsMidstream{0};  // created without a SYN (part of flowsCreated)
  std::atomic<uint64_t> flowsReplaced{0};   // a SYN with a new ISN ended a live flow
  std::atomic<uint64_t> flowsDeclined{0};   // the factory returned no consumer
  std::atomic<uint64_t> endedFin{0};
  std::atomic<uint64_t> endedRst{0};
  std::atomic<uint64_t> endedIdle{0};
  std::atomic<uint64_t> endedEvicted{0};
  std::atomic<uint64_t> endedShutdown{0};
  std::atomic<uint64_t> flowsEvicted{0};        // LRU, to stay within maxFlows
  std::atomic<uint64_t> flowsEvictedMemory{0};  // to stay within maxTotalBufferBytes
  std::atomic<uint64_t> closedForgotten{0};     // lingering closed flows freed on time
  std::atomic<uint64_t> closedEvicted{0};       // ... freed early to make room
  std::atomic<uint64_t> synRetransmits{0};      // SYNs of a live flow's own connection

  // Gauges.
  std::atomic<uint64_t> liveFlows{0};
  std::atomic<uint64_t> closedFlows{0};
  std::atomic<uint64_t> outOfOrderBytes{0};  // held by the reassemblers
  std::atomic<uint64_t> consumerBytes{0};    // consumers' bufferedBytes(), last seen
};

namespace detail {
// The capture thread is the only writer, so a plain load + store is enough and
// avoids a locked read-modify-write per counter on the hot path.
inline void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void drop(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}
}  // namespace detail

// The flow table's counters (reassembly, flows, gaps).
void exportStats(const FlowStats& stats, base::StatsSink& out);

}  // namespace shadowtap::flow
