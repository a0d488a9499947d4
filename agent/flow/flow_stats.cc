#include "flow/flow_stats.h"

#include "base/counters.h"

namespace shadowtap::flow {

void exportStats(const FlowStats& fs, base::StatsSink& out) {
  auto v = [](const auto& a) { return static_cast<double>(base::load(a)); };
  out.counter("shadowtap_flow_segments_total", "Segments given to reassembly.", v(fs.segments));
  out.counter("shadowtap_flow_payload_bytes_total", "Payload bytes given to reassembly.", v(fs.payloadBytes));
  out.counter("shadowtap_flow_delivered_bytes_total", "Bytes delivered in order to HTTP framing.",
              v(fs.deliveredBytes));
  out.counter("shadowtap_flow_retransmitted_bytes_total", "Duplicate or overlapping bytes trimmed.",
              v(fs.retransmitBytes));
  out.counters("shadowtap_flows_started_total", "Connections tracked, by how they were first seen.", "start",
               {{"syn", v(fs.flowsCreated) - v(fs.flowsMidstream)}, {"midstream", v(fs.flowsMidstream)}});
  out.counters("shadowtap_flows_ended_total", "Connections no longer tracked, by reason.", "reason",
               {{"fin", v(fs.endedFin)},
                {"rst", v(fs.endedRst)},
                {"idle", v(fs.endedIdle)},
                {"evicted", v(fs.endedEvicted)},
                {"shutdown", v(fs.endedShutdown)}});
  out.counters("shadowtap_flow_gaps_total", "Sequence holes given up, by reason.", "reason",
               {{"timeout", v(fs.gapsTimeout)},
                {"flow_limit", v(fs.gapsFlowLimit)},
                {"total_limit", v(fs.gapsTotalLimit)},
                {"at_end", v(fs.gapsAtEnd)}});
  out.counter("shadowtap_flow_gap_bytes_total", "Stream bytes never captured.", v(fs.gapBytes));
  out.gauge("shadowtap_flows", "Connections tracked now.", v(fs.liveFlows));
  out.gauge("shadowtap_flow_buffered_bytes", "Bytes held for reassembly and framing.",
            v(fs.outOfOrderBytes) + v(fs.consumerBytes));
}

}  // namespace shadowtap::flow
