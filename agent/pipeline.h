#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "compare/compare_engine.h"
#include "compare/diff_writer.h"
#include "compare/pool_observer.h"
#include "compare/response_pairing.h"
#include "config.h"
#include "flow/flow_table.h"
#include "model/request.h"
#include "h2/protocol_sniffer.h"
#include "model/request.h"
#include "http/request_framer.h"
#include "metrics/metrics_server.h"
#include "metrics/registry.h"
#include "record/record_writer.h"
#include "replay/local_endpoints.h"
#include "replay/mirror_pool.h"
#include "rules/router.h"
#include "rules/rule.h"

namespace shadowtap {

class PipelineHealth;

// Request-level outcomes decided between framing and the replay queue, over
// all rules.
struct PipelineStats {
  std::atomic<uint64_t> requests{0};       // complete requests out of the framer
  std::atomic<uint64_t> h2Requests{0};     // complete requests out of the HTTP/2 decoders
  std::atomic<uint64_t> unknownRule{0};    // carried a rule id we did not install (a bug if ever non-zero)
  std::atomic<uint64_t> ownTrafficSegments{0};  // segments of our own mirror connections, never reassembled
  // Compare mode: response segments (egress capture) into the response flow
  // table, and those of our own mirror connections, skipped.
  std::atomic<uint64_t> responseSegments{0};
  std::atomic<uint64_t> ownResponseSegments{0};
};

// Per-rule request outcomes before the replayer: every request of the rule
// (HTTP/1 and HTTP/2 alike) is exactly one of filtered, loopSkipped, sampledOut, recordOnly,
// submitted (whose outcome the replayer's or the HTTP/2 pool's stats
// then give; submitted = queued + dropped by submit).
struct RuleStats {
  // Sizes of the requests the rule saw, for the request size histogram.
  static constexpr std::array<uint64_t, 8> kSizeBounds = {256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304};
  std::array<std::atomic<uint64_t>, kSizeBounds.size() + 1> sizeBuckets{};  // not cumulative; last is +Inf
  std::atomic<uint64_t> sizeSum{0};
  void observeSize(uint64_t size) {
    size_t b = 0;
    while (b < kSizeBounds.size() && size > kSizeBounds[b]) {
      ++b;
    }
    sizeBuckets[b].fetch_add(1, std::memory_order_relaxed);
    sizeSum.fetch_add(size, std::memory_order_relaxed);
  }

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> filtered{0};     // method not in the rule's allow-list
  std::atomic<uint64_t> loopSkipped{0};  // already a shadow (the router's loop guard): never mirrored twice
  std::atomic<uint64_t> sampledOut{0};   // not in the rule's share of requests (sample=request|header)
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> queued{0};       // taken by the replayer's queue
  std::atomic<uint64_t> dropped{0};      // refused by submit (queue full, rate limit, shutdown)

  // HTTP/2 (counted in the fields above too).
  std::atomic<uint64_t> h2Requests{0};
  std::atomic<uint64_t> recordOnly{0};        // the rule has no mirror: captured for --record only
  std::atomic<uint64_t> h2PoolUnavailable{0};  // submitted, but no HTTP/2 pool could be started (dropped)
};

// One installed rule with its router, its mirror pools (per rule, hence per
// target, with the rule's own limits; one per protocol) and its counters.
struct RuleRuntime {
  rules::Rule rule;
  uint32_t ruleId = 0;
  rules::Router router;
  std::unique_ptr<replay::MirrorPool> replayer;  // HTTP/1 to the mirror; null in dry-run mode
  std::unique_ptr<model::RequestSink> dryRun;  // only in dry-run mode
  // HTTP/2 requests go to their own pool of h2c (prior knowledge) connections
  // to the same target, started on the rule's first HTTP/2 request (so a
  // mirror that never sees HTTP/2 never gets an h2c connection). Set on the
  // capture thread under the pipeline's rules mutex; other threads read it
  // under that mutex.
  std::unique_ptr<replay::MirrorPool> h2Pool;
  std::vector<sockaddr_storage> mirrorAddrs;  // resolved when the rule was made
  bool h2PoolFailed = false;                  // start() failed once: not retried
  // Compare mode: exchanges begun for this rule's requests (HTTP/1 and HTTP/2)
  // go to the engine; the secondary (rule.secondary) gets the same requests,
  // HTTP/2 ones on a pool of its own, made like h2Pool.
  bool compared = false;
  std::unique_ptr<replay::MirrorPool> secondary;
  std::unique_ptr<replay::MirrorPool> h2SecondaryPool;
  std::vector<sockaddr_storage> secondaryAddrs;
  bool h2SecondaryFailed = false;
  RuleStats stats;

  RuleRuntime(rules::Rule r, uint32_t id) : rule(std::move(r)), ruleId(id), router(rule) {}
};

// The one place that wires the stages: capture -> flow -> http -> rule
// (filter, rewrite, transform) -> replay (one replayer per rule).
// Runs the capture side on the calling thread; each replayer has its own.
class Pipeline : public capture::SegmentSink, public model::RequestSink {
 public:
  // Builds every stage and attaches. nullptr and *error set on failure.
  static std::unique_ptr<Pipeline> create(const Config& config, std::string* error);
  ~Pipeline() override;

  // Runs until SIGINT/SIGTERM (which the caller has blocked in every thread).
  // Returns the process exit code.
  int run();

  // Where SIGHUP gets the new configuration from (main re-reads the flags and
  // the --config file). Only the rules are reloaded: a rule unchanged in every
  // setting keeps its mirror connections; added rules start, removed ones drain.
  using ConfigSource = std::function<std::optional<Config>(std::string* error)>;
  void setReloadSource(ConfigSource source) { reloadSource_ = std::move(source); }
  void reload();

  void onSegment(const flow::Segment& segment) override;
  // Every decoded request, HTTP/1 or HTTP/2: the rule's router, then the
  // recorder, the dry-run printer or the rule's mirror (and compare).
  void onRequest(model::Request&& request) override;

  // Every stage's counters (the registry /metrics and /stats serve).
  metrics::Snapshot counters() const { return registry_.collect(); }
  // The summary lines (summary.h) on the log, each prefixed; and, with
  // --stats-file, the stats dump written to it.
  void report(const char* prefix) const;

  const PipelineStats& stats() const { return stats_; }
  // Rules by id - 1 (null where a rule was removed by a reload). Threads other
  // than the capture thread hold rulesMutex() while they look.
  const std::vector<std::unique_ptr<RuleRuntime>>& rules() const { return rules_; }
  std::mutex& rulesMutex() const { return rulesMutex_; }
  const capture::Capture& capture() const { return *capture_; }
  const flow::FlowTable& flows() const { return *flows_; }
  const http::RequestFramerFactory& framers() const { return sniffers_->framers(); }
  const record::RecordWriter* recorder() const { return recorder_.get(); }
  const h2::H2StreamDecoderFactory& h2Decoders() const { return sniffers_->decoders(); }
  const h2::SnifferStats& sniffing() const { return sniffers_->stats(); }
  // Compare mode (null/absent when no rule compares).
  const compare::CompareEngine* compareEngine() const { return engine_.get(); }
  const compare::ResponsePairing* responsePairing() const { return pairing_.get(); }
  const flow::FlowTable* responseFlows() const { return responseFlows_.get(); }
  const compare::DiffWriter* diffWriter() const { return diffWriter_.get(); }

  // For /healthz and /readyz: when the capture loop last turned and last read
  // the ring buffer (CLOCK_MONOTONIC ns), and how many interfaces are attached.
  uint64_t lastLoopTurnNs() const { return loopTurnNs_.load(std::memory_order_relaxed); }
  uint64_t lastConsumeNs() const { return consumeNs_.load(std::memory_order_relaxed); }
  size_t attachedInterfaces() const { return attached_.load(std::memory_order_relaxed); }

 private:
  // Declines flows that are our own connections to a mirror (a mirror on the
  // same node and port as the primary), so they are never reassembled.
  class OwnTrafficFilter : public flow::StreamConsumerFactory {
   public:
    OwnTrafficFilter(flow::StreamConsumerFactory& inner, const replay::LocalEndpoints& endpoints,
                     std::atomic<uint64_t>& declined)
        : inner_(inner), endpoints_(endpoints), declined_(declined) {}
    std::unique_ptr<flow::StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                                 bool fromStart) override;

   private:
    flow::StreamConsumerFactory& inner_;
    const replay::LocalEndpoints& endpoints_;
    std::atomic<uint64_t>& declined_;
  };

  explicit Pipeline(const Config& config);
  std::unique_ptr<RuleRuntime> makeRuntime(const rules::Rule& rule, uint32_t ruleId, std::string* error);
  // The rule's HTTP/2 pool to the mirror (kMirror) or the secondary
  // (kSecondary), started on first use; null when it cannot be started.
  replay::MirrorPool* h2PoolFor(RuleRuntime& rt, compare::Part part);
  static std::vector<capture::PortRule> portRules(const std::vector<const RuleRuntime*>& runtimes);

  bool setUpCompare(std::string* error);
  // Begins the exchange of a request of a compared rule and registers it for
  // pairing; its id, or 0 when it is not compared.
  uint64_t beginCompared(RuleRuntime& rt, const model::Request& request);
  void sendHttp1(RuleRuntime& rt, model::Request&& request);
  void sendHttp2(RuleRuntime& rt, model::Request&& request);
  void finishCompare();

  Config config_;
  replay::LocalEndpoints localEndpoints_;
  // Compare mode. Declared before the rules (whose replayers report to the
  // engine) and before the response flow table (whose framers do), so it
  // outlives both.
  std::unique_ptr<compare::DiffWriter> diffWriter_;
  std::unique_ptr<compare::CompareEngine> engine_;
  // What the rules' pools to the mirror and to the secondary report to the engine.
  std::unique_ptr<compare::PoolObserver> mirrorObserver_;
  std::unique_ptr<compare::PoolObserver> secondaryObserver_;
  std::vector<std::unique_ptr<RuleRuntime>> rules_;  // index = ruleId - 1
  // HTTP/1 framers and HTTP/2 decoders behind the protocol sniffers.
  std::unique_ptr<h2::ProtocolSnifferFactory> sniffers_;
  std::unique_ptr<OwnTrafficFilter> ownTraffic_;
  std::unique_ptr<flow::FlowTable> flows_;
  // Compare mode: the primary's responses, reassembled per connection and
  // paired with the requests by order.
  std::unique_ptr<compare::ResponsePairing> pairing_;
  std::unique_ptr<flow::FlowTable> responseFlows_;
  std::unique_ptr<capture::Capture> capture_;
  PipelineStats stats_;
  std::unique_ptr<record::RecordWriter> recorder_;  // --record; null when off
  mutable std::mutex rulesMutex_;
  ConfigSource reloadSource_;
  std::vector<std::unique_ptr<RuleRuntime>> retired_;  // removed by a reload, draining
  std::vector<std::thread> retiring_;
  std::atomic<uint64_t> loopTurnNs_{0};
  std::atomic<uint64_t> consumeNs_{0};
  std::atomic<size_t> attached_{0};
  // Declared last: stopped first, before anything it reads goes away.
  metrics::Registry registry_;
  std::unique_ptr<PipelineHealth> health_;
  std::unique_ptr<metrics::MetricsServer> metricsServer_;
};

}  // namespace shadowtap
