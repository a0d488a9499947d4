#include "pipeline.h"

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
#ifdef SHADOWTAP_HAVE_DRY_RUN
#include "record/dry_run_writer.h"
#endif

namespace shadowtap {
namespace {

constexpr uint64_t kTickNs = 100'000'000;  // expiry and housekeeping every 100 ms


std::vector<uint16_t> ports(const std::vector<std::unique_ptr<RuleRuntime>>& rules) {
  std::vector<uint16_t> out;
  for (const auto& rt : rules) {
    if (std::find(out.begin(), out.end(), rt->rule.port) == out.end()) {
      out.push_back(rt->rule.port);
    }
  }
  return out;
}

}  // namespace

Pipeline::Pipeline(const Config& config) : config_(config) {}

Pipeline::~Pipeline() {
  // Detach first so the kernel stops copying, then let the stages go in order.
  if (capture_) {
    capture_->detach();
  }
}

std::unique_ptr<flow::StreamConsumer> Pipeline::OwnTrafficFilter::create(const model::FlowKey& key,
                                                                         uint32_t ruleId, bool fromStart) {
  if (endpoints_.contains(key.family, key.saddr, key.sport)) {
    declined_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return inner_.create(key, ruleId, fromStart);
}

std::unique_ptr<Pipeline> Pipeline::create(const Config& config, std::string* error) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline(config));
  // Before the rules: their replayers report mirror responses to the engine.
  if (!p->setUpCompare(error)) {
    return nullptr;
  }

  for (size_t i = 0; i < config.rules.size(); ++i) {
    auto rt = p->makeRuntime(config.rules[i], static_cast<uint32_t>(i + 1), error);
    if (!rt) {
      return nullptr;
    }
    p->rules_.push_back(std::move(rt));
  }

  http::FramerLimits fl;
  fl.maxRequestBytes = config.maxRequestMiB << 20;
  fl.maxHeaderBytes = config.maxHeaderKiB << 10;
  fl.maxRequestLineBytes = config.maxRequestLineKiB << 10;
  fl.maxResyncScanBytes = config.maxResyncScanKiB << 10;
  // HTTP/2 streams get the same request and header limits as HTTP/1.
  h2::H2DecoderLimits hl;
  hl.maxStreamBodyBytes = fl.maxRequestBytes;
  hl.maxHeaderListBytes = fl.maxHeaderBytes;
  p->sniffers_ = std::make_unique<h2::ProtocolSnifferFactory>(*p, fl, hl);
  p->ownTraffic_ =
      std::make_unique<OwnTrafficFilter>(*p->sniffers_, p->localEndpoints_, p->stats_.ownTrafficSegments);

  flow::FlowLimits limits;
  limits.maxFlows = config.maxFlows;
  limits.maxFlowBufferBytes = config.maxFlowBufferMiB << 20;
  limits.maxTotalBufferBytes = config.maxTotalBufferMiB << 20;
  limits.idleTimeoutNs = uint64_t(config.idleTimeoutSec) * 1'000'000'000ULL;
  limits.gapTimeoutNs = uint64_t(config.gapTimeoutMs) * 1'000'000ULL;
  limits.maxFlowBufferSegments = config.maxFlowBufferSegments;
  limits.closedLingerNs = uint64_t(config.closedLingerMs) * 1'000'000ULL;
  p->flows_ = std::make_unique<flow::FlowTable>(limits, *p->ownTraffic_);
  if (p->engine_) {
    // The primary's responses: a flow table of their own (server -> client
    // keys), whose streams are framed and paired with the requests by order.
    p->pairing_ = std::make_unique<compare::ResponsePairing>(p->engine_->sink(compare::Part::kPrimary));
    p->responseFlows_ = std::make_unique<flow::FlowTable>(limits, *p->pairing_);
  }

  capture::CaptureOptions co;
  co.interfaces = config.interfaces;
  std::vector<const RuleRuntime*> initial;
  for (const auto& rt : p->rules_) {
    initial.push_back(rt.get());
  }
  co.rules = portRules(initial);
  co.ringBufferBytes = config.ringBufferMiB << 20;
  co.tcPriority = config.tcPriority;
  co.stateDir = config.stateDir;
  co.attach = *capture::parseAttachMode(config.attach);  // validated by config
  co.adaptiveWakeups = config.adaptiveWakeups;
  co.tls = config.tls;
  co.tlsLibrary = config.tlsLibrary;
  if (getrandom(&co.hashSeed, sizeof(co.hashSeed), 0) != sizeof(co.hashSeed)) {
    co.hashSeed = static_cast<uint32_t>(base::monotonicNs());
  }
  p->capture_ = capture::Capture::open(co, error);
  if (!p->capture_) {
    return nullptr;
  }
  for (const auto& rt : p->rules_) {
    if ((rt->replayer && !rt->replayer->start()) || (rt->secondary && !rt->secondary->start())) {
      *error = "cannot start the replay event loop for rule '" + rt->rule.text + "' (see the log above)";
      return nullptr;
    }
  }
  for (const auto& rt : p->rules_) {
    spdlog::info("rule {}: {}", rt->ruleId, rt->rule.describe());
  }
  if (!config.recordPath.empty()) {
    record::RecordOptions ro;
    ro.path = config.recordPath;
    if (auto format = record::formatFromPath(ro.path)) {
      ro.format = *format;
    }
    if (std::string why = record::applyRedactSpec(config.recordRedact, ro); !why.empty()) {
      *error = why;
      return nullptr;
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
        return nullptr;
      }
    }
    ro.kafka.drainTimeoutMs = config.drainTimeoutMs;
    p->recorder_ = record::makeRecordWriter(std::move(ro), error);
    if (!p->recorder_) {
      return nullptr;
    }
    spdlog::info("recording captured {} to {}", p->recorder_->wantsSegments() ? "segments" : "requests",
                 config.recordPath);
  }
  if (config.tls) {
    spdlog::info("--tls: reading the OpenSSL plaintext of processes that map {} (uprobes)",
                 p->capture_->tlsLibrary());
  }
  p->attached_ = p->capture_->attachedInterfaces().size();
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
  spdlog::info("mirroring TCP port{} {} on {} ({} rule{}, host suffix '{}')", p->rules_.size() > 1 ? "s" : "",
               fmt::join(ports(p->rules_), ","), fmt::join(config.interfaces, ","), p->rules_.size(),
               p->rules_.size() > 1 ? "s" : "", config.shadowSuffix);
  return p;
}

namespace {

replay::DropPolicy dropPolicyOf(const rules::Rule& rule) {
  return rule.dropPolicy == rules::DropPolicy::kOldest ? replay::DropPolicy::kOldest : replay::DropPolicy::kNewest;
}

}  // namespace

std::unique_ptr<RuleRuntime> Pipeline::makeRuntime(const rules::Rule& rule, uint32_t ruleId, std::string* error) {
  auto rt = std::make_unique<RuleRuntime>(rule, ruleId);
  if (config_.dryRun) {
#ifdef SHADOWTAP_HAVE_DRY_RUN
    const rules::Router* router = &rt->router;
    rt->dryRun = std::make_unique<record::DryRunWriter>(
        stdout, [router](std::string_view host) { return router->shadowHost(host); });
    return rt;
#else
    *error = "--dry-run is not available in this build";
    return nullptr;
#endif
  }
  if (rule.mirror.empty()) {
    return rt;  // --record only: captured and recorded, sent nowhere
  }
  replay::ResolveResult resolved = replay::resolveTarget(rule.mirror);
  if (!resolved.error.empty()) {
    *error = "rule '" + rule.text + "': " + resolved.error;
    return nullptr;
  }
  replay::MirrorPoolOptions ro;
  ro.target = rule.mirror;
  ro.addrs = resolved.addrs;
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
  if (rule.tls) {
    ro.tls = replay::TlsClientConfig::make(
        rule.tlsVerify, rule.tlsCa,
        replay::sniName(rule.hostMode == rules::HostMode::kLiteral ? rule.hostLiteral : "", rule.mirror), error);
    if (!ro.tls) {
      *error = "rule '" + rule.text + "': " + *error;
      return nullptr;
    }
  }
  rt->mirrorAddrs = resolved.addrs;
  // Compare mode: mirror (and secondary) responses are kept and go to the
  // engine. A rule added by a reload has no comparator (the engine's are made
  // at start): its begin() refuses and it is mirrored only.
  if (engine_ && rule.compare) {
    rt->compared = true;
    ro.observer = mirrorObserver_.get();
    if (!rule.secondary.empty()) {
      replay::ResolveResult second = replay::resolveTarget(rule.secondary);
      if (!second.error.empty()) {
        *error = "rule '" + rule.text + "': secondary: " + second.error;
        return nullptr;
      }
      replay::MirrorPoolOptions so = ro;
      so.target = rule.secondary;
      so.addrs = second.addrs;
      so.observer = secondaryObserver_.get();
      rt->secondary = std::make_unique<replay::MirrorPool>(so);
      rt->secondaryAddrs = second.addrs;
    }
  }
  rt->replayer = std::make_unique<replay::MirrorPool>(ro);
  return rt;
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

uint64_t Pipeline::beginCompared(RuleRuntime& rt, const model::Request& request) {
  const uint64_t id = engine_->begin(rt.ruleId, request.method, std::string(request.target()),
                                     rt.secondary != nullptr, base::monotonicNs());
  if (id == 0) {
    return 0;  // refused (pending limit, or a rule added by a reload): mirrored only
  }
  const bool paired = request.isHttp2() ? pairing_->expectH2(request.flow, request.streamId, id)
                                        : pairing_->expect(request, id);
  if (!paired) {
    engine_->onMissing(id, compare::Part::kPrimary);
  }
  return id;
}

void Pipeline::finishCompare() {
  if (!engine_) {
    return;
  }
  // Every stream has ended and every replayer stopped: each part of each
  // exchange has been reported, except requests whose response stream never
  // appeared, which end now; whatever is still pending is given up.
  pairing_->expire(UINT64_MAX);
  engine_->stop();
  engine_->expire(UINT64_MAX);
  const compare::CompareStats& s = engine_->stats();
  if (diffWriter_) {
    diffWriter_->writeSummary(s);
  }
}

std::vector<capture::PortRule> Pipeline::portRules(const std::vector<const RuleRuntime*>& runtimes) {
  std::vector<capture::PortRule> out;
  for (const RuleRuntime* rt : runtimes) {
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

void Pipeline::reload() {
  if (!reloadSource_) {
    spdlog::warn("SIGHUP: no configuration to reload (start with --config FILE)");
    return;
  }
  std::string error;
  std::optional<Config> next = reloadSource_(&error);
  if (!next) {
    spdlog::error("reload refused, the current rules stay: {}", error);
    return;
  }
  // A rule that is the same in every setting keeps its id, its replayer and
  // its mirror connections; anything else is a new rule.
  std::vector<bool> kept(rules_.size(), false);
  std::vector<const RuleRuntime*> active;
  std::vector<std::unique_ptr<RuleRuntime>> added;
  uint32_t nextId = static_cast<uint32_t>(rules_.size()) + 1;
  for (const rules::Rule& rule : next->rules) {
    bool found = false;
    for (size_t i = 0; i < rules_.size() && !found; ++i) {
      if (rules_[i] && !kept[i] && rules_[i]->rule.sameAs(rule)) {
        kept[i] = true;
        active.push_back(rules_[i].get());
        found = true;
      }
    }
    if (!found) {
      auto rt = makeRuntime(rule, nextId++, &error);
      if (!rt) {
        spdlog::error("reload refused, the current rules stay: {}", error);
        return;
      }
      active.push_back(rt.get());
      added.push_back(std::move(rt));
    }
  }
  if (std::string why = capture_->updateRules(portRules(active)); !why.empty()) {
    spdlog::error("reload refused, the current rules stay: {}", why);
    return;
  }
  for (const auto& rt : added) {
    if ((rt->replayer && !rt->replayer->start()) || (rt->secondary && !rt->secondary->start())) {
      spdlog::error("reload: cannot start the replay loop of rule '{}'", rt->rule.text);
    }
    if (rt->rule.compare && !engine_) {
      spdlog::warn("reload: rule '{}' asks for compare=true, but comparison is set up only at start; it is "
                   "mirrored without comparing", rt->rule.text);
    }
  }
  size_t removed = 0;
  {
    std::lock_guard<std::mutex> lock(rulesMutex_);
    for (size_t i = 0; i < kept.size(); ++i) {
      if (rules_[i] && !kept[i]) {
        // Its in-flight requests get the drain time, off the capture thread.
        RuleRuntime* rt = rules_[i].get();
        retired_.push_back(std::move(rules_[i]));
        if (rt->replayer) {
          const auto drain = std::chrono::milliseconds(config_.drainTimeoutMs);
          retiring_.emplace_back([rt, drain] {
            rt->replayer->stop(drain);
            if (rt->secondary) {
              rt->secondary->stop(drain);
            }
            if (rt->h2Pool) {
              rt->h2Pool->stop(drain);
            }
            if (rt->h2SecondaryPool) {
              rt->h2SecondaryPool->stop(drain);
            }
          });
        }
        ++removed;
      }
    }
    for (auto& rt : added) {
      spdlog::info("rule {}: {}", rt->ruleId, rt->rule.describe());
      rules_.push_back(std::move(rt));
    }
  }
  spdlog::info("reloaded the configuration: {} rule(s) kept, {} added, {} removed",
               active.size() - (rules_.size() - kept.size()), rules_.size() - kept.size(), removed);
}

void Pipeline::onSegment(const flow::Segment& segment) {
  if (segment.fromServer) {
    // Compare mode's egress capture: the primary's responses. Those to our own
    // mirror connections (a mirror on this node and port) are not the primary's.
    if (!responseFlows_) {
      return;
    }
    if (localEndpoints_.contains(segment.key.family, segment.key.daddr, segment.key.dport)) {
      stats_.ownResponseSegments.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    stats_.responseSegments.fetch_add(1, std::memory_order_relaxed);
    responseFlows_->ingest(segment);
    return;
  }
  if (recorder_ && recorder_->wantsSegments() &&
      !localEndpoints_.contains(segment.key.family, segment.key.saddr, segment.key.sport)) {
    recorder_->onSegment(segment);
  }
  flows_->ingest(segment);
}

void Pipeline::onRequest(model::Request&& request) {
  const bool h2 = request.isHttp2();
  base::bump(h2 ? stats_.h2Requests : stats_.requests);
  if (request.ruleId == 0 || request.ruleId > rules_.size() || !rules_[request.ruleId - 1]) {
    base::bump(stats_.unknownRule);  // e.g. removed by a reload
    return;
  }
  RuleRuntime& rt = *rules_[request.ruleId - 1];
  RuleStats& rs = rt.stats;
  base::bump(rs.requests);
  if (h2) {
    base::bump(rs.h2Requests);
  }
  rs.observeSize(request.size());
  const rules::Router::Verdict verdict = rt.router.classify(request);
  if (verdict == rules::Router::Verdict::kAlreadyShadow) {
    base::bump(rs.loopSkipped);
    return;
  }
  if (verdict == rules::Router::Verdict::kSampledOut) {
    base::bump(rs.sampledOut);
    return;
  }
  // The recording holds what was captured, not what the method allow-list lets through.
  if (recorder_) {
    recorder_->record(request);
  }
  if (verdict == rules::Router::Verdict::kMethodFiltered) {
    base::bump(rs.filtered);
    return;
  }
  if (rt.dryRun) {
    base::bump(rs.submitted);
    rt.dryRun->onRequest(std::move(request));
    base::bump(rs.queued);  // printed
    return;
  }
  if (!rt.replayer) {
    base::bump(rs.recordOnly);
    return;
  }
  base::bump(rs.submitted);
  if (h2) {
    sendHttp2(rt, std::move(request));
  } else {
    sendHttp1(rt, std::move(request));
  }
}

void Pipeline::sendHttp1(RuleRuntime& rt, model::Request&& request) {
  // Compare mode pairs the request as captured, so before the rewrite.
  const uint64_t exchangeId = rt.compared ? beginCompared(rt, request) : 0;
  rt.router.rewrite(request);
  request.exchangeId = exchangeId;
  if (exchangeId != 0 && rt.secondary) {
    model::Request copy = request;
    rt.secondary->submit(std::move(copy));  // a drop is reported to the engine as a missing part
  }
  base::bump(rt.replayer->submit(std::move(request)) ? rt.stats.queued : rt.stats.dropped);
}

replay::MirrorPool* Pipeline::h2PoolFor(RuleRuntime& rt, compare::Part part) {
  const bool secondary = part == compare::Part::kSecondary;
  std::unique_ptr<replay::MirrorPool>& slot = secondary ? rt.h2SecondaryPool : rt.h2Pool;
  bool& failed = secondary ? rt.h2SecondaryFailed : rt.h2PoolFailed;
  if (slot || failed) {
    return slot.get();
  }
  const std::string& target = secondary ? rt.rule.secondary : rt.rule.mirror;
  // The rule's HTTP/1 pool's settings, with h2c connections.
  replay::MirrorPoolOptions o = (secondary ? rt.secondary : rt.replayer)->options();
  o.protocol = model::Protocol::kHttp2;
  o.addrs = secondary ? rt.secondaryAddrs : rt.mirrorAddrs;
  o.target = target;
  o.observer = rt.compared ? (secondary ? secondaryObserver_ : mirrorObserver_).get() : nullptr;
  const bool noAddress = o.addrs.empty();
  auto pool = std::make_unique<replay::MirrorPool>(std::move(o));
  if (noAddress || !pool->start()) {
    failed = true;
    spdlog::error("rule {}: cannot start the HTTP/2 {} pool to {}; its HTTP/2 requests are dropped", rt.ruleId,
                  secondary ? "secondary" : "mirror", target);
    return nullptr;
  }
  spdlog::info("rule {}: first HTTP/2 request, opening h2c connections to {}", rt.ruleId, target);
  std::lock_guard<std::mutex> lock(rulesMutex_);
  slot = std::move(pool);
  return slot.get();
}

void Pipeline::sendHttp2(RuleRuntime& rt, model::Request&& request) {
  rt.router.rewrite(request);
  replay::MirrorPool* pool = h2PoolFor(rt, compare::Part::kMirror);
  if (pool == nullptr) {
    base::bump(rt.stats.h2PoolUnavailable);
    base::bump(rt.stats.dropped);
    return;
  }
  if (rt.compared) {
    request.exchangeId = beginCompared(rt, request);
    if (request.exchangeId != 0 && rt.secondary) {
      replay::MirrorPool* second = h2PoolFor(rt, compare::Part::kSecondary);
      if (second == nullptr) {
        engine_->onMissing(request.exchangeId, compare::Part::kSecondary);
      } else {
        model::Request copy = request;
        second->submit(std::move(copy));  // a drop is reported to the engine as a missing part
      }
    }
  }
  base::bump(pool->submit(std::move(request)) ? rt.stats.queued : rt.stats.dropped);
}

int Pipeline::run() {
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
    return 1;
  }
  itimerspec its{};
  its.it_interval.tv_nsec = static_cast<long>(kTickNs);
  its.it_value.tv_nsec = static_cast<long>(kTickNs);
  timerfd_settime(tfd.get(), 0, &its, nullptr);

  const int ringFd = capture_->fd();
  for (int fd : {ringFd, sfd.get(), tfd.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
      return 1;
    }
  }

  const uint64_t summaryEveryNs = uint64_t(config_.summaryIntervalSec) * 1'000'000'000ULL;
  uint64_t nextSummary = base::monotonicNs() + summaryEveryNs;
  bool stopping = false;
  loopTurnNs_ = base::monotonicNs();
  while (!stopping) {
    epoll_event events[4];
    int n = epoll_wait(ep.get(), events, 4, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ringFd) {
        capture_->consume(*this);
        consumeNs_.store(base::monotonicNs(), std::memory_order_relaxed);
      } else if (fd == tfd.get()) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(tfd.get(), &expirations, sizeof(expirations));
        uint64_t now = base::monotonicNs();
        loopTurnNs_.store(now, std::memory_order_relaxed);
        attached_.store(capture_->attachedInterfaces().size(), std::memory_order_relaxed);
        flows_->expire(now);
        if (engine_) {
          responseFlows_->expire(now);
          pairing_->expire(now);
          engine_->expire(now);
        }
        if (summaryEveryNs != 0 && now >= nextSummary) {
          report("");
          nextSummary = now + summaryEveryNs;
        }
      } else if (fd == sfd.get()) {
        signalfd_siginfo si{};
        if (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGHUP) {
            spdlog::info("received SIGHUP, reloading the configuration");
            reload();
          } else {
            spdlog::info("received {}, stopping", strsignal(static_cast<int>(si.ssi_signo)));
            stopping = true;
          }
        }
      }
    }
  }

  // Stop the kernel side first, take what is already in the ring, then end the
  // streams and give the mirror its drain time.
  capture_->detach();
  capture_->consume(*this);
  flows_->shutdown();
  if (responseFlows_) {
    responseFlows_->shutdown();  // responses in progress end; their exchanges miss the primary part
  }
  // Drain the recorder and the rules' replayers in parallel: each gets the
  // full drain time.
  std::vector<std::thread> stoppers;
  if (recorder_) {
    // Every framed request is in: HAR gets its closing brackets, Kafka its flush.
    stoppers.emplace_back([this] { recorder_->close(); });
  }
  for (const auto& rt : rules_) {
    if (rt && rt->replayer) {
      stoppers.emplace_back([&rt, this] { rt->replayer->stop(std::chrono::milliseconds(config_.drainTimeoutMs)); });
    }
    if (rt && rt->secondary) {
      stoppers.emplace_back([&rt, this] { rt->secondary->stop(std::chrono::milliseconds(config_.drainTimeoutMs)); });
    }
    if (rt && rt->h2Pool) {
      stoppers.emplace_back([&rt, this] { rt->h2Pool->stop(std::chrono::milliseconds(config_.drainTimeoutMs)); });
    }
    if (rt && rt->h2SecondaryPool) {
      stoppers.emplace_back(
          [&rt, this] { rt->h2SecondaryPool->stop(std::chrono::milliseconds(config_.drainTimeoutMs)); });
    }
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
  return 0;
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
