#include "worker.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/clock.h"
#include "base/counters.h"

namespace shadowtap {
namespace {

constexpr uint64_t kTickNs = 100'000'000;  // expiry every 100 ms

}  // namespace

std::unique_ptr<flow::StreamConsumer> Worker::OwnTrafficFilter::create(const model::FlowKey& key, uint32_t ruleId,
                                                                       bool fromStart) {
  if (endpoints_.contains(key.family, key.saddr, key.sport)) {
    declined_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return inner_.create(key, ruleId, fromStart);
}

Worker::Worker(uint32_t index, const WorkerShared& shared)
    : index_(index), shared_(shared), local_(*shared.localEndpoints) {
  rules_ = shared_.rules->load();
  generation_ = rules_->generation;
  sniffers_ = std::make_unique<h2::ProtocolSnifferFactory>(*this, shared_.framerLimits, shared_.h2Limits);
  ownTraffic_ = std::make_unique<OwnTrafficFilter>(*sniffers_, local_, stats_.ownTrafficSegments);
  flows_ = std::make_unique<flow::FlowTable>(shared_.flowLimits, *ownTraffic_);
  if (shared_.engine != nullptr) {
    // The primary's responses: a flow table of their own (server -> client
    // keys), whose streams are framed and paired with the requests by order.
    // The kernel sends a connection's responses to the worker of its requests.
    pairing_ = std::make_unique<compare::ResponsePairing>(shared_.engine->sink(compare::Part::kPrimary));
    responseFlows_ = std::make_unique<flow::FlowTable>(shared_.flowLimits, *pairing_);
  }
}

Worker::~Worker() { stop(); }

bool Worker::start(capture::WorkerFeed& feed) {
  if (!setUpLoop(feed)) {
    return false;
  }
  loopTurnNs_ = base::monotonicNs();
  try {
    thread_ = std::thread([this, &feed] { run(feed); });
  } catch (const std::system_error& e) {
    spdlog::error("worker {}: cannot start its thread: {}", index_, e.what());
    return false;
  }
  return true;
}

bool Worker::setUpLoop(capture::WorkerFeed& feed) {
  // Here, not on the thread: a worker that cannot wait fails the start.
  stopFd_ = base::Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  timerFd_ = base::Fd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  epollFd_ = base::Fd(epoll_create1(EPOLL_CLOEXEC));
  if (stopFd_.get() < 0 || timerFd_.get() < 0 || epollFd_.get() < 0) {
    spdlog::error("worker {}: cannot set up its event loop: {}; check the process's file limit", index_,
                  std::strerror(errno));
    return false;
  }
  itimerspec its{};
  its.it_interval.tv_nsec = static_cast<long>(kTickNs);
  its.it_value.tv_nsec = static_cast<long>(kTickNs);
  timerfd_settime(timerFd_.get(), 0, &its, nullptr);
  std::vector<int> fds = feed.readableFds();
  fds.push_back(timerFd_.get());
  fds.push_back(stopFd_.get());
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epollFd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("worker {}: cannot set up its event loop: {}", index_, std::strerror(errno));
      return false;
    }
  }
  return true;
}

void Worker::stop() {
  if (!thread_.joinable()) {
    return;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t w = write(stopFd_.get(), &one, sizeof(one));
  thread_.join();
}

void Worker::run(capture::WorkerFeed& feed) {
  const int ep = epollFd_.get();
  const int tfd = timerFd_.get();
  bool stopping = false;
  while (!stopping) {
    epoll_event events[4];
    const int n = epoll_wait(ep, events, 4, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("worker {}: epoll_wait: {}", index_, std::strerror(errno));
      return;
    }
    bool consume = false;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == tfd) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(tfd, &expirations, sizeof(expirations));
        tick(base::monotonicNs());
      } else if (fd == stopFd_.get()) {
        stopping = true;
      } else {
        consume = true;
      }
    }
    if (consume || stopping) {
      refreshRules();
      // Every pool this batch feeds is woken once, at its end (not per request).
      replay::WakeBatch wakes;
      // A ring gives at most RingReader::kConsumeBudget records a call, so that
      // a ring kept full cannot hold the tick off; the rest wait for the next
      // turn. At stop the capture is detached and the ring no longer fills:
      // this takes all that is left in it.
      int got = 0;
      do {
        got = feed.consume(*this);
        if (got > 0) {
          base::bump(stats_.batches);
        }
      } while (stopping && got > 0);
      consumeNs_.store(base::monotonicNs(), std::memory_order_relaxed);
    }
  }
  shutdownFlows();
}

void Worker::tick(uint64_t now) {
  loopTurnNs_.store(now, std::memory_order_relaxed);
  refreshRules();  // an idle worker lets go of removed rules too
  flows_->expire(now);
  if (pairing_) {
    responseFlows_->expire(now);
    pairing_->expire(now);
  }
}

void Worker::shutdownFlows() {
  flows_->shutdown();
  if (responseFlows_) {
    responseFlows_->shutdown();  // responses in progress end; their exchanges miss the primary part
    pairing_->expire(UINT64_MAX);  // requests whose response stream never appeared end now
  }
}

void Worker::refreshRules() {
  if (shared_.rules->generation() != generation_) {
    rules_ = shared_.rules->load();
    generation_ = rules_->generation;
  }
}

RuleRuntime* Worker::findRule(uint32_t ruleId) {
  RuleRuntime* rt = rules_->find(index_, ruleId);
  if (rt == nullptr) {
    // A rule a reload has just added may come before this worker's next batch.
    refreshRules();
    rt = rules_->find(index_, ruleId);
  }
  return rt;
}

void Worker::onSegment(const flow::Segment& segment) {
  base::bump(stats_.segments);
  if (segment.fromServer) {
    // Compare mode's egress capture: the primary's responses. Those to our own
    // mirror connections (a mirror on this node and port) are not the primary's.
    if (!responseFlows_) {
      return;
    }
    if (local_.contains(segment.key.family, segment.key.daddr, segment.key.dport)) {
      base::bump(stats_.ownResponseSegments);
      return;
    }
    base::bump(stats_.responseSegments);
    responseFlows_->ingest(segment);
    return;
  }
  record::RecordWriter* recorder = shared_.recorder;
  if (recorder != nullptr && recorder->wantsSegments() &&
      !local_.contains(segment.key.family, segment.key.saddr, segment.key.sport)) {
    recorder->onSegment(segment);
  }
  flows_->ingest(segment);
}

void Worker::onRequest(model::Request&& request) {
  const bool h2 = request.isHttp2();
  base::bump(h2 ? stats_.h2Requests : stats_.requests);
  RuleRuntime* found = findRule(request.ruleId);
  if (found == nullptr) {
    base::bump(stats_.unknownRule);  // e.g. removed by a reload
    return;
  }
  request.ruleId = found->ruleId;  // a connection older than a reload that changed its rule
  RuleRuntime& rt = *found;
  RuleStats& rs = rt.stats;
  base::bump(rs.requests);
  if (h2) {
    base::bump(rs.h2Requests);
  }
  rs.observeSize(request.size());
  rules::MirrorSet taken = 0;
  const rules::Router::Verdict verdict = rt.router.classify(request, &taken);
  if (verdict == rules::Router::Verdict::kAlreadyShadow) {
    base::bump(rs.loopSkipped);
    return;
  }
  const auto takes = [taken](size_t i) { return (taken & (rules::MirrorSet{1} << i)) != 0; };
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    if (!takes(i)) {
      base::bump(rt.mirrors[i].stats.sampledOut);
    }
  }
  if (verdict == rules::Router::Verdict::kSampledOut) {
    return;
  }
  // The recording holds what was captured, not what the method allow-list lets
  // through; a streamed request is past its bound (counted there).
  if (shared_.recorder != nullptr) {
    shared_.recorder->record(request);
  }
  if (verdict == rules::Router::Verdict::kMethodFiltered) {
    for (size_t i = 0; i < rt.mirrors.size(); ++i) {
      if (takes(i)) {
        base::bump(rt.mirrors[i].stats.filtered);
      }
    }
    return;
  }
  if (rt.dryRun) {
    printDryRun(rt, taken, request);
    return;
  }
  if (!rt.sends()) {
    base::bump(rs.recordOnly);
    return;
  }
  // Each mirror that takes the request gets its own copy (its own host); the
  // last one the request itself.
  size_t last = 0;
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    last = takes(i) ? i : last;
  }
  // A streamed request's body has one reader: the first mirror that takes it.
  const bool streamed = request.isStreamed();
  bool sent = false;
  for (size_t i = 0; i <= last; ++i) {
    if (!takes(i)) {
      continue;
    }
    if (streamed && sent) {
      base::bump(rt.mirrors[i].stats.streamedElsewhere);
      continue;
    }
    sent = true;
    base::bump(rt.mirrors[i].stats.submitted);
    model::Request copy = i == last || streamed ? std::move(request) : request;
    if (h2) {
      sendHttp2(rt, i, std::move(copy));
    } else {
      sendHttp1(rt, i, std::move(copy));
    }
  }
}

void Worker::printDryRun(RuleRuntime& rt, rules::MirrorSet taken, const model::Request& request) {
  std::vector<record::DryRunWriter::Mirror> mirrors;
  for (size_t i = 0; i < rt.mirrors.size(); ++i) {
    if ((taken & (rules::MirrorSet{1} << i)) == 0) {
      continue;
    }
    MirrorCounters& c = rt.mirrors[i].stats;
    base::bump(c.submitted);
    base::bump(c.queued);  // printed
    if (rt.rule.hasMirror()) {
      mirrors.push_back({rt.mirrors[i].spec.target, rt.router.shadowHost(request.authority(), i)});
    }
  }
  rt.dryRun->print(request, mirrors);
}

uint64_t Worker::beginCompared(RuleRuntime& rt, const model::Request& request) {
  compare::CompareEngine& engine = *shared_.engine;
  const uint64_t id = engine.begin(rt.ruleId, request.method, std::string(request.target()),
                                   rt.secondary != nullptr, base::monotonicNs());
  if (id == 0) {
    return 0;  // refused (pending limit, or a rule added by a reload): mirrored only
  }
  const bool paired = request.isHttp2() ? pairing_->expectH2(request.flow, request.streamId, id)
                                        : pairing_->expect(request, id);
  if (!paired) {
    engine.onMissing(id, compare::Part::kPrimary);
  }
  return id;
}

void Worker::sendHttp1(RuleRuntime& rt, size_t mirror, model::Request&& request) {
  MirrorRuntime& m = rt.mirrors[mirror];
  // Compare mode (with the first mirror) pairs the request as captured, so
  // before the rewrite. A streamed request is mirrored, not compared: its body
  // has one consumer.
  const bool compared = rt.compared && mirror == 0;
  if (compared && request.isStreamed()) {
    base::bump(rt.stats.streamedNotCompared);
  }
  const uint64_t exchangeId = compared && !request.isStreamed() ? beginCompared(rt, request) : 0;
  rt.router.rewrite(request, mirror);
  request.exchangeId = exchangeId;
  if (exchangeId != 0 && rt.secondary) {
    model::Request copy = request;
    rt.secondary->submit(std::move(copy));  // a drop is reported to the engine as a missing part
  }
  base::bump(m.replayer->submit(std::move(request)) ? m.stats.queued : m.stats.dropped);
}

replay::MirrorPool* Worker::h2PoolFor(RuleRuntime& rt, size_t mirror, compare::Part part) {
  const bool secondary = part == compare::Part::kSecondary;
  MirrorRuntime& m = rt.mirrors[mirror];
  std::unique_ptr<replay::MirrorPool>& slot = secondary ? rt.h2SecondaryPool : m.h2Pool;
  bool& failed = secondary ? rt.h2SecondaryFailed : m.h2PoolFailed;
  if (slot || failed) {
    return slot.get();
  }
  const std::string& target = secondary ? rt.rule.secondary : m.spec.target;
  // The HTTP/1 pool's settings (this worker's share), with h2c connections
  // and the mirror's HTTP/2 rate limit.
  replay::MirrorPoolOptions o = (secondary ? rt.secondary : m.replayer)->options();
  o.protocol = model::Protocol::kHttp2;
  o.addrs = secondary ? rt.secondaryAddrs : m.addrs;
  o.target = target;
  o.sharedRate = secondary ? rt.h2SecondaryRate : m.h2Rate;
  o.observer = rt.compared && mirror == 0 ? (secondary ? shared_.secondaryObserver : shared_.mirrorObserver) : nullptr;
  const bool noAddress = o.addrs.empty();
  auto pool = std::make_unique<replay::MirrorPool>(std::move(o));
  if (noAddress || !pool->start()) {
    failed = true;
    spdlog::error("rule {}: cannot start the HTTP/2 {} pool to {}; its HTTP/2 requests are dropped", rt.ruleId,
                  secondary ? "secondary" : "mirror", target);
    return nullptr;
  }
  spdlog::info("rule {}: first HTTP/2 request{}, opening {} connections to {}", rt.ruleId,
               shared_.workers > 1 ? " in worker " + std::to_string(index_) : std::string(),
               pool->options().tls ? "HTTP/2 over TLS" : "h2c", target);
  std::lock_guard<std::mutex> lock(*shared_.rulesMutex);
  slot = std::move(pool);
  return slot.get();
}

void Worker::sendHttp2(RuleRuntime& rt, size_t mirror, model::Request&& request) {
  MirrorRuntime& m = rt.mirrors[mirror];
  rt.router.rewrite(request, mirror);
  replay::MirrorPool* pool = h2PoolFor(rt, mirror, compare::Part::kMirror);
  if (pool == nullptr) {
    base::bump(m.stats.h2PoolUnavailable);
    base::bump(m.stats.dropped);
    return;
  }
  if (rt.compared && mirror == 0) {
    request.exchangeId = beginCompared(rt, request);
    if (request.exchangeId != 0 && rt.secondary) {
      replay::MirrorPool* second = h2PoolFor(rt, mirror, compare::Part::kSecondary);
      if (second == nullptr) {
        base::bump(rt.stats.h2SecondaryUnavailable);
        shared_.engine->onMissing(request.exchangeId, compare::Part::kSecondary);
      } else {
        model::Request copy = request;
        second->submit(std::move(copy));  // a drop is reported to the engine as a missing part
      }
    }
  }
  base::bump(pool->submit(std::move(request)) ? m.stats.queued : m.stats.dropped);
}

}  // namespace shadowtap
