#include "pipeline.h"

#include <sched.h>
#include <signal.h>
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
#include <thread>

#include "base/clock.h"
#include "base/counters.h"
#include "base/fd.h"
#include "http/host_rewrite.h"
#include "pipeline_metrics.h"
#include "summary.h"
#include "worker_share.h"
#ifdef SHADOWTAP_HAVE_DRY_RUN
#include "record/dry_run_writer.h"
#endif

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

}  // namespace

Pipeline::Pipeline(const Config& config) : config_(config) {}

Pipeline::~Pipeline() {
  // Detach first so the kernel stops copying, then let the stages go in order.
  if (capture_) {
    capture_->detach();
  }
  for (auto& w : workers_) {
    w->stop();
  }
}

std::unique_ptr<Pipeline> Pipeline::create(const Config& config, std::string* error) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline(config));
  const unsigned cores = usableCores();
  p->workerCount_ = config.workers != 0 ? config.workers : autoWorkers(cores);
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
  p->capture_ = capture::Capture::open(co, error);
  if (!p->capture_) {
    return nullptr;
  }
  for (const auto& rt : set->perWorker.front()) {
    spdlog::info("rule {}: {}", rt->ruleId, rt->rule.describe());
  }
  for (const auto& mine : set->perWorker) {
    for (const auto& rt : mine) {
      if ((rt->replayer && !rt->replayer->start()) || (rt->secondary && !rt->secondary->start())) {
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
    if (!p->workers_[w]->start(p->capture_->ring(w))) {
      *error = "cannot start worker " + std::to_string(w) + " (see the log above)";
      return nullptr;
    }
  }
  if (config.tls) {
    spdlog::info("--tls: reading the OpenSSL plaintext of processes that map {} (uprobes)",
                 p->capture_->tlsLibrary());
  }
  spdlog::info("{} worker{} ({}; {} usable core{}), each with its own ring buffer of {} KiB", p->workerCount_,
               p->workerCount_ > 1 ? "s" : "",
               config.workers != 0 ? "--workers" : "--workers auto: a quarter of the cores, 1 to 4", cores,
               cores > 1 ? "s" : "", capture::ringBytesPerWorker(co.ringBufferBytes, p->workerCount_) >> 10);
  p->attached_ = p->capture_->attachedInterfaces().size();
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
  capture::CaptureOptions co;
  co.interfaces = config_.interfaces;
  co.rules = portRules(set);
  co.ringBufferBytes = config_.ringBufferMiB << 20;
  co.workers = workerCount_;
  co.tcPriority = config_.tcPriority;
  co.stateDir = config_.stateDir;
  co.attach = *capture::parseAttachMode(config_.attach);  // validated by config
  co.adaptiveWakeups = config_.adaptiveWakeups;
  co.tls = config_.tls;
  co.tlsLibrary = config_.tlsLibrary;
  if (getrandom(&co.hashSeed, sizeof(co.hashSeed), 0) != sizeof(co.hashSeed)) {
    co.hashSeed = static_cast<uint32_t>(base::monotonicNs());
  }
  return co;
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
  http::FramerLimits& fl = ws.framerLimits;
  fl.maxRequestBytes = config_.maxRequestMiB << 20;
  fl.streamWindowBytes = config_.streamWindowKiB << 10;
  fl.maxHeaderBytes = config_.maxHeaderKiB << 10;
  fl.maxRequestLineBytes = config_.maxRequestLineKiB << 10;
  fl.maxResyncScanBytes = config_.maxResyncScanKiB << 10;
  // HTTP/2 streams get the same request and header limits as HTTP/1.
  ws.h2Limits.maxStreamBodyBytes = fl.maxRequestBytes;
  ws.h2Limits.maxHeaderListBytes = fl.maxHeaderBytes;
  flow::FlowLimits limits;
  limits.maxFlows = config_.maxFlows;
  limits.maxFlowBufferBytes = config_.maxFlowBufferMiB << 20;
  limits.maxTotalBufferBytes = config_.maxTotalBufferMiB << 20;
  limits.idleTimeoutNs = uint64_t(config_.idleTimeoutSec) * 1'000'000'000ULL;
  limits.gapTimeoutNs = uint64_t(config_.gapTimeoutMs) * 1'000'000ULL;
  limits.maxFlowBufferSegments = config_.maxFlowBufferSegments;
  limits.closedLingerNs = uint64_t(config_.closedLingerMs) * 1'000'000ULL;
  ws.flowLimits = splitFlowLimits(limits, workerCount_, worker);
  return ws;
}

namespace {

replay::DropPolicy dropPolicyOf(const rules::Rule& rule) {
  return rule.dropPolicy == rules::DropPolicy::kOldest ? replay::DropPolicy::kOldest : replay::DropPolicy::kNewest;
}

// tls=true: the rule's TLS client to its mirror (SNI from host=HOST, else the
// mirror's name). nullptr and *error (naming the rule) on failure.
std::shared_ptr<const replay::TlsClientConfig> tlsClientOf(const rules::Rule& rule, std::string* error) {
  auto tls = replay::TlsClientConfig::make(
      rule.tlsVerify, rule.tlsCa,
      replay::sniName(rule.hostMode == rules::HostMode::kLiteral ? rule.hostLiteral : "", rule.mirror), error);
  if (!tls) {
    *error = "rule '" + rule.text + "': " + *error;
  }
  return tls;
}

// One limiter for the rule's pools of one kind in every worker, so max-rps is
// the rule's total whatever the number of workers (null: unlimited, or one
// worker, whose pool keeps its own).
std::shared_ptr<replay::RateLimiter> sharedRate(uint32_t maxRps, uint32_t workers) {
  return maxRps != 0 && workers > 1 ? std::make_shared<replay::RateLimiter>(maxRps) : nullptr;
}

}  // namespace

// The rule's mirror pool options, whole (splitPoolOptions gives each worker its share).
replay::MirrorPoolOptions Pipeline::poolOptionsOf(const rules::Rule& rule,
                                                  const std::vector<sockaddr_storage>& addrs) {
  replay::MirrorPoolOptions ro;
  ro.target = rule.mirror;
  ro.addrs = addrs;
  ro.resolveInterval = std::chrono::milliseconds(uint64_t(config_.resolveIntervalSec) * 1000);
  ro.minConnections = rule.connections;
  ro.maxConnections = rule.maxConnections;
  ro.queueCapacity = rule.queue;
  ro.queueBytes = rule.queueMiB << 20;
  ro.dropPolicy = dropPolicyOf(rule);
  ro.maxRps = rule.maxRps;
  ro.connectTimeout = std::chrono::milliseconds(config_.connectTimeoutMs);
  ro.responseTimeout = std::chrono::milliseconds(config_.responseTimeoutMs);
  ro.idleTimeout = std::chrono::milliseconds(config_.idleTimeoutMs);
  ro.localEndpoints = &localEndpoints_;
  return ro;
}

std::vector<std::shared_ptr<RuleRuntime>> Pipeline::makeRuntimes(const rules::Rule& rule, uint32_t ruleId,
                                                                  std::string* error) {
  std::vector<std::shared_ptr<RuleRuntime>> out;
  for (uint32_t w = 0; w < workerCount_; ++w) {
    out.push_back(std::make_shared<RuleRuntime>(rule, ruleId, w));
  }
  if (config_.dryRun) {
#ifdef SHADOWTAP_HAVE_DRY_RUN
    for (auto& rt : out) {
      const rules::Router* router = &rt->router;
      rt->dryRun = std::make_unique<record::DryRunWriter>(
          stdout, [router](std::string_view host) { return router->shadowHost(host); });
    }
    return out;
#else
    *error = "--dry-run is not available in this build";
    return {};
#endif
  }
  if (rule.mirror.empty()) {
    return out;  // --record only: captured and recorded, sent nowhere
  }
  replay::ResolveResult resolved = replay::resolveTarget(rule.mirror);
  if (!resolved.error.empty()) {
    *error = "rule '" + rule.text + "': " + resolved.error;
    return {};
  }
  replay::MirrorPoolOptions ro = poolOptionsOf(rule, resolved.addrs);
  if (rule.tls && !(ro.tls = tlsClientOf(rule, error))) {
    return {};
  }
  // Compare mode: mirror (and secondary) responses are kept and go to the
  // engine. A rule added by a reload has no comparator (the engine's are made
  // at start): its begin() refuses and it is mirrored only.
  const bool compared = engine_ && rule.compare;
  std::vector<sockaddr_storage> secondaryAddrs;
  if (compared) {
    ro.observer = mirrorObserver_.get();
    if (!rule.secondary.empty()) {
      replay::ResolveResult second = replay::resolveTarget(rule.secondary);
      if (!second.error.empty()) {
        *error = "rule '" + rule.text + "': secondary: " + second.error;
        return {};
      }
      secondaryAddrs = second.addrs;
    }
  }
  const auto rate = sharedRate(rule.maxRps, workerCount_);
  const auto h2Rate = sharedRate(rule.maxRps, workerCount_);
  const auto secondaryRate = sharedRate(rule.maxRps, workerCount_);
  const auto h2SecondaryRate = sharedRate(rule.maxRps, workerCount_);
  for (auto& rt : out) {
    replay::MirrorPoolOptions mine = ro;
    splitPoolOptions(mine, workerCount_, rt->worker, rate);
    rt->mirrorAddrs = resolved.addrs;
    rt->h2Rate = h2Rate;
    rt->compared = compared;
    if (compared && !rule.secondary.empty()) {
      replay::MirrorPoolOptions so = mine;
      so.target = rule.secondary;
      so.addrs = secondaryAddrs;
      so.observer = secondaryObserver_.get();
      so.sharedRate = secondaryRate;
      rt->secondary = std::make_unique<replay::MirrorPool>(so);
      rt->secondaryAddrs = secondaryAddrs;
      rt->h2SecondaryRate = h2SecondaryRate;
    }
    rt->replayer = std::make_unique<replay::MirrorPool>(mine);
  }
  return out;
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
                               [](const rules::Rule& r) { return r.compare && !r.mirror.empty(); });
  if (!any || config_.dryRun) {
    return true;
  }
  compare::CompareOptions co;
  co.ignoreHeaders = config_.compareIgnoreHeaders;
  co.ignorePaths = config_.compareIgnorePaths;
  // One comparator per rule id (index id - 1): each keeps its own noise memory.
  std::vector<std::unique_ptr<compare::Comparator>> comparators;
  for (const rules::Rule& r : config_.rules) {
    if (!r.compare || r.mirror.empty()) {
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
  engine_ = std::make_unique<compare::CompareEngine>(compare::EngineOptions{}, std::move(comparators),
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
  const int interfacesFd = capture_->interfacesFd();
  for (int fd : {interfacesFd, sfd.get(), tfd.get()}) {
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
        capture_->followInterfaces();
        attached_.store(capture_->attachedInterfaces().size(), std::memory_order_relaxed);
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
  attached_.store(capture_->attachedInterfaces().size(), std::memory_order_relaxed);
  if (engine_) {
    engine_->expire(now);
  }
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

void Pipeline::shutdown() {
  // Stop the kernel side first; each worker takes what is already in its ring
  // and ends its streams; then the mirrors get their drain time.
  capture_->detach();
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
  for (const auto& mine : set->perWorker) {
    stopPools(mine, stoppers);
  }
  for (auto& t : stoppers) {
    t.join();
  }
  for (auto& t : retiring_) {
    t.join();
  }
  retiring_.clear();
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
