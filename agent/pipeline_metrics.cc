#include "pipeline_metrics.h"

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/counters.h"
#include "compare/compare_metrics.h"
#include "flow/flow_stats.h"
#include "h2/decoder_metrics.h"
#include "http/http_stats.h"
#include "pipeline.h"
#include "record/record_stats.h"

namespace shadowtap {
namespace {

using base::Labels;
using base::StatsSink;

constexpr uint64_t kAliveWithinNs = 5'000'000'000ULL;  // the loop ticks every 100 ms

double v(const std::atomic<uint64_t>& a) { return static_cast<double>(base::load(a)); }
double v(const std::atomic<int64_t>& a) { return static_cast<double>(base::load(a)); }

std::string ago(uint64_t thenNs, uint64_t now) {
  if (thenNs == 0) {
    return "never";
  }
  return std::to_string((now - thenNs) / 1'000'000) + " ms ago";
}

// The labels of one mirror's samples: the rule's, and for a rule with several
// mirrors the mirror's target (a rule with one keeps the labels it always had).
Labels mirrorLabels(const RuleRuntime& rt, size_t mirror) {
  Labels l = {{"rule", std::to_string(rt.ruleId)}};
  if (rt.mirrors.size() > 1) {
    l.emplace_back("mirror", rt.mirrors[mirror].spec.target);
  }
  return l;
}

Labels with(Labels l, std::string key, std::string value) {
  l.emplace_back(std::move(key), std::move(value));
  return l;
}

// The rule's labels, once per rule and mirror (a gauge: exported again it would add up).
void exportRuleInfo(const RuleRuntime& rt, StatsSink& out) {
  static constexpr const char* kHostModes[] = {"suffix", "keep", "literal"};
  static constexpr const char* kSampleModes[] = {"connection", "request", "header"};
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    const rules::MirrorSpec& m = rt.mirrors[i].spec;
    Labels l = {{"rule", std::to_string(rt.ruleId)},
                {"port", std::to_string(rt.rule.port)},
                {"target", m.target},
                {"host_mode", kHostModes[static_cast<int>(m.hostMode)]},
                {"sample", kSampleModes[static_cast<int>(rt.rule.sampleMode)]}};
    if (rt.mirrors.size() > 1) {
      l.emplace_back("mirror", m.target);
    }
    out.gauge("shadowtap_rule_info",
              "Always 1: the rule's port, mirror target and modes, to label dashboards by (one per mirror).", 1, l);
  }
}

// One worker's routing decisions for the rule (router, recorder-only, dry
// run), by mirror, and its request sizes; the registry adds up the workers'.
void exportRuleRequests(const RuleRuntime& rt, StatsSink& out) {
  const Labels rule = {{"rule", std::to_string(rt.ruleId)}};
  const RuleStats& r = rt.stats;
  out.counter("shadowtap_requests_total", "Requests framed for a rule.", v(r.requests), rule);
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    const MirrorCounters& m = rt.mirrors[i].stats;
    out.counters("shadowtap_requests_not_mirrored_total",
                 "Requests of a rule not handed to the mirror (each of its mirrors), by reason.", "reason",
                 {{"method_filtered", v(m.filtered)},
                  {"already_shadow", v(r.loopSkipped)},
                  {"sampled_out", v(m.sampledOut)},
                  {"record_only", v(r.recordOnly)},
                  {"streamed_elsewhere", v(m.streamedElsewhere)}},
                 mirrorLabels(rt, i));
  }
  out.counter("shadowtap_h2_requests_total", "HTTP/2 requests decoded for a rule.", v(r.h2Requests), rule);
  out.counter("shadowtap_compare_streamed_skipped_total",
              "Streamed requests (over --max-request-mib) of a compared rule: mirrored, not compared.",
              v(r.streamedNotCompared), rule);
  std::vector<double> bounds(RuleStats::kSizeBounds.begin(), RuleStats::kSizeBounds.end());
  std::vector<uint64_t> counts;
  for (const auto& b : r.sizeBuckets) {
    counts.push_back(base::load(b));
  }
  out.histogram("shadowtap_request_size_bytes", "Size of requests seen by a rule.", bounds, counts, v(r.sizeSum),
                rule);
}

void exportLatency(const Labels& l, const base::LatencyHistogram& hist, StatsSink& out) {
  std::vector<double> bounds;
  for (uint64_t us : base::LatencyHistogram::kBoundsUs) {
    bounds.push_back(static_cast<double>(us) / 1e6);
  }
  std::vector<uint64_t> counts;
  for (const auto& b : hist.buckets) {
    counts.push_back(base::load(b));
  }
  out.histogram("shadowtap_mirror_latency_seconds", "Mirror response time.", bounds, counts, v(hist.sumUs) / 1e6, l);
}

constexpr std::string_view kOutcomes = "shadowtap_mirror_requests_total";
constexpr std::string_view kOutcomesHelp = "Requests handed to a rule's mirror, by final outcome.";

// The adaptive pool size (issue 21): its bounds, what Little's law wants, growth and shrinking.
void exportPoolSize(const replay::MirrorStats& s, const Labels& l, StatsSink& out) {
  for (const auto& [bound, value] : {std::pair{"floor", v(s.connectionsFloor)}, std::pair{"max", v(s.connectionsMax)}}) {
    Labels bl = l;
    bl.push_back({"bound", bound});
    out.gauge("shadowtap_mirror_connections_limit", "Connections to the mirror opened on demand (floor) and at most (max).",
              value, bl);
  }
  out.gauge("shadowtap_mirror_in_flight_wanted_requests",
            "Requests in flight the pool sizes itself for (arrival rate x mirror latency, Little's law; 0: no latency yet).",
            v(s.inFlightWanted), l);
  out.counter("shadowtap_mirror_connect_attempts_total",
              "Connects to the mirror attempted (one refused for want of a descriptor included).", v(s.connectAttempts),
              l);
  out.counter("shadowtap_mirror_growth_holds_total",
              "Times the pool stopped growing after refused or timed-out connects or a response timeout.",
              v(s.growthHolds), l);
  out.counter("shadowtap_mirror_growth_saturated_total",
              "Times the pool stopped growing because more connections did not raise the mirror's answers a second "
              "(the mirror is at its capacity).",
              v(s.growthSaturated), l);
  out.counters("shadowtap_mirror_connections_closed_idle_total",
               "Connections to the mirror closed for having nothing to do, by reason.", "reason",
               {{"idle", v(s.idleClosed)}, {"surplus", v(s.surplusClosed)}}, l);
  out.counter("shadowtap_mirror_no_descriptors_total",
              "Connections to the mirror not opened for want of a file descriptor.", v(s.noDescriptors), l);
}

// What both protocols' mirrors export beside their outcomes (one MirrorStats
// each); `l` has the rule's (and mirror's) labels and the protocol.
void exportMirrorState(const Labels& l, const replay::MirrorStats& s, StatsSink& out) {
  out.gauge("shadowtap_mirror_queue_requests", "Requests waiting for the mirror.", v(s.queueDepth), l);
  out.gauge("shadowtap_mirror_queue_bytes", "Bytes of requests waiting for the mirror.", v(s.queueBytes), l);
  out.gauge("shadowtap_mirror_in_flight_requests", "Requests sent and not yet answered.", v(s.inFlight), l);
  out.gauge("shadowtap_mirror_connections", "Open connections to the mirror.", v(s.openConnections), l);
  exportPoolSize(s, l, out);
  out.counters("shadowtap_mirror_resolves_total", "Re-resolutions of a rule's mirror name, by result.", "result",
               {{"ok", v(s.resolvesOk)}, {"error", v(s.resolveErrors)}}, l);
  out.counter("shadowtap_mirror_address_changes_total", "Re-resolutions that changed a rule's mirror addresses.",
              v(s.addressChanges), l);
  exportLatency(l, s.latency, out);
}

void exportHttp1Mirror(const Labels& mirror, const replay::MirrorStats& s, StatsSink& out) {
  const Labels l = with(mirror, "protocol", "http1");
  out.counters(kOutcomes, kOutcomesHelp, "outcome",
               {
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
                   {"aborted_gap", v(s.abortedGap)},
                   {"aborted_capture", v(s.abortedCapture)},
                   {"aborted_window", v(s.abortedWindow)},
               },
               l);
  out.counters("shadowtap_mirror_streamed_requests_total",
               "Streamed requests (over --max-request-mib) on mirror connections, by progress.", "stage",
               {{"head_sent", v(s.streamsStarted)}, {"body_sent", v(s.streamsSent)}}, mirror);
  exportMirrorState(l, s, out);
}

void exportH2Mirror(const Labels& mirror, const replay::MirrorStats& q, const MirrorCounters& m, StatsSink& out) {
  const Labels l = with(mirror, "protocol", "h2");
  out.counters(kOutcomes, kOutcomesHelp, "outcome",
               {
                   {"response_2xx", v(q.responses2xx)},
                   {"response_3xx", v(q.responses3xx)},
                   {"response_4xx", v(q.responses4xx)},
                   {"response_5xx", v(q.responses5xx)},
                   {"response_other", v(q.responsesOther) + v(q.responses1xx)},  // h2 has no response_1xx label
                   {"connect_error", v(q.errorsConnect) + v(q.errorsConnectTimeout)},  // nor connect_timeout
                   {"reset", v(q.errorsReset)},
                   {"connection_error", v(q.errorsConnection)},
                   {"response_timeout", v(q.errorsResponseTimeout)},
                   {"rejected", v(q.errorsRejected)},
                   {"queue_full", v(q.queueFull)},
                   {"dropped_oldest", v(q.droppedOldest)},
                   {"rate_limited", v(q.droppedRateLimit)},
                   {"dropped_shutdown", v(q.droppedShutdown)},
                   {"pool_unavailable", v(m.h2PoolUnavailable)},
               },
               l);
  out.counters("shadowtap_mirror_grpc_responses_total", "HTTP/2 mirror responses carrying grpc-status, by status class.",
               "status", {{"ok", v(q.grpcOk)}, {"error", v(q.grpcError)}}, mirror);
  exportMirrorState(l, q, out);
}

void exportRules(const Pipeline& p, StatsSink& out) {
  const std::shared_ptr<const RuleSet> set = p.rules();
  std::lock_guard<std::mutex> lock(p.rulesMutex());
  for (size_t w = 0; w < set->perWorker.size(); ++w) {
    for (const auto& rt : set->perWorker[w]) {
      if (!rt) {
        continue;  // removed by a reload: below
      }
      if (w == 0) {
        exportRuleInfo(*rt, out);
      }
      exportRuleCounters(*rt, out);
    }
  }
  // Rules a reload removed, while their pools drain, then what they counted:
  // a removal never takes counts back.
  for (const auto& rt : p.retiredRules()) {
    exportRuleCounters(*rt, out);
  }
  for (const auto& [ruleId, frozen] : p.removedRuleCounters()) {
    frozen.replay(out);
  }
}

// What each worker read from its ring and did with it, by worker (the only
// per-worker labels: everything else is the workers' sum).
void exportWorkers(const Pipeline& p, StatsSink& out) {
  out.gauge("shadowtap_workers", "Worker threads, each with its own ring buffer and flows.",
            static_cast<double>(p.workers().size()));
  for (const auto& w : p.workers()) {
    const Labels l = {{"worker", std::to_string(w->index())}};
    out.counter("shadowtap_worker_segments_total", "Records a worker read from its ring buffer.",
                v(w->stats().segments), l);
    out.counter("shadowtap_worker_batches_total", "Reads of a worker's ring buffer that found records.",
                v(w->stats().batches), l);
    out.counter("shadowtap_worker_requests_total", "Requests a worker decoded (HTTP/1 and HTTP/2).",
                v(w->stats().requests) + v(w->stats().h2Requests), l);
  }
  uint64_t unknown = 0;
  for (const auto& w : p.workers()) {
    unknown += base::load(w->stats().unknownRule);
  }
  out.counter("shadowtap_requests_unknown_rule_total",
              "Requests of a rule no longer installed (removed by a reload while its connection was open), not mirrored.",
              static_cast<double>(unknown));
}

// What an HTTP/2 pool not started yet (the first request starts it) counts: zeros.
const replay::MirrorStats kNoPool;

// Compare mode's secondary: its own names, so that the mirrors' totals stay the mirrors'.
void exportSecondary(const RuleRuntime& rt, StatsSink& out) {
  if (!rt.secondary) {
    return;
  }
  const replay::MirrorStats* pools[] = {&rt.secondary->stats(), rt.h2SecondaryPool ? &rt.h2SecondaryPool->stats() : nullptr};
  for (size_t i = 0; i < 2; ++i) {
    const replay::MirrorStats& s = pools[i] ? *pools[i] : kNoPool;
    // HTTP/2: also the requests for which no pool to the secondary could be started.
    const double dropped = v(s.queueFull) + v(s.droppedOldest) + v(s.droppedRateLimit) + v(s.droppedShutdown) +
                           (i == 1 ? v(rt.stats.h2SecondaryUnavailable) : 0.0);
    out.counters("shadowtap_compare_secondary_requests_total",
                 "Requests sent to compare mode's secondary, by protocol and outcome (error: no response; dropped: "
                 "never sent, a full queue, the rate limit, shutdown or no HTTP/2 pool).",
                 "outcome",
                 {{"response", v(s.responses)},
                  {"error", static_cast<double>(s.errors() + s.aborted())},
                  {"dropped", dropped}},
                 {{"rule", std::to_string(rt.ruleId)}, {"protocol", i == 0 ? "http1" : "h2"}});
  }
}

}  // namespace

void exportRuleCounters(const RuleRuntime& rt, StatsSink& out) {
  exportRuleRequests(rt, out);
  exportSecondary(rt, out);
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    const MirrorRuntime& m = rt.mirrors[i];
    const Labels l = mirrorLabels(rt, i);
    if (!m.replayer) {
      out.counter(kOutcomes, kOutcomesHelp, v(m.stats.queued),
                  with(with(l, "protocol", "http1"), "outcome", "dry_run_printed"));
      continue;
    }
    exportHttp1Mirror(l, m.replayer->stats(), out);
    // HTTP/2: the pool exists from the worker's first HTTP/2 request to the mirror; zeros before.
    exportH2Mirror(l, m.h2Pool ? m.h2Pool->stats() : kNoPool, m.stats, out);
  }
}

void registerExporters(const Pipeline& p, metrics::Registry& registry) {
  registry.add([&p](StatsSink& out) {
    p.source().exportStats(p.compareEngine() != nullptr, out);
  });
  registry.add([&p](StatsSink& out) { exportWorkers(p, out); });
  // Each worker's stages under the same names: the registry adds them up.
  registry.add([&p](StatsSink& out) {
    for (const auto& w : p.workers()) {
      flow::exportStats(w->flows().stats(), out);
      out.counter("shadowtap_flow_own_traffic_total",
                  "Connections declined because they are the agent's own mirror connections.",
                  v(w->stats().ownTrafficSegments));
    }
  });
  registry.add([&p](StatsSink& out) {
    for (const auto& w : p.workers()) {
      http::exportStats(w->framers().stats(), out);
      h2::exportStats(w->sniffing(), w->h2Decoders().stats(), out);
    }
  });
  registry.add([&p](StatsSink& out) { exportRules(p, out); });
  registry.add([&p](StatsSink& out) {
    if (const compare::CompareEngine* engine = p.compareEngine()) {
      uint64_t responseSegments = 0;
      for (const auto& w : p.workers()) {
        responseSegments += base::load(w->stats().responseSegments);
      }
      compare::exportStats(*engine, nullptr, p.diffWriter(), responseSegments, out);
      for (const auto& w : p.workers()) {
        if (const compare::ResponsePairing* pairing = w->responsePairing()) {
          compare::exportPairing(*pairing, out);
        }
      }
    }
  });
  registry.add([&p](StatsSink& out) {
    if (const record::RecordWriter* rec = p.recorder()) {
      rec->exportStats(out);  // the Kafka recorder adds its own
    }
  });
}

metrics::HealthStatus PipelineHealth::live() const {
  const uint64_t now = base::monotonicNs();
  const uint64_t turned = p_.lastLoopTurnNs();
  const bool ok = turned != 0 && now - turned < kAliveWithinNs;
  return {ok, "capture loop turned " + ago(turned, now)};  // the slowest of the control loop and the workers
}

metrics::HealthStatus PipelineHealth::ready() const {
  const uint64_t now = base::monotonicNs();
  const size_t attached = p_.attachedInterfaces();
  const uint64_t consumed = p_.lastConsumeNs();
  const bool fresh = consumed != 0 && now - consumed < kAliveWithinNs;
  std::string detail = "attached to " + std::to_string(attached) + " interface(s); ring buffer read " +
                       ago(consumed, now);
  return {attached > 0 && fresh, detail};
}

}  // namespace shadowtap
