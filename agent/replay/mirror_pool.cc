#include "replay/mirror_pool.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>

#include "base/counters.h"

namespace shadowtap::replay {
namespace {

uint64_t toNs(std::chrono::milliseconds ms) { return static_cast<uint64_t>(ms.count()) * 1'000'000ULL; }

PoolSizer::Options sizingOf(const MirrorPoolOptions& o) {
  PoolSizer::Options s;
  s.floor = o.minConnections;
  s.max = o.maxConnections;
  s.paceNs = toNs(o.connectPacing);
  s.holdInitialNs = toNs(o.growthHold);
  s.holdMaxNs = toNs(o.growthHoldMax);
  return s;
}

ConnectionSettings settingsOf(const MirrorPoolOptions& o, MirrorStats& stats) {
  ConnectionSettings s;
  s.connectTimeoutNs = toNs(o.connectTimeout);
  s.responseTimeoutNs = toNs(o.responseTimeout);
  s.endpoints = o.localEndpoints;
  s.keepResponses = o.observer != nullptr;
  s.responseLimits = o.responseLimits;
  s.maxResponseBytes = o.maxResponseBytes;
  s.keptFraming = &stats.keptFraming;
  s.maxConcurrentStreams = std::max<size_t>(1, o.maxConcurrentStreams);
  s.keepTrailers = o.keepTrailers;
  s.tls = o.tls.get();
  return s;
}

std::string addressList(const std::vector<sockaddr_storage>& addrs) {
  std::string out;
  for (const auto& addr : addrs) {
    out += (out.empty() ? "" : ", ") + formatAddress(addr);
  }
  return out;
}

void writeEventfd(int fd) {
  const uint64_t one = 1;
  // Non-blocking eventfd, never near its limit: cannot block or fail usefully.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
}

}  // namespace

MirrorPool::MirrorPool(MirrorPoolOptions opts) : MirrorPool(std::move(opts), nullptr) {}

MirrorPool::MirrorPool(MirrorPoolOptions opts, std::unique_ptr<ConnectionKind> kind)
    : opts_(std::move(opts)),
      clock_(opts_.clock != nullptr ? *opts_.clock : base::MonotonicClock::instance()),
      settings_(settingsOf(opts_, stats_)),
      kind_(std::move(kind)),
      queue_(opts_.queueCapacity, opts_.queueBytes),
      rate_(opts_.maxRps),
      addrs_(opts_.addrs, toNs(opts_.backoffInitial), toNs(opts_.backoffMax)),
      sizer_(sizingOf(opts_)) {
  opts_.maxConnections = sizer_.max();
  opts_.minConnections = sizer_.floor();
  stats_.connectionsFloor.store(static_cast<int64_t>(sizer_.floor()), std::memory_order_relaxed);
  stats_.connectionsMax.store(static_cast<int64_t>(sizer_.max()), std::memory_order_relaxed);
  if (!kind_) {
    kind_ = opts_.protocol == model::Protocol::kHttp2 ? h2Kind(settings_) : http1Kind(settings_);
  }
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ >= 0 && wakeFd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // slots are never null, so null tags the eventfd
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
      ::close(wakeFd_);
      wakeFd_ = -1;
    }
  }
}

MirrorPool::~MirrorPool() {
  stop(std::chrono::milliseconds(0));
  // A submit that raced with stop() may have queued after the last sweep.
  dropQueued();
  if (wakeFd_ >= 0) {
    ::close(wakeFd_);
  }
  if (epollFd_ >= 0) {
    ::close(epollFd_);
  }
}

bool MirrorPool::start() {
  if (started_ || stopped_) {
    spdlog::error("mirror pool: start() called twice or after stop()");
    return false;
  }
  if (epollFd_ < 0 || wakeFd_ < 0) {
    spdlog::error("mirror pool: cannot create the event loop (epoll/eventfd): {}; check the process's file limit",
                  std::strerror(errno));
    return false;
  }
  if (opts_.addrs.empty()) {
    spdlog::error("mirror pool: no mirror address; resolve the mirror target first");
    return false;
  }
  if (opts_.io != MirrorIo::kEpoll && opts_.protocol == model::Protocol::kHttp1 && !opts_.tls) {
    std::string why;
    ring_ = Ring::open(1024, &why);
    if (!ring_ && opts_.io == MirrorIo::kUring) {
      spdlog::error("mirror pool: --mirror-io uring: the kernel refuses io_uring: {}; use --mirror-io auto (falls back "
                    "to epoll) or epoll",
                    why);
      return false;
    }
    if (!ring_) {
      spdlog::info("mirror pool: io_uring unavailable ({}); mirror I/O through epoll", why);
    }
  }
  if (opts_.resolveInterval.count() > 0 && !opts_.target.empty()) {
    resolver_ = std::make_unique<TargetResolver>(opts_.target, opts_.resolve, stats_, [this] { writeEventfd(wakeFd_); });
    nextResolveNs_ = clock_.nowNs() + toNs(opts_.resolveInterval);
    if (!resolver_->start()) {
      resolver_.reset();
    }
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    spdlog::error("mirror pool: cannot start the event loop thread: {}", e.what());
    resolver_.reset();
    return false;
  }
  started_ = true;
  spdlog::info("mirror pool: mirroring {} to {}{} with {}, queue {} requests / {} bytes, I/O through {}",
               kind_->name(),
               opts_.target.empty() ? "" : opts_.target + " = ", addressList(opts_.addrs),
               opts_.minConnections >= opts_.maxConnections
                   ? fmt::format("up to {} connections (fixed)", opts_.maxConnections)
                   : fmt::format("{} to {} connections (grown as the mirror's latency needs)", opts_.minConnections,
                                 opts_.maxConnections),
               opts_.queueCapacity, opts_.queueBytes, ring_ ? "io_uring" : "epoll");
  return true;
}

void MirrorPool::wake() {
  if (wakeFd_ >= 0) {
    writeEventfd(wakeFd_);
  }
}

// ---------------------------------------------------------------- submit side

bool MirrorPool::submit(model::Request&& request) {
  base::bump(stats_.submitted);
  const uint64_t exchangeId = request.exchangeId;
  if (!accepting_.load(std::memory_order_acquire)) {
    dropped(exchangeId, Outcome::kDroppedShutdown);
    return false;
  }
  RateLimiter& rate = opts_.sharedRate ? *opts_.sharedRate : rate_;
  if (rate.limited() && !rate.admit(clock_.nowNs())) {
    dropped(exchangeId, Outcome::kRateLimited);
    return false;
  }
  const size_t bytes = queuedBytes(request);
  // Gauges go up before the push so the loop's decrement never makes them negative.
  base::bump(stats_.queueDepth, 1);
  base::bump(stats_.queueBytes, static_cast<int64_t>(bytes));
  if (!enqueue(request, bytes)) {
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -static_cast<int64_t>(bytes));
    dropped(exchangeId, Outcome::kQueueFull);
    return false;
  }
  if (!wakePending_.exchange(true, std::memory_order_acq_rel)) {
    if (WakeBatch* batch = WakeBatch::current()) {
      batch->add(this);
    } else {
      flushWake();
    }
  }
  return true;
}

void MirrorPool::flushWake() {
  writeEventfd(wakeFd_);
  base::bump(stats_.wakeups);
}

namespace {
thread_local WakeBatch* tCurrentBatch = nullptr;
}  // namespace

WakeBatch::WakeBatch() : outer_(tCurrentBatch) { tCurrentBatch = this; }

WakeBatch::~WakeBatch() {
  tCurrentBatch = outer_;
  for (MirrorPool* pool : pending_) {
    pool->flushWake();
  }
}

WakeBatch* WakeBatch::current() { return tCurrentBatch; }

void WakeBatch::add(MirrorPool* pool) {
  // The loop may clear its pending flag mid-batch (it ran out of requests), so a
  // pool can come twice: a few pools per batch, a linear look is enough.
  if (std::find(pending_.begin(), pending_.end(), pool) == pending_.end()) {
    pending_.push_back(pool);
  }
}

bool MirrorPool::enqueue(model::Request& request, size_t bytes) {
  if (bytes > queue_.maxBytes()) {
    return false;  // never fits, whatever the policy: pushes nothing out
  }
  // Under drop policy oldest each failed push takes the oldest request out;
  // bounded, since another producer may take the room just made.
  for (size_t tries = 0; tries <= queue_.capacity() + 1; ++tries) {
    if (queue_.tryPush(request, bytes)) {
      return true;
    }
    if (opts_.dropPolicy != DropPolicy::kOldest) {
      return false;
    }
    model::Request oldest;
    size_t oldestBytes = 0;
    if (queue_.tryPop(oldest, oldestBytes)) {
      base::bump(stats_.queueDepth, -1);
      base::bump(stats_.queueBytes, -static_cast<int64_t>(oldestBytes));
      dropped(oldest.exchangeId, Outcome::kDroppedOldest);
    }
  }
  return false;
}

void MirrorPool::dropped(uint64_t exchangeId, Outcome outcome) {
  base::bump(stats_.counterOf(outcome));
  reportMissing(exchangeId);
}

void MirrorPool::reportMissing(uint64_t exchangeId) {
  if (exchangeId == 0 || opts_.observer == nullptr) {
    return;
  }
  base::bump(stats_.missingResponses);
  opts_.observer->onMissing(exchangeId);
}

void MirrorPool::stop(std::chrono::milliseconds drain) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  accepting_.store(false, std::memory_order_release);
  if (thread_.joinable()) {
    drainDeadlineNs_.store(clock_.nowNs() + toNs(drain), std::memory_order_relaxed);
    stopRequested_.store(true, std::memory_order_release);
    writeEventfd(wakeFd_);
    thread_.join();
  }
  if (resolver_) {
    resolver_->stop();
  }
  dropQueued();
  if (started_) {
    spdlog::info("mirror pool: {} {} stopped; {} submitted, {} responses, {} errors, {} queue full, {} dropped oldest, "
                 "{} rate limited, {} dropped at shutdown",
                 kind_->name(), opts_.target, base::load(stats_.submitted), base::load(stats_.responses),
                 stats_.errors(), base::load(stats_.queueFull), base::load(stats_.droppedOldest),
                 base::load(stats_.droppedRateLimit), base::load(stats_.droppedShutdown));
  }
}

void MirrorPool::dropQueued() {
  model::Request request;
  size_t bytes = 0;
  while (queue_.tryPop(request, bytes)) {
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -static_cast<int64_t>(bytes));
    dropped(request.exchangeId, Outcome::kDroppedShutdown);
  }
}

// ---------------------------------------------------------------- outcomes

void MirrorPool::onEnded(Ending& ending) {
  --held_;
  base::bump(stats_.inFlight, -1);
  base::bump(stats_.counterOf(ending.outcome));
  if (ending.outcome == Outcome::kResponse) {
    countResponse(ending);
    sizer_.latency(ending.latencyNs);
  } else if (ending.outcome == Outcome::kResponseTimeout) {
    noteDistress(clock_.nowNs());
  }
  if (ending.outcome != Outcome::kResponse && ending.outcome != Outcome::kConnectError &&
      ending.outcome != Outcome::kConnectTimeout && ending.outcome != Outcome::kDroppedShutdown) {
    // Connect failures are logged by noteConnectFailure.
    uint64_t suppressed = 0;
    if (errorLog_.allow(std::chrono::steady_clock::now(), suppressed)) {
      spdlog::warn("mirror pool: {} request to {}: {} ({} similar warnings suppressed; see the mirror counters)",
                   kind_->name(), mirrorName(),
                   describe(ending.outcome), suppressed);
    }
  }
  if (ending.exchangeId == 0 || opts_.observer == nullptr) {
    return;
  }
  if (ending.outcome != Outcome::kResponse || ending.kept == nullptr) {
    reportMissing(ending.exchangeId);
    return;
  }
  if (ending.kept->headersTruncated) {
    base::bump(stats_.keptHeadersTruncated);
  }
  if (ending.kept->bodyTruncated) {
    base::bump(stats_.keptBodiesTruncated);
  }
  base::bump(stats_.keptResponses);
  opts_.observer->onResponse(ending.exchangeId, std::move(*ending.kept));
}

std::string MirrorPool::mirrorName() const {
  return opts_.target.empty() ? addressList(addrs_.addrs()) : opts_.target;
}

void MirrorPool::countResponse(const Ending& ending) {
  switch (ending.status / 100) {
    case 1:
      base::bump(stats_.responses1xx);
      break;
    case 2:
      base::bump(stats_.responses2xx);
      break;
    case 3:
      base::bump(stats_.responses3xx);
      break;
    case 4:
      base::bump(stats_.responses4xx);
      break;
    case 5:
      base::bump(stats_.responses5xx);
      break;
    default:
      base::bump(stats_.responsesOther);
      break;
  }
  if (ending.grpcStatus >= 0) {
    base::bump(ending.grpcStatus == 0 ? stats_.grpcOk : stats_.grpcError);
  }
  stats_.latency.observe(ending.latencyNs / 1000);
}

void MirrorPool::onBytes(uint64_t sent, uint64_t received) {
  if (sent > 0) {
    base::bump(stats_.bytesSent, sent);
  }
  if (received > 0) {
    base::bump(stats_.bytesReceived, received);
  }
}

void MirrorPool::onRequestWritten() { base::bump(stats_.sent); }

std::function<void()> MirrorPool::bodyListener() {
  return [this] {
    if (!bodyNews_.exchange(true, std::memory_order_acq_rel)) {
      writeEventfd(wakeFd_);
    }
  };
}

void MirrorPool::onStreamStarted() { base::bump(stats_.streamsStarted); }

void MirrorPool::onStreamSent() { base::bump(stats_.streamsSent); }

}  // namespace shadowtap::replay
