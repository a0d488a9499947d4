#include "pipeline_metrics.h"

#include <time.h>

#include <algorithm>
#include <string>

#include "base/clock.h"
#include "metrics/family_builder.h"
#include "pipeline.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap {
namespace {

using metrics::FamilyBuilder;
using metrics::Labels;
using prometheus::MetricType;

constexpr uint64_t kAliveWithinNs = 5'000'000'000ULL;  // the loop ticks every 100 ms

double v(const std::atomic<uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); }
double v(const std::atomic<int64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); }

// One family with one sample per (label value, counter).
template <typename Pairs>
prometheus::MetricFamily labelled(const std::string& name, const std::string& help, MetricType type,
                                  const std::string& label, const Pairs& pairs) {
  FamilyBuilder b(name, help, type);
  for (const auto& [value, counter] : pairs) {
    b.add(counter, {{label, value}});
  }
  return b.take();
}

prometheus::MetricFamily single(const std::string& name, const std::string& help, MetricType type, double value) {
  return FamilyBuilder(name, help, type).add(value).take();
}

std::string ago(uint64_t thenNs, uint64_t now) {
  if (thenNs == 0) {
    return "never";
  }
  return std::to_string((now - thenNs) / 1'000'000) + " ms ago";
}

}  // namespace

std::vector<prometheus::MetricFamily> PipelineMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const auto C = MetricType::Counter;
  const auto G = MetricType::Gauge;

  // Kernel program, summed over CPUs.
  const capture::KernelCounters k = p_.capture().kernelCounters();
  auto kv = [&k](int i) { return static_cast<double>(k[static_cast<size_t>(i)]); };
  out.push_back(single("shadowtap_kernel_packets_total", "Packets the capture program ran on.", C, kv(ST_CNT_SEEN)));
  out.push_back(labelled("shadowtap_kernel_packets_skipped_total", "Packets not inspected further, by reason.", C,
                         "reason",
                         std::vector<std::pair<std::string, double>>{
                             {"not_ip", kv(ST_CNT_NOT_IP)},
                             {"not_tcp", kv(ST_CNT_NOT_TCP)},
                             {"malformed", kv(ST_CNT_MALFORMED)},
                             {"ipv4_fragment", kv(ST_CNT_IP_FRAGMENT)},
                             {"ipv6_fragment", kv(ST_CNT_IPV6_FRAGMENT)},
                             {"ipv6_extension_unsupported", kv(ST_CNT_IPV6_EXT_SKIPPED)},
                             {"vlan_too_deep", kv(ST_CNT_VLAN_TOO_DEEP)},
                         }));
  out.push_back(single("shadowtap_kernel_packets_matched_total", "TCP packets to a port with a rule.", C,
                       kv(ST_CNT_MATCHED)));
  out.push_back(single("shadowtap_kernel_packets_sampled_out_total",
                       "Matched packets of connections outside the mirror percentage.", C, kv(ST_CNT_SAMPLED_OUT)));
  out.push_back(single("shadowtap_kernel_segments_copied_total", "Segments copied whole into the ring buffer.", C,
                       kv(ST_CNT_COPIED)));
  out.push_back(single("shadowtap_kernel_payload_bytes_copied_total", "Payload bytes copied into the ring buffer.", C,
                       kv(ST_CNT_COPIED_BYTES)));
  out.push_back(single("shadowtap_kernel_records_lost_total",
                       "Ring buffer records lost because the ring buffer was full.", C, kv(ST_CNT_RINGBUF_FULL)));
  out.push_back(single("shadowtap_kernel_segments_truncated_total", "Segments larger than the chunk limit.", C,
                       kv(ST_CNT_TRUNCATED)));

  // Ring buffer consumer.
  const auto& cs = p_.capture().stats();
  out.push_back(single("shadowtap_capture_records_total", "Ring buffer records read.", C, v(cs.records)));
  out.push_back(single("shadowtap_capture_bad_records_total", "Ring buffer records rejected.", C, v(cs.badRecords)));
  out.push_back(single("shadowtap_capture_interfaces", "Interfaces the capture program is attached to.", G,
                       static_cast<double>(p_.attachedInterfaces())));

  // Reassembly.
  const auto& fs = p_.flows().stats();
  out.push_back(single("shadowtap_flow_segments_total", "Segments given to reassembly.", C, v(fs.segments)));
  out.push_back(single("shadowtap_flow_payload_bytes_total", "Payload bytes given to reassembly.", C,
                       v(fs.payloadBytes)));
  out.push_back(single("shadowtap_flow_delivered_bytes_total", "Bytes delivered in order to HTTP framing.", C,
                       v(fs.deliveredBytes)));
  out.push_back(single("shadowtap_flow_retransmitted_bytes_total", "Duplicate or overlapping bytes trimmed.", C,
                       v(fs.retransmitBytes)));
  out.push_back(labelled("shadowtap_flows_started_total", "Connections tracked, by how they were first seen.", C,
                         "start",
                         std::vector<std::pair<std::string, double>>{
                             {"syn", v(fs.flowsCreated) - v(fs.flowsMidstream)}, {"midstream", v(fs.flowsMidstream)}}));
  out.push_back(labelled("shadowtap_flows_ended_total", "Connections no longer tracked, by reason.", C, "reason",
                         std::vector<std::pair<std::string, double>>{{"fin", v(fs.endedFin)},
                                                                     {"rst", v(fs.endedRst)},
                                                                     {"idle", v(fs.endedIdle)},
                                                                     {"evicted", v(fs.endedEvicted)},
                                                                     {"shutdown", v(fs.endedShutdown)}}));
  out.push_back(labelled("shadowtap_flow_gaps_total", "Sequence holes given up, by reason.", C, "reason",
                         std::vector<std::pair<std::string, double>>{{"timeout", v(fs.gapsTimeout)},
                                                                     {"flow_limit", v(fs.gapsFlowLimit)},
                                                                     {"total_limit", v(fs.gapsTotalLimit)},
                                                                     {"at_end", v(fs.gapsAtEnd)}}));
  out.push_back(single("shadowtap_flow_gap_bytes_total", "Stream bytes never captured.", C, v(fs.gapBytes)));
  out.push_back(single("shadowtap_flow_own_traffic_total",
                       "Connections declined because they are the agent's own mirror connections.", C,
                       v(p_.stats().ownTrafficSegments)));
  out.push_back(single("shadowtap_flows", "Connections tracked now.", G, v(fs.liveFlows)));
  out.push_back(single("shadowtap_flow_buffered_bytes", "Bytes held for reassembly and framing.", G,
                       v(fs.outOfOrderBytes) + v(fs.consumerBytes)));

  // HTTP framing.
  const auto& hs = p_.framers().stats();
  out.push_back(single("shadowtap_http_requests_parsed_total", "Complete requests framed.", C, v(hs.requestsParsed)));
  out.push_back(labelled("shadowtap_http_requests_skipped_total", "Requests not mirrored, by reason.", C, "reason",
                         std::vector<std::pair<std::string, double>>{
                             {"no_host", v(hs.noHost)},
                             {"multiple_host", v(hs.multipleHost)},
                             {"invalid_host", v(hs.invalidHost)},
                             {"too_large", v(hs.tooLarge)},
                             {"headers_too_large", v(hs.headersTooLarge)},
                             {"gap", v(hs.droppedByGap)},
                             {"stream_ended", v(hs.droppedAtEnd)},
                             {"connection_abandoned", v(hs.droppedByAbandon)},
                         }));
  out.push_back(labelled("shadowtap_http_connections_abandoned_total",
                         "Connections whose rest is not mirrored, by reason.", C, "reason",
                         std::vector<std::pair<std::string, double>>{
                             {"parse_error", v(hs.parseErrors)},
                             {"upgrade", v(hs.upgrade)},
                             {"connect", v(hs.connect)},
                             {"http2", v(hs.http2)},
                             {"tls", v(hs.tls)},
                             {"ambiguous_length", v(hs.ambiguousLength)},
                             {"conflicting_length", v(hs.conflictingLength)},
                             {"invalid_length", v(hs.invalidLength)},
                             {"obs_fold", v(hs.obsFold)},
                             {"bare_lf", v(hs.bareLf)},
                             {"invalid_header_name", v(hs.invalidHeaderName)},
                             {"invalid_header_value", v(hs.invalidHeaderValue)},
                             {"invalid_request_line", v(hs.invalidRequestLine)},
                             {"request_line_too_long", v(hs.requestLineTooLong)},
                         }));
  out.push_back(single("shadowtap_http_unmirrored_bytes_total",
                       "Stream bytes skipped (before a resync point, in skipped requests, after abandonment).", C,
                       v(hs.unmirroredBytes)));

  // Protocol detection and HTTP/2 decoding.
  const auto& ss = p_.sniffing();
  out.push_back(labelled("shadowtap_connections_detected_total",
                         "Client connections by the protocol their first bytes showed.", C, "protocol",
                         std::vector<std::pair<std::string, double>>{{"h2_prior_knowledge", v(ss.prefaceH2)},
                                                                     {"http1", v(ss.http1)},
                                                                     {"midstream_http1", v(ss.midstream)}}));
  out.push_back(labelled("shadowtap_h2c_upgrades_total",
                         "HTTP/1.1 requests asking for Upgrade: h2c, by what the client did next.", C, "outcome",
                         std::vector<std::pair<std::string, double>>{{"accepted", v(ss.upgradesAccepted)},
                                                                     {"declined", v(ss.upgradesDeclined)}}));
  const auto& h2s = p_.h2Decoders().stats();
  out.push_back(single("shadowtap_h2_connections_total", "HTTP/2 client connections decoded.", C,
                       v(h2s.connections)));
  out.push_back(labelled("shadowtap_h2_connections_failed_total",
                         "HTTP/2 connections whose rest was skipped, by reason.", C, "reason",
                         std::vector<std::pair<std::string, double>>{{"preface_mismatch", v(h2s.prefaceMismatch)},
                                                                     {"decode_error", v(h2s.decodeErrors)},
                                                                     {"gap", v(h2s.gaps)}}));
  out.push_back(single("shadowtap_h2_goaways_total", "GOAWAY frames sent by clients.", C, v(h2s.goaways)));
  out.push_back(single("shadowtap_h2_streams_opened_total", "Client streams that began a request.", C,
                       v(h2s.streamsOpened)));
  out.push_back(labelled("shadowtap_h2_streams_total", "Client streams by outcome.", C, "outcome",
                         std::vector<std::pair<std::string, double>>{
                             {"request", v(h2s.requests)},
                             {"reset", v(h2s.streamsReset)},
                             {"refused", v(h2s.streamsRefused)},
                             {"headers_too_large", v(h2s.streamsHeadersTooLarge)},
                             {"body_too_large", v(h2s.streamsBodyTooLarge)},
                             {"buffer_full", v(h2s.streamsBufferFull)},
                             {"malformed", v(h2s.streamsMalformed)},
                             {"abandoned", v(h2s.streamsAbandoned)},
                         }));
  out.push_back(single("shadowtap_h2_requests_with_trailers_total", "HTTP/2 requests that carried trailers.", C,
                       v(h2s.trailers)));
  out.push_back(single("shadowtap_h2_invalid_frames_total", "Frames the HTTP/2 decoder rejected.", C,
                       v(h2s.invalidFrames)));
  out.push_back(labelled("shadowtap_h2_bytes_total", "HTTP/2 connection bytes, decoded or skipped.", C, "state",
                         std::vector<std::pair<std::string, double>>{{"decoded", v(h2s.bytesDecoded)},
                                                                     {"skipped", v(h2s.bytesSkipped)}}));
  out.push_back(single("shadowtap_h2_buffered_bytes", "Bytes held by HTTP/2 streams being assembled.", G,
                       v(h2s.bufferedBytes)));

  // Per rule.
  FamilyBuilder requests("shadowtap_requests_total", "Requests framed for a rule.", C);
  FamilyBuilder notMirrored("shadowtap_requests_not_mirrored_total",
                            "Requests of a rule not handed to the mirror, by reason.", C);
  FamilyBuilder outcomes("shadowtap_mirror_requests_total",
                         "Requests handed to a rule's mirror, by final outcome.", C);
  FamilyBuilder queueDepth("shadowtap_mirror_queue_requests", "Requests waiting for the mirror.", G);
  FamilyBuilder queueBytes("shadowtap_mirror_queue_bytes", "Bytes of requests waiting for the mirror.", G);
  FamilyBuilder inFlight("shadowtap_mirror_in_flight_requests", "Requests sent and not yet answered.", G);
  FamilyBuilder connections("shadowtap_mirror_connections", "Open connections to the mirror.", G);
  FamilyBuilder latency("shadowtap_mirror_latency_seconds", "Mirror response time.", MetricType::Histogram);
  FamilyBuilder h2Requests("shadowtap_h2_requests_total", "HTTP/2 requests decoded for a rule.", C);
  FamilyBuilder grpc("shadowtap_mirror_grpc_responses_total",
                     "HTTP/2 mirror responses carrying grpc-status, by status class.", C);
  FamilyBuilder sizes("shadowtap_request_size_bytes", "Size of requests seen by a rule.", MetricType::Histogram);
  FamilyBuilder resolves("shadowtap_mirror_resolves_total", "Re-resolutions of a rule's mirror name, by result.", C);
  FamilyBuilder addressChanges("shadowtap_mirror_address_changes_total",
                               "Re-resolutions that changed a rule's mirror addresses.", C);
  {
    std::lock_guard<std::mutex> lock(p_.rulesMutex());
    for (const auto& rt : p_.rules()) {
      if (!rt) {
        continue;
      }
      const std::string id = std::to_string(rt->ruleId);
      const RuleStats& r = rt->stats;
      requests.add(v(r.requests), {{"rule", id}});
      notMirrored.add(v(r.filtered), {{"rule", id}, {"reason", "method_filtered"}});
      notMirrored.add(v(r.loopSkipped), {{"rule", id}, {"reason", "already_shadow"}});
      notMirrored.add(v(r.recordOnly), {{"rule", id}, {"reason", "record_only"}});
      h2Requests.add(v(r.h2Requests), {{"rule", id}});
      std::vector<double> bounds(RuleStats::kSizeBounds.begin(), RuleStats::kSizeBounds.end());
      std::vector<uint64_t> counts;
      for (const auto& b : r.sizeBuckets) {
        counts.push_back(b.load(std::memory_order_relaxed));
      }
      sizes.addHistogram(bounds, counts, v(r.sizeSum), {{"rule", id}});
      if (!rt->replayer) {
        outcomes.add(v(r.queued), {{"rule", id}, {"protocol", "http1"}, {"outcome", "dry_run_printed"}});
        continue;
      }
      const replay::MirrorStats& s = rt->replayer->stats();
      const std::pair<const char*, double> o[] = {
          {"response_1xx", v(s.responses1xx)},
          {"response_2xx", v(s.responses2xx)},
          {"response_3xx", v(s.responses3xx)},
          {"response_4xx", v(s.responses4xx)},
          {"response_5xx", v(s.responses5xx)},
          {"response_other", v(s.responsesOther)},
          {"connect_error", v(s.errorsConnect)},
          {"connect_timeout", v(s.errorsConnectTimeout)},
          {"reset", v(s.errorsReset)},
          {"response_timeout", v(s.errorsResponseTimeout)},
          {"bad_response", v(s.errorsBadResponse)},
          {"response_too_large", v(s.errorsResponseTooLarge)},
          {"queue_full", v(s.queueFull)},
          {"dropped_oldest", v(s.droppedOldest)},
          {"rate_limited", v(s.droppedRateLimit)},
          {"dropped_shutdown", v(s.droppedShutdown)},
      };
      for (const auto& [name, value] : o) {
        outcomes.add(value, {{"rule", id}, {"protocol", "http1"}, {"outcome", name}});
      }
      queueDepth.add(v(s.queueDepth), {{"rule", id}, {"protocol", "http1"}});
      queueBytes.add(v(s.queueBytes), {{"rule", id}, {"protocol", "http1"}});
      inFlight.add(v(s.inFlight), {{"rule", id}, {"protocol", "http1"}});
      connections.add(v(s.openConnections), {{"rule", id}, {"protocol", "http1"}});
      // HTTP/2: the pool exists from the rule's first HTTP/2 request; zeros before.
      static const replay::MirrorStats kNoPool;
      const replay::MirrorStats& q = rt->h2Pool ? rt->h2Pool->stats() : kNoPool;
      const std::pair<const char*, double> o2[] = {
          {"response_2xx", v(q.responses2xx)},
          {"response_3xx", v(q.responses3xx)},
          {"response_4xx", v(q.responses4xx)},
          {"response_5xx", v(q.responses5xx)},
          {"response_other", v(q.responsesOther) + v(q.responses1xx)},  // h2 has no response_1xx label
          {"connect_error", v(q.errorsConnect) + v(q.errorsConnectTimeout)},  // h2 has no connect_timeout label
          {"reset", v(q.errorsReset)},
          {"connection_error", v(q.errorsConnection)},
          {"response_timeout", v(q.errorsResponseTimeout)},
          {"rejected", v(q.errorsRejected)},
          {"queue_full", v(q.queueFull)},
          {"dropped_oldest", v(q.droppedOldest)},
          {"rate_limited", v(q.droppedRateLimit)},
          {"dropped_shutdown", v(q.droppedShutdown)},
          {"pool_unavailable", v(r.h2PoolUnavailable)},
      };
      for (const auto& [name, value] : o2) {
        outcomes.add(value, {{"rule", id}, {"protocol", "h2"}, {"outcome", name}});
      }
      queueDepth.add(v(q.queueDepth), {{"rule", id}, {"protocol", "h2"}});
      inFlight.add(v(q.inFlight), {{"rule", id}, {"protocol", "h2"}});
      connections.add(v(q.connectionsOpened) - v(q.connectionsClosed), {{"rule", id}, {"protocol", "h2"}});
      grpc.add(v(q.grpcOk), {{"rule", id}, {"status", "ok"}});
      grpc.add(v(q.grpcError), {{"rule", id}, {"status", "error"}});
      queueBytes.add(v(q.queueBytes), {{"rule", id}, {"protocol", "h2"}});
      resolves.add(v(q.resolves) - v(q.resolveErrors), {{"rule", id}, {"protocol", "h2"}, {"result", "ok"}});
      resolves.add(v(q.resolveErrors), {{"rule", id}, {"protocol", "h2"}, {"result", "error"}});
      addressChanges.add(v(q.addressChanges), {{"rule", id}, {"protocol", "h2"}});
      resolves.add(v(s.resolves) - v(s.resolveErrors), {{"rule", id}, {"protocol", "http1"}, {"result", "ok"}});
      resolves.add(v(s.resolveErrors), {{"rule", id}, {"protocol", "http1"}, {"result", "error"}});
      addressChanges.add(v(s.addressChanges), {{"rule", id}, {"protocol", "http1"}});
      std::vector<double> lb;
      for (uint64_t us : base::LatencyHistogram::kBoundsUs) {
        lb.push_back(static_cast<double>(us) / 1e6);
      }
      for (const auto& [proto, hist] : {std::pair<const char*, const base::LatencyHistogram*>{"http1", &s.latency},
                                        {"h2", &q.latency}}) {
        std::vector<uint64_t> lc;
        for (const auto& b : hist->buckets) {
          lc.push_back(b.load(std::memory_order_relaxed));
        }
        latency.addHistogram(lb, lc, v(hist->sumUs) / 1e6, {{"rule", id}, {"protocol", proto}});
      }
    }
  }
  for (FamilyBuilder* b : {&requests, &notMirrored, &outcomes, &queueDepth, &queueBytes, &inFlight, &connections,
                           &latency, &sizes, &h2Requests, &grpc, &resolves, &addressChanges}) {
    out.push_back(b->take());
  }
  if (const compare::CompareEngine* engine = p_.compareEngine()) {
    const compare::CompareStats& cs = engine->stats();
    // Per rule and endpoint (method + path template); equal + different + noisy = compared.
    FamilyBuilder exchanges("shadowtap_compare_exchanges_total",
                            "Compared exchanges (primary vs mirror response) by rule, endpoint and result.", C);
    cs.forEachEndpoint([&](uint32_t rule, const std::string& endpoint, const compare::CompareCounters& c) {
      const std::string id = std::to_string(rule);
      exchanges.add(v(c.equal), {{"rule", id}, {"endpoint", endpoint}, {"result", "equal"}});
      exchanges.add(v(c.different), {{"rule", id}, {"endpoint", endpoint}, {"result", "different"}});
      exchanges.add(v(c.noisy), {{"rule", id}, {"endpoint", endpoint}, {"result", "noisy"}});
    });
    out.push_back(exchanges.take());
    // Every exchange begun ends compared or in one of these.
    out.push_back(labelled("shadowtap_compare_exchanges_uncompared_total",
                           "Exchanges begun but not compared, by reason.", C, "reason",
                           std::vector<std::pair<std::string, double>>{{"no_primary", v(cs.noPrimary)},
                                                                       {"no_mirror", v(cs.noMirror)},
                                                                       {"expired", v(cs.expired)},
                                                                       {"queue_full", v(cs.queueFull)}}));
    out.push_back(single("shadowtap_compare_exchanges_begun_total", "Exchanges begun (requests of compared rules).",
                         C, v(cs.exchanges)));
    out.push_back(single("shadowtap_compare_exchanges_refused_total",
                         "Requests of compared rules not compared: too many exchanges pending.", C, v(cs.refused)));
    out.push_back(single("shadowtap_compare_exchanges_pending", "Exchanges waiting for responses.", G, v(cs.pending)));
    out.push_back(single("shadowtap_compare_response_segments_total",
                         "Response segments of the primary (egress capture) reassembled for comparison.", C,
                         v(p_.stats().responseSegments)));
    if (const compare::ResponsePairing* pairing = p_.responsePairing()) {
      const compare::PairingStats& ps = pairing->stats();
      out.push_back(labelled("shadowtap_compare_response_streams_total",
                             "Primary response streams (egress) by the protocol their first bytes showed.", C,
                             "protocol",
                             std::vector<std::pair<std::string, double>>{{"http1", v(ps.streamsHttp1)},
                                                                         {"h2", v(ps.streamsH2)}}));
      const h2::H2ResponseStats& hs = pairing->h2Stats();
      out.push_back(labelled("shadowtap_compare_h2_response_streams_total",
                             "HTTP/2 primary response streams decoded for comparison, by outcome.", C, "outcome",
                             std::vector<std::pair<std::string, double>>{{"response", v(hs.responses)},
                                                                         {"reset", v(hs.reset)},
                                                                         {"evicted", v(hs.evicted)},
                                                                         {"malformed", v(hs.malformedStreams)},
                                                                         {"abandoned", v(hs.abandoned)}}));
      out.push_back(labelled("shadowtap_compare_h2_response_connections_failed_total",
                             "HTTP/2 primary response streams whose decoding stopped early, by reason.", C, "reason",
                             std::vector<std::pair<std::string, double>>{{"bad_preface", v(hs.badPreface)},
                                                                         {"hpack_error", v(hs.hpackErrors)},
                                                                         {"frame_too_large", v(hs.frameTooLarge)},
                                                                         {"other_decode_error",
                                                                          std::max(0.0, v(hs.decodeErrors) -
                                                                                            v(hs.badPreface) -
                                                                                            v(hs.hpackErrors) -
                                                                                            v(hs.frameTooLarge))},
                                                                         {"gap", v(hs.gaps)}}));
    }
    const capture::KernelCounters k = p_.capture().kernelCounters();
    out.push_back(single("shadowtap_kernel_egress_segments_copied_total",
                         "Response segments copied by the egress program (compare mode).", C,
                         static_cast<double>(k[ST_CNT_EGRESS_COPIED])));
    if (const compare::DiffWriter* w = p_.diffWriter()) {
      out.push_back(single("shadowtap_compare_diff_lines_total", "Differing pairs written to --compare-output.", C,
                           v(w->stats().lines)));
    }
  }
  if (const record::RecordWriter* rec = p_.recorder()) {
    const record::RecordStats& w = rec->stats();
    out.push_back(labelled("shadowtap_record_items_total",
                           "Requests (HAR, JSON lines) or segments (pcap) given to the recorder, by outcome.", C,
                           "outcome",
                           std::vector<std::pair<std::string, double>>{{"written", v(w.written)},
                                                                       {"dropped_queue_full", v(w.dropped)},
                                                                       {"malformed", v(w.malformed)},
                                                                       {"write_error", v(w.writeErrors)}}));
    out.push_back(single("shadowtap_record_bytes_written_total", "Bytes written to recording files.", C,
                         v(w.bytesWritten)));
    out.push_back(single("shadowtap_record_redacted_values_total", "Header and query values redacted.", C,
                         v(w.redactedValues)));
    out.push_back(single("shadowtap_record_rotations_total", "Recording files closed by size or time.", C,
                         v(w.rotations)));
    out.push_back(single("shadowtap_record_files_deleted_total", "Oldest recording files removed for the disk cap.",
                         C, v(w.filesDeleted)));
    out.push_back(single("shadowtap_record_disk_bytes", "Bytes in recording files now.", G, v(w.diskBytes)));
    out.push_back(single("shadowtap_record_queue_items", "Records waiting for the writer thread.", G, v(w.queueDepth)));
  }
  return out;
}

metrics::HealthStatus PipelineMetrics::live() const {
  const uint64_t now = base::monotonicNs();
  const uint64_t turned = p_.lastLoopTurnNs();
  const bool ok = turned != 0 && now - turned < kAliveWithinNs;
  return {ok, "capture loop turned " + ago(turned, now)};
}

metrics::HealthStatus PipelineMetrics::ready() const {
  const uint64_t now = base::monotonicNs();
  const size_t attached = p_.attachedInterfaces();
  const uint64_t consumed = p_.lastConsumeNs();
  const bool fresh = consumed != 0 && now - consumed < kAliveWithinNs;
  std::string detail = "attached to " + std::to_string(attached) + " interface(s); ring buffer read " +
                       ago(consumed, now);
  return {attached > 0 && fresh, detail};
}

}  // namespace shadowtap
