#include "pipeline.h"

#include <sched.h>
#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include "base/clock.h"
#include "base/counters.h"
#include "base/cpu_limit.h"
#include "base/fd.h"
#include "http/host_rewrite.h"
#include "pipeline_metrics.h"
#include "pipeline_options.h"
#include "summary.h"
#include "worker_share.h"

namespace shadowtap {
namespace {

constexpr uint64_t kTickNs = 100'000'000;  // housekeeping every 100 ms

std::vector<uint16_t> ports(const std::vector<rules::Rule>& rules) {
  std::vector<uint16_t> out;
  for (const auto& r : rules) {
    if (std::find(out.begin(), out.end(), r.port) == out.end()) {
      out.push_back(r.port);
    }
  }
  return out;
}

// The CPUs this process may run on (its affinity mask: a container's cpuset).
unsigned usableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return static_cast<unsigned>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// How many workers run and why; a CPU limit that starves explicit workers is
// worth a warning (each worker wants about a CPU at full load).
void logWorkers(const Config& config, uint32_t workers, unsigned cores, std::optional<double> cpuLimit,
                uint64_t ringBytes) {
  const std::string why = config.workers != 0 ? "--workers"
                          : cpuLimit          ? "--workers auto: a quarter of the cores, 1 to 4, "
                                                "at most one per CPU of the limit"
                                              : "--workers auto: a quarter of the cores, 1 to 4";
  const std::string limit = cpuLimit ? fmt::format(", CPU limit {:g}", *cpuLimit) : "";
  spdlog::info("{} worker{} ({}; {} usable core{}{}), each with its own ring buffer of {} KiB", workers,
               workers > 1 ? "s" : "", why, cores, cores > 1 ? "s" : "", limit, ringBytes >> 10);
  if (config.workers != 0 && cpuLimit && workers > std::max(1.0, *cpuLimit)) {
    spdlog::warn("--workers {} under a CPU limit of {:g}: the workers share that much CPU time; raise the "
                 "limit (limits.cpu) or use --workers auto",
                 workers, *cpuLimit);
  }
}

}  // namespace

Pipeline::Pipeline(const Config& config) : config_(config) {}

Pipeline::~Pipeline() {
  // Detach first so the kernel stops copying, then let the stages go in order.
  if (source_) {
    source_->detach();
  }
  for (auto& w : workers_) {
    w->stop();
  }
  // A reload's draining pools, when the pipeline ends without shutdown() (an
  // error out of run(), a test that fails before stop()).
  for (auto& t : retiring_) {
    t.join();
  }
}

std::unique_ptr<Pipeline> Pipeline::create(const Config& config, std::string* error, SourceFactory source) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline(config));
  const unsigned cores = usableCores();
  const std::optional<double> cpuLimit = base::cpuLimitCores();
  p->workerCount_ = config.workers != 0 ? config.workers : autoWorkers(cores, cpuLimit);
  // Before the rules: their replayers report mirror responses to the engine.
  if (!p->setUpCompare(error)) {
    return nullptr;
  }
  auto set = std::make_shared<RuleSet>();
  set->generation = 1;
  set->perWorker.resize(p->workerCount_);
  for (size_t i = 0; i < config.rules.size(); ++i) {
    auto runtimes = p->makeRuntimes(config.rules[i], static_cast<uint32_t>(i + 1), error);
    if (runtimes.empty()) {
      return nullptr;
    }
    for (uint32_t w = 0; w < p->workerCount_; ++w) {
      set->perWorker[w].push_back(std::move(runtimes[w]));
    }
  }
  p->snapshot_.publish(set);

  const capture::CaptureOptions co = p->captureOptions(*set);
  if (source) {
    p->source_ = source(co, error);
  } else {
    p->source_ = capture::Capture::open(co, error);
  }
  if (!p->source_) {
    return nullptr;
  }
  for (const auto& rt : set->perWorker.front()) {
    spdlog::info("rule {}: {}", rt->ruleId, rt->rule.describe());
  }
  for (const auto& mine : set->perWorker) {
    for (const auto& rt : mine) {
      if (!startPools(*rt)) {
        *error = "cannot start the replay event loop for rule '" + rt->rule.text + "' (see the log above)";
        return nullptr;
      }
    }
  }
  if (!p->setUpRecorder(error)) {
    return nullptr;
  }
  for (uint32_t w = 0; w < p->workerCount_; ++w) {
    p->workers_.push_back(std::make_unique<Worker>(w, p->workerShared(w)));
  }
  for (uint32_t w = 0; w < p->workerCount_; ++w) {
    if (!p->workers_[w]->start(p->source_->feed(w))) {
      *error = "cannot start worker " + std::to_string(w) + " (see the log above)";
      return nullptr;
    }
  }
  if (config.tls) {
    spdlog::info("--tls: reading the OpenSSL plaintext of processes that map {} (uprobes)",
                 p->source_->tlsLibrary());
  }
  logWorkers(config, p->workerCount_, cores, cpuLimit, capture::ringBytesPerWorker(co.ringBufferBytes, p->workerCount_));
  p->attached_ = p->source_->attachedInterfaces().size();
  p->loopTurnNs_ = base::monotonicNs();
  registerExporters(*p, p->registry_);
  if (config.metricsAddress != "off") {
    p->health_ = std::make_unique<PipelineHealth>(*p);
    p->metricsServer_ = metrics::MetricsServer::start(config.metricsAddress, *p->health_, p->registry_, error);
    if (!p->metricsServer_) {
      return nullptr;
    }
    spdlog::info("serving /metrics, /healthz and /readyz on {}", config.metricsAddress);
  }
  // Tests and scripts wait for this line.
  const size_t n = config.rules.size();
  spdlog::info("mirroring TCP port{} {} on {} ({} rule{}, host suffix '{}')", n > 1 ? "s" : "",
               fmt::join(ports(config.rules), ","), fmt::join(config.interfaces, ","), n, n > 1 ? "s" : "",
               config.shadowSuffix);
  return p;
}

capture::CaptureOptions Pipeline::captureOptions(const RuleSet& set) const {
  uint32_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
    seed = static_cast<uint32_t>(base::monotonicNs());
  }
  return captureOptionsOf(config_, portRules(set), workerCount_, seed);
}

WorkerShared Pipeline::workerShared(uint32_t worker) {
  WorkerShared ws;
  ws.workers = workerCount_;
  ws.rules = &snapshot_;
  ws.rulesMutex = &rulesMutex_;
  ws.localEndpoints = &localEndpoints_;
  ws.engine = engine_.get();
  ws.mirrorObserver = mirrorObserver_.get();
  ws.secondaryObserver = secondaryObserver_.get();
  ws.recorder = recorder_.get();
  ws.framerLimits = framerLimitsOf(config_);
  ws.h2Limits = h2LimitsOf(config_);
  ws.flowLimits = splitFlowLimits(flowLimitsOf(config_), workerCount_, worker);
  return ws;
}

bool Pipeline::setUpRecorder(std::string* error) {
  const Config& config = config_;
  if (!config.recordPath.empty()) {
    record::RecordOptions ro;
    ro.path = config.recordPath;
    if (auto format = record::formatFromPath(ro.path)) {
      ro.format = *format;
    }
    if (std::string why = record::applyRedactSpec(config.recordRedact, ro); !why.empty()) {
      *error = why;
      return false;
    }
    ro.keepBodies = config.recordBodies;
    ro.pcapUnredacted = config.recordPcapUnredacted;
    ro.maxFileBytes = config.recordMaxFileMiB << 20;
    ro.maxTotalBytes = config.recordMaxTotalMiB << 20;
    ro.rotateSeconds = config.recordRotateSeconds;
    ro.kafka.acks = config.recordKafkaAcks;
    ro.kafka.compression = config.recordKafkaCompression;
    ro.kafka.clientId = config.recordKafkaClientId;
    for (const std::string& opt : config.recordKafkaOpts) {
      if (std::string why = record::parseKafkaProperty(opt, ro.kafka); !why.empty()) {
        *error = why;
        return false;
      }
    }
    ro.kafka.drainTimeoutMs = config.drainTimeoutMs;
    recorder_ = record::makeRecordWriter(std::move(ro), error);
    if (!recorder_) {
      return false;
    }
    spdlog::info("recording captured {} to {}", recorder_->wantsSegments() ? "segments" : "requests",
                 config.recordPath);
  }
  return true;
}

bool Pipeline::setUpCompare(std::string* error) {
  const bool any = std::any_of(config_.rules.begin(), config_.rules.end(),
                               [](const rules::Rule& r) { return r.compare && r.hasMirror(); });
  if (!any || config_.dryRun) {
    return true;
  }
  compare::CompareOptions co;
  co.ignoreHeaders = config_.compareIgnoreHeaders;
  co.ignorePaths = config_.compareIgnorePaths;
  // One comparator per rule id (index id - 1): each keeps its own noise memory.
  std::vector<std::unique_ptr<compare::Comparator>> comparators;
  for (const rules::Rule& r : config_.rules) {
    if (!r.compare || !r.hasMirror()) {
      comparators.push_back(nullptr);
      continue;
    }
    std::string why;
    auto c = compare::Comparator::create(co, &why);
    if (!c) {
      *error = "--compare-ignore-path: " + why;
      return false;
    }
    comparators.push_back(std::move(c));
  }
  if (!config_.compareOutput.empty()) {
    diffWriter_ = compare::DiffWriter::open(config_.compareOutput, compare::DiffWriterOptions{}, error);
    if (!diffWriter_) {
      return false;
    }
  }
  engine_ = std::make_unique<compare::CompareEngine>(engineOptionsOf(config_), std::move(comparators),
                                                     diffWriter_.get());
  if (!engine_->start()) {
    *error = "cannot start the comparison thread";
    return false;
  }
  mirrorObserver_ = std::make_unique<compare::PoolObserver>(*engine_, compare::Part::kMirror);
  secondaryObserver_ = std::make_unique<compare::PoolObserver>(*engine_, compare::Part::kSecondary);
  spdlog::info("comparing responses of the rules with compare=true{}",
               config_.compareOutput.empty() ? std::string() : "; differences go to " + config_.compareOutput);
  return true;
}

void Pipeline::finishCompare() {
  if (!engine_) {
    return;
  }
  // Every stream has ended (the workers expired their pairings) and every
  // replayer stopped: each part of each exchange has been reported; whatever
  // is still pending is given up.
  engine_->stop();
  engine_->expire(UINT64_MAX);
  const compare::CompareStats& s = engine_->stats();
  if (diffWriter_) {
    diffWriter_->writeSummary(s);
  }
}

std::vector<capture::PortRule> Pipeline::portRules(const RuleSet& set) {
  std::vector<capture::PortRule> out;
  if (set.perWorker.empty()) {
    return out;
  }
  for (const auto& rt : set.perWorker.front()) {
    if (!rt) {
      continue;
    }
    capture::PortRule pr;
    pr.port = rt->rule.port;
    pr.ruleId = rt->ruleId;
    pr.sampleBp = rt->rule.kernelSampleBasisPoints();
    pr.destination = rt->rule.dst;
    pr.compare = rt->compared;  // the kernel then also copies this rule's responses
    out.push_back(pr);
  }
  return out;
}

uint64_t Pipeline::lastLoopTurnNs() const {
  uint64_t oldest = loopTurnNs_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) {
    oldest = std::min(oldest, w->lastLoopTurnNs());
  }
  return oldest;
}

uint64_t Pipeline::lastConsumeNs() const {
  uint64_t oldest = UINT64_MAX;
  for (const auto& w : workers_) {
    oldest = std::min(oldest, w->lastConsumeNs());
  }
  return oldest == UINT64_MAX ? 0 : oldest;
}

int Pipeline::run() {
  if (!controlLoop()) {
    return 1;
  }
  shutdown();
  return 0;
}

bool Pipeline::controlLoop() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  base::Fd sfd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  base::Fd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  base::Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (sfd.get() < 0 || tfd.get() < 0 || ep.get() < 0) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return false;
  }
  itimerspec its{};
  its.it_interval.tv_nsec = static_cast<long>(kTickNs);
  its.it_value.tv_nsec = static_cast<long>(kTickNs);
  timerfd_settime(tfd.get(), 0, &its, nullptr);
  // The workers read the rings; this thread follows interfaces, takes
  // signals, expires pending comparisons and writes the summaries.
  const int interfacesFd = source_->interfacesFd();
  for (int fd : {interfacesFd, sfd.get(), tfd.get()}) {
    if (fd < 0) {
      continue;  // a source that follows no interfaces
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
      return false;
    }
  }
  nextSummaryNs_ = base::monotonicNs() + uint64_t(config_.summaryIntervalSec) * 1'000'000'000ULL;
  loopTurnNs_ = base::monotonicNs();
  for (;;) {
    epoll_event events[4];
    int n = epoll_wait(ep.get(), events, 4, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      return false;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == interfacesFd) {
        source_->followInterfaces();
        attached_.store(source_->attachedInterfaces().size(), std::memory_order_relaxed);
      } else if (fd == tfd.get()) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(tfd.get(), &expirations, sizeof(expirations));
        tick(base::monotonicNs());
      } else if (fd == sfd.get() && !onSignal(sfd.get())) {
        return true;
      }
    }
  }
}

void Pipeline::tick(uint64_t now) {
  loopTurnNs_.store(now, std::memory_order_relaxed);
  attached_.store(source_->attachedInterfaces().size(), std::memory_order_relaxed);
  if (engine_) {
    engine_->expire(now);
  }
  pruneRetired();
  if (config_.summaryIntervalSec != 0 && now >= nextSummaryNs_) {
    report("");
    nextSummaryNs_ = now + uint64_t(config_.summaryIntervalSec) * 1'000'000'000ULL;
  }
}

bool Pipeline::onSignal(int sfd) {
  signalfd_siginfo si{};
  if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
    return true;
  }
  if (si.ssi_signo == SIGHUP) {
    spdlog::info("received SIGHUP, reloading the configuration");
    reload();
    return true;
  }
  spdlog::info("received {}, stopping", strsignal(static_cast<int>(si.ssi_signo)));
  return false;
}

void Pipeline::stop() { shutdown(); }

void Pipeline::shutdown() {
  if (shutDown_) {
    return;  // the final summary and compare output are written once
  }
  shutDown_ = true;
  // Stop the kernel side first; each worker takes what is already in its ring
  // and ends its streams; then the mirrors get their drain time.
  source_->detach();
  for (auto& w : workers_) {
    w->stop();
  }
  // Drain the recorder and the rules' replayers in parallel: each gets the
  // full drain time.
  std::vector<std::thread> stoppers;
  if (recorder_) {
    // Every framed request is in: HAR gets its closing brackets, Kafka its flush.
    stoppers.emplace_back([this] { recorder_->close(); });
  }
  const std::shared_ptr<const RuleSet> set = snapshot_.load();
  const auto drain = std::chrono::milliseconds(config_.drainTimeoutMs);
  for (const auto& mine : set->perWorker) {
    for (replay::MirrorPool* pool : poolsOf(mine)) {
      stoppers.emplace_back([pool, drain] { pool->stop(drain); });
    }
  }
  for (auto& t : stoppers) {
    t.join();
  }
  for (auto& t : retiring_) {
    t.join();
  }
  retiring_.clear();
  // A removed rule's HTTP/2 pool that a worker started after the rule's drain
  // began (rare: a worker still on the old rules) went on sending while the
  // others drained: it stops now.
  std::vector<std::shared_ptr<RuleRuntime>> retired;
  {
    std::lock_guard<std::mutex> lock(rulesMutex_);
    retired = retired_;
  }
  for (replay::MirrorPool* pool : poolsOf(retired)) {
    pool->stop(std::chrono::milliseconds(0));
  }
  finishCompare();
  report("final: ");
}

void Pipeline::report(const char* prefix) const {
  const metrics::Snapshot snapshot = registry_.collect();
  for (const std::string& line : formatSummary(snapshot)) {
    spdlog::info("{}{}", prefix, line);
  }
  if (!config_.statsFile.empty()) {
    // Written aside and renamed, so a reader never sees half a dump.
    const std::string tmp = config_.statsFile + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    out << snapshot.toJson() << '\n';
    out.close();
    if (!out || std::rename(tmp.c_str(), config_.statsFile.c_str()) != 0) {
      spdlog::warn("cannot write the stats file {}: {}", config_.statsFile, std::strerror(errno));
    }
  }
}

}  // namespace shadowtap
