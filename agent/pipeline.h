#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "base/frozen_stats.h"
#include "capture/capture.h"
#include "compare/compare_engine.h"
#include "compare/diff_writer.h"
#include "compare/pool_observer.h"
#include "compare/response_pairing.h"
#include "config.h"
#include "flow/flow_table.h"
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
#include "rule_runtime.h"
#include "worker.h"

namespace shadowtap {

class PipelineHealth;

// The one place that wires the stages: capture -> workers (flow -> http ->
// rule: filter, rewrite -> replay, one mirror pool per rule and worker) and
// the shared sinks (recorder, compare engine). The calling thread (run())
// takes signals, follows interfaces, reloads and reports; each worker has its
// own thread reading its own ring buffer (worker.h).
class Pipeline {
 public:
  // Where the segments come from: by default the kernel capture
  // (capture::Capture::open, which loads and attaches the programs); tests and
  // benchmarks give a synthetic source and drive the real pipeline without BPF.
  using SourceFactory =
      std::function<std::unique_ptr<capture::SegmentSource>(const capture::CaptureOptions&, std::string* error)>;
  // Builds every stage and attaches. nullptr and *error set on failure.
  static std::unique_ptr<Pipeline> create(const Config& config, std::string* error, SourceFactory source = {});
  ~Pipeline();

  // Runs until SIGINT/SIGTERM (which the caller has blocked in every thread).
  // Returns the process exit code.
  int run();
  // What run() does after SIGTERM: detach, drain the workers and the mirrors,
  // the final summary. For callers that do not run() (tests, benchmarks).
  // Idempotent: a second call does nothing.
  void stop();

  // Where SIGHUP gets the new configuration from (main re-reads the flags and
  // the --config file). Only the rules are reloaded: a rule unchanged in every
  // setting keeps its mirror connections; added rules start, removed ones drain.
  // The names are resolved here, on the calling thread; the workers take the
  // new rules snapshot at their next batch.
  using ConfigSource = std::function<std::optional<Config>(std::string* error)>;
  void setReloadSource(ConfigSource source) { reloadSource_ = std::move(source); }
  void reload();

  // Every stage's counters (the registry /metrics and /stats serve).
  metrics::Snapshot counters() const { return registry_.collect(); }
  // The summary lines (summary.h) on the log, each prefixed; and, with
  // --stats-file, the stats dump written to it.
  void report(const char* prefix) const;

  // The current rules, every worker's runtime of each. Exporters hold
  // rulesMutex() while they look at a runtime's HTTP/2 pools.
  std::shared_ptr<const RuleSet> rules() const { return snapshot_.load(); }
  std::mutex& rulesMutex() const { return rulesMutex_; }
  // Under rulesMutex(): every worker's runtime of the rules a reload removed
  // whose pools still drain or whose runtimes a worker still holds; and what
  // the ones let go of counted, by rule id (at most kRemovedRulesKept rules).
  const std::vector<std::shared_ptr<RuleRuntime>>& retiredRules() const { return retired_; }
  const std::map<uint32_t, base::FrozenStats>& removedRuleCounters() const { return removedRules_; }
  static constexpr size_t kRemovedRulesKept = 256;
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  const capture::SegmentSource& source() const { return *source_; }
  const record::RecordWriter* recorder() const { return recorder_.get(); }
  // Compare mode (null when no rule compares).
  const compare::CompareEngine* compareEngine() const { return engine_.get(); }
  const compare::DiffWriter* diffWriter() const { return diffWriter_.get(); }

  // For /healthz and /readyz: when the slowest of the control loop and the
  // workers' loops last turned, when the ring buffer least recently read was
  // read (CLOCK_MONOTONIC ns), and how many interfaces are attached.
  uint64_t lastLoopTurnNs() const;
  uint64_t lastConsumeNs() const;
  size_t attachedInterfaces() const { return attached_.load(std::memory_order_relaxed); }

 private:
  explicit Pipeline(const Config& config);
  // A mirror's pool options from its settings and the flags, before the
  // split over the workers.
  // The rule's runtime in every worker (one resolution of its names, each
  // worker's share of its limits); empty and *error set on failure.
  std::vector<std::shared_ptr<RuleRuntime>> makeRuntimes(const rules::Rule& rule, uint32_t ruleId,
                                                         std::string* error);
  // The pools of the rule's mirror `mirror` in every worker's runtime (its
  // name resolved once, each worker's share of its limits, one rate limiter
  // for all); false and *error set on failure.
  bool makeMirrorPools(const rules::Rule& rule, size_t mirror, bool compared,
                       std::vector<std::shared_ptr<RuleRuntime>>& runtimes, std::string* error);
  // Starts the rule's HTTP/1 pools in one worker (every mirror's, the secondary's).
  static bool startPools(RuleRuntime& rt);
  static std::vector<capture::PortRule> portRules(const RuleSet& set);
  // A reload's rules (pipeline_reload.cc): the current set with the kept
  // rules' runtimes and the added rules' new ones; false and *error set when
  // an added rule cannot be made.
  struct NextRules {
    std::shared_ptr<RuleSet> set;
    std::vector<bool> kept;  // by index of the current set
    size_t keptCount = 0;
    std::vector<std::vector<std::shared_ptr<RuleRuntime>>> added;  // each: the rule in every worker
  };
  bool nextRules(const Config& next, const RuleSet& current, NextRules& out, std::string* error);
  // The compared rule of `current` that `rule` (compare=true, changed by a
  // reload) continues: same port and dst; 0 for none.
  uint32_t comparedPredecessor(const RuleSet& current, const rules::Rule& rule) const;
  // A current rule that `out` neither keeps nor removes outright (an added
  // rule has its port and destination) gets that rule as its successor.
  static void linkSuccessors(const RuleSet& current, NextRules& out);
  // The control loop until SIGINT/SIGTERM (false when it cannot run), its
  // 100 ms housekeeping, a signal (false: stop), and the orderly stop.
  bool controlLoop();
  void tick(uint64_t nowNs);
  bool onSignal(int signalFd);
  void shutdown();
  bool setUpCompare(std::string* error);
  bool setUpRecorder(std::string* error);
  WorkerShared workerShared(uint32_t worker);
  capture::CaptureOptions captureOptions(const RuleSet& set) const;
  // Every pool of the rules' runtimes, HTTP/2 ones included (under the rules mutex).
  std::vector<replay::MirrorPool*> poolsOf(const std::vector<std::shared_ptr<RuleRuntime>>& runtimes) const;
  // A reload's rules to the workers and the kernel; false (logged) when the
  // kernel refused them, the current rules published again.
  bool installRules(const NextRules& nr, const std::shared_ptr<const RuleSet>& current);
  // The added rules' pools of a reload that was refused: stopped at once.
  static void stopAdded(const NextRules& nr);
  // A reload's removed rules, once their pools stopped draining and no worker
  // holds their runtimes: counters frozen (removedRules_), pools freed,
  // drain threads joined. Control thread (tick, reload).
  void pruneRetired();
  void finishCompare();

  Config config_;
  uint32_t workerCount_ = 1;
  replay::LocalEndpoints localEndpoints_;
  // Compare mode. Declared before the rules (whose replayers report to the
  // engine) and before the workers (whose response framers do), so it
  // outlives both.
  std::unique_ptr<compare::DiffWriter> diffWriter_;
  std::unique_ptr<compare::CompareEngine> engine_;
  // What the rules' pools to the mirror and to the secondary report to the engine.
  std::unique_ptr<compare::PoolObserver> mirrorObserver_;
  std::unique_ptr<compare::PoolObserver> secondaryObserver_;
  std::unique_ptr<record::RecordWriter> recorder_;  // --record; null when off
  mutable std::mutex rulesMutex_;
  RuleSnapshot snapshot_;
  ConfigSource reloadSource_;
  // Guarded by rulesMutex_ (the exporters read them); changed on the control thread.
  std::vector<std::shared_ptr<RuleRuntime>> retired_;  // removed by a reload, draining
  std::map<uint32_t, base::FrozenStats> removedRules_;
  std::vector<std::thread> retiring_;      // a reload's drains, each one pool's stop()
  std::atomic<size_t> retiringLeft_{0};  // of them, still draining
  bool shutDown_ = false;  // shutdown() ran (stop() and run() may both ask)
  std::unique_ptr<capture::SegmentSource> source_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint64_t> loopTurnNs_{0};
  uint64_t nextSummaryNs_ = 0;  // control thread only
  std::atomic<size_t> attached_{0};
  // Declared last: stopped first, before anything it reads goes away.
  metrics::Registry registry_;
  std::unique_ptr<PipelineHealth> health_;
  std::unique_ptr<metrics::MetricsServer> metricsServer_;
};

}  // namespace shadowtap
