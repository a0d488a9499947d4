#include "replay/replayer.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <netinet/in.h>

#include <cstring>
#include <limits>
#include <string>
#include <system_error>

#include "base/counters.h"

namespace shadowtap::replay {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
constexpr int kMaxEvents = 64;
constexpr uint32_t kBaseEvents = EPOLLIN | EPOLLRDHUP;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t toNs(std::chrono::milliseconds ms) { return static_cast<int64_t>(ms.count()) * 1'000'000; }

std::chrono::steady_clock::time_point toTimePoint(int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

const char* errorName(ReplayError error) {
  switch (error) {
    case ReplayError::kNone:
      return "none";
    case ReplayError::kConnect:
      return "connect failed";
    case ReplayError::kConnectTimeout:
      return "connect timed out";
    case ReplayError::kReset:
      return "connection closed or reset before the response was complete";
    case ReplayError::kResponseTimeout:
      return "response timed out";
    case ReplayError::kBadResponse:
      return "response is not valid HTTP/1.x";
    case ReplayError::kResponseTooLarge:
      return "response larger than the limit";
  }
  return "?";
}


}  // namespace

Replayer::Replayer(ReplayOptions opts)
    : opts_(std::move(opts)),
      queue_(opts_.queueCapacity, opts_.queueBytes),
      addrStates_(opts_.addrs.size()),
      readBuf_(kReadBufferSize) {
  if (opts_.maxConnections == 0) {
    opts_.maxConnections = 1;
  }
  if (opts_.maxRps > 0) {
    rateIntervalNs_ = 1'000'000'000LL / opts_.maxRps;
    int64_t burst = std::max<int64_t>(1, opts_.maxRps / 10);
    rateBurstNs_ = (burst - 1) * rateIntervalNs_;
  }
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ >= 0 && wakeFd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // connections are never null, so null tags the eventfd
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
      ::close(wakeFd_);
      wakeFd_ = -1;
    }
  }
}

Replayer::~Replayer() {
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

bool Replayer::start() {
  if (started_ || stopped_) {
    spdlog::error("replay: start() called twice or after stop()");
    return false;
  }
  if (epollFd_ < 0 || wakeFd_ < 0) {
    spdlog::error("replay: cannot create the event loop (epoll/eventfd): {}; check the process's file limit",
                  std::strerror(errno));
    return false;
  }
  if (opts_.addrs.empty()) {
    spdlog::error("replay: no mirror address; resolve the mirror target first");
    return false;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    spdlog::error("replay: cannot start the event loop thread: {}", e.what());
    return false;
  }
  if (opts_.resolveInterval.count() > 0 && !opts_.target.empty()) {
    try {
      resolver_ = std::thread([this] { resolveLoop(); });
    } catch (const std::system_error& e) {
      spdlog::warn("replay: cannot start the resolver thread for {} ({}); its addresses stay as resolved at start",
                   opts_.target, e.what());
    }
  }
  started_ = true;
  std::string targets;
  for (const auto& addr : opts_.addrs) {
    targets += (targets.empty() ? "" : ", ") + formatAddress(addr);
  }
  spdlog::info("replay: mirroring to {}{} with up to {} connections, queue {} jobs / {} bytes", opts_.target.empty() ? "" : opts_.target + " = ", targets,
               opts_.maxConnections, opts_.queueCapacity, opts_.queueBytes);
  return true;
}

bool Replayer::admitRate() {
  const int64_t now = nowNs();
  int64_t tat = rateTatNs_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t base = std::max(tat, now);
    if (base - now > rateBurstNs_) {
      return false;
    }
    if (rateTatNs_.compare_exchange_weak(tat, base + rateIntervalNs_, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void Replayer::resolveLoop() {
  base::RateLimitedLog failLog(std::chrono::seconds(60));
  std::unique_lock lock(resolveMutex_);
  for (;;) {
    if (resolveCv_.wait_for(lock, opts_.resolveInterval, [this] { return resolveStop_; })) {
      return;
    }
    lock.unlock();
    // Blocking (getaddrinfo), which is why it runs here and not in the loop.
    ResolveResult result = resolveTarget(opts_.target);
    base::bump(stats_.resolves);
    lock.lock();
    if (!result.error.empty()) {
      base::bump(stats_.resolveErrors);
      uint64_t suppressed = 0;
      if (failLog.allow(std::chrono::steady_clock::now(), suppressed)) {
        spdlog::warn("replay: re-resolving {} failed, keeping its last addresses: {} ({} similar suppressed)",
                     opts_.target, result.error, suppressed);
      }
      continue;
    }
    pendingAddrs_ = std::move(result.addrs);
    addrsPending_.store(true, std::memory_order_release);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof(one));
  }
}

void Replayer::applyAddresses(int64_t now) {
  std::vector<sockaddr_storage> fresh;
  {
    std::lock_guard lock(resolveMutex_);
    addrsPending_.store(false, std::memory_order_relaxed);
    if (!pendingAddrs_) {
      return;
    }
    fresh = std::move(*pendingAddrs_);
    pendingAddrs_.reset();
  }
  auto same = [](const sockaddr_storage& a, const sockaddr_storage& b) {
    size_t len = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    return a.ss_family == b.ss_family && std::memcmp(&a, &b, len) == 0;
  };
  auto indexIn = [&](const std::vector<sockaddr_storage>& list, const sockaddr_storage& addr) -> int {
    for (size_t i = 0; i < list.size(); ++i) {
      if (same(list[i], addr)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
  bool changed = fresh.size() != opts_.addrs.size();
  for (const auto& addr : fresh) {
    changed = changed || indexIn(opts_.addrs, addr) < 0;
  }
  if (!changed || fresh.empty()) {
    return;
  }
  base::bump(stats_.addressChanges);
  std::vector<AddrState> states(fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) {
    int old = indexIn(opts_.addrs, fresh[i]);
    if (old >= 0) {
      states[i] = addrStates_[static_cast<size_t>(old)];
    }
  }
  std::string list;
  for (const auto& addr : fresh) {
    list += (list.empty() ? "" : ", ") + formatAddress(addr);
  }
  spdlog::info("replay: {} now resolves to {}", opts_.target, list);
  opts_.addrs = std::move(fresh);
  addrStates_ = std::move(states);
  nextAddr_ = 0;
  // Connections to an address that left the list finish their request and close.
  for (auto& conn : conns_) {
    if (conn->state() == MirrorConnection::State::kClosed) {
      continue;
    }
    int index = indexIn(opts_.addrs, conn->remoteAddress());
    if (index >= 0) {
      conn->setAddrIndex(static_cast<size_t>(index));
      continue;
    }
    conn->retired = true;
    conn->setAddrIndex(SIZE_MAX);
    if (conn->state() == MirrorConnection::State::kIdle) {
      conn->close();
    }
  }
  (void)now;
}

void Replayer::absorbQueue() {
  // Clear before draining: a job pushed after the drain then wakes us again.
  wakePending_.store(false, std::memory_order_release);
  ReplayJob job;
  while (queue_.tryPop(job)) {
    backlogBytes_ += job.bytes.size();
    backlog_.push_back(std::move(job));
  }
  while (!backlog_.empty() && (backlog_.size() > opts_.queueCapacity || backlogBytes_ > opts_.queueBytes)) {
    ReplayJob& oldest = backlog_.front();
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -static_cast<int64_t>(oldest.bytes.size()));
    base::bump(stats_.droppedOldest);
    reportMissing(oldest.exchangeId);
    backlogBytes_ -= oldest.bytes.size();
    backlog_.pop_front();
  }
}

bool Replayer::jobsWaiting() const { return !backlog_.empty() || queue_.ready(); }

bool Replayer::submit(ReplayJob&& job) {
  base::bump(stats_.submitted);
  const uint64_t exchangeId = job.exchangeId;
  if (!accepting_.load(std::memory_order_acquire)) {
    base::bump(stats_.droppedShutdown);
    reportMissing(exchangeId);
    return false;
  }
  if (rateIntervalNs_ > 0 && !admitRate()) {
    base::bump(stats_.droppedRateLimit);
    reportMissing(exchangeId);
    return false;
  }
  const auto size = static_cast<int64_t>(job.bytes.size());
  // Gauges go up before the push so the loop's decrement never makes them negative.
  base::bump(stats_.queueDepth, 1);
  base::bump(stats_.queueBytes, size);
  if (!queue_.tryPush(job)) {
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -size);
    base::bump(stats_.queueFull);
    reportMissing(exchangeId);
    return false;
  }
  if (!wakePending_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    // Cannot block: the eventfd is non-blocking and never near its limit.
    [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof(one));
    base::bump(stats_.wakeups);
  }
  return true;
}

void Replayer::stop(std::chrono::milliseconds drain) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  accepting_.store(false, std::memory_order_release);
  if (thread_.joinable()) {
    drainDeadlineNs_.store(nowNs() + toNs(drain), std::memory_order_relaxed);
    stopRequested_.store(true, std::memory_order_release);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof(one));
    thread_.join();
  }
  if (resolver_.joinable()) {
    {
      std::lock_guard lock(resolveMutex_);
      resolveStop_ = true;
    }
    resolveCv_.notify_all();
    resolver_.join();
  }
  dropQueued();
  if (started_) {
    spdlog::info("replay: {} stopped; {} submitted, {} responses, {} errors, {} queue full, {} dropped oldest, "
                 "{} rate limited, {} dropped at shutdown",
                 opts_.target, stats_.submitted.load(), stats_.responses.load(), stats_.errors(),
                 stats_.queueFull.load(), stats_.droppedOldest.load(), stats_.droppedRateLimit.load(),
                 stats_.droppedShutdown.load());
  }
}

void Replayer::run() {
  epoll_event events[kMaxEvents];
  for (;;) {
    int64_t now = nowNs();
    if (addrsPending_.load(std::memory_order_acquire)) {
      applyAddresses(now);
    }
    if (opts_.dropPolicy == DropPolicy::kOldest) {
      absorbQueue();
    }
    if (stopRequested_.load(std::memory_order_acquire)) {
      bool idle = queue_.size() == 0 && backlog_.empty() && jobsOnConnections() == 0;
      if (idle || now >= drainDeadlineNs_.load(std::memory_order_relaxed)) {
        break;
      }
    }
    if (dispatch(now)) {
      // Out of jobs: let the next submit wake us. Check again after clearing,
      // or a job pushed just before the clear would wait for an unrelated event.
      wakePending_.exchange(false, std::memory_order_acq_rel);
      if (queue_.ready()) {
        continue;
      }
    }
    int n = ::epoll_wait(epollFd_, events, kMaxEvents, timeoutMs(nowNs()));
    if (n < 0 && errno != EINTR) {
      // Only a bug (bad fd or arguments) gets here; give up rather than spin.
      spdlog::critical("replay: epoll_wait failed: {}; mirroring stops", std::strerror(errno));
      break;
    }
    now = nowNs();
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t value = 0;
        [[maybe_unused]] ssize_t r = ::read(wakeFd_, &value, sizeof(value));
        continue;
      }
      auto* conn = static_cast<MirrorConnection*>(events[i].data.ptr);
      MirrorConnection::Step step = conn->onEvents(events[i].events, readBuf_);
      handleStep(*conn, step, now);
    }
    checkDeadlines(now);
    reapClosed();
  }
  dropEverything();
}

bool Replayer::takeJob(ReplayJob& job) {
  if (!backlog_.empty()) {
    job = std::move(backlog_.front());
    backlog_.pop_front();
    backlogBytes_ -= job.bytes.size();
  } else if (!queue_.tryPop(job)) {
    return false;
  }
  base::bump(stats_.queueDepth, -1);
  base::bump(stats_.queueBytes, -static_cast<int64_t>(job.bytes.size()));
  base::bump(stats_.inFlight, 1);
  return true;
}

bool Replayer::dispatch(int64_t now) {
  for (;;) {
    if (!jobsWaiting()) {
      return true;
    }
    MirrorConnection* idle = nullptr;
    for (auto& conn : conns_) {
      if (conn->state() == MirrorConnection::State::kIdle) {
        idle = conn.get();
        break;
      }
    }
    ReplayJob job;
    if (idle != nullptr) {
      if (!takeJob(job)) {
        return true;
      }
      idle->deadlineNs = now + toNs(opts_.responseTimeout);
      idle->requestStartNs = now;
      MirrorConnection::Step step = idle->startRequest(std::move(job));
      handleStep(*idle, step, now);
      continue;
    }
    if (liveConnections() >= opts_.maxConnections) {
      return false;
    }
    int addrIndex = pickAddress(now);
    if (addrIndex < 0) {
      return false;  // every address is backing off; the queue waits (bounded)
    }
    if (!takeJob(job)) {
      return true;
    }
    base::bump(stats_.connectAttempts);
    int err = 0;
    const uint64_t exchangeId = job.exchangeId;
    auto conn = MirrorConnection::open(opts_.addrs[addrIndex], static_cast<size_t>(addrIndex), std::move(job),
                                       opts_.maxResponseBytes, err, opts_.localEndpoints);
    if (conn && keeping()) {
      conn->keepResponses(&opts_.responseLimits, &keptStats_);
    }
    if (conn) {
      epoll_event ev{};
      ev.events = kBaseEvents | EPOLLOUT;
      ev.data.ptr = conn.get();
      if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, conn->fd(), &ev) != 0) {
        err = errno;
        conn->close();
        conn.reset();
      }
    }
    if (!conn) {
      base::bump(stats_.inFlight, -1);
      base::bump(stats_.errorsConnect);
      reportMissing(exchangeId);
      noteConnectFailure(static_cast<size_t>(addrIndex), now, ReplayError::kConnect, err);
      continue;
    }
    conn->deadlineNs = now + toNs(opts_.connectTimeout);
    conn->registeredEvents = kBaseEvents | EPOLLOUT;
    base::bump(stats_.openConnections, 1);
    conns_.push_back(std::move(conn));
  }
}

void Replayer::handleStep(MirrorConnection& conn, const MirrorConnection::Step& step, int64_t now) {
  if (step.bytesWritten > 0) {
    base::bump(stats_.bytesSent, step.bytesWritten);
  }
  if (step.requestWritten) {
    base::bump(stats_.sent);
  }
  if (step.bytesRead > 0) {
    base::bump(stats_.bytesReceived, step.bytesRead);
  }
  if (step.connected) {
    base::bump(stats_.connectionsOpened);
    if (conn.addrIndex() < addrStates_.size()) {
      addrStates_[conn.addrIndex()] = AddrState{};
    }
    conn.deadlineNs = now + toNs(opts_.responseTimeout);
    conn.requestStartNs = now;
  }
  if (step.finished) {
    base::bump(stats_.inFlight, -1);
    if (step.status > 0) {
      countResponse(step.status);
      stats_.latency.observe(static_cast<uint64_t>(std::max<int64_t>(0, nowNs() - conn.requestStartNs)) / 1000);
    } else {
      countError(step.error, &conn, now);
    }
    if (step.exchangeId != 0) {
      std::optional<model::Response> kept = step.status > 0 ? conn.takeKeptResponse() : std::nullopt;
      if (kept) {
        reportKept(step.exchangeId, std::move(*kept));
      } else {
        reportMissing(step.exchangeId);
      }
    }
  }
  if (step.connectFailed && conn.addrIndex() < addrStates_.size()) {
    noteConnectFailure(conn.addrIndex(), now, step.error, step.osError);
  }
  if (conn.state() == MirrorConnection::State::kClosed) {
    return;  // the socket left epoll when it was closed; reapClosed() discards it
  }
  if (step.finished && conn.state() == MirrorConnection::State::kIdle) {
    if (conn.retired) {
      conn.close();
      return;
    }
    conn.deadlineNs = now + toNs(opts_.idleTimeout);
  }
  uint32_t wanted = kBaseEvents | (conn.wantsWrite() ? static_cast<uint32_t>(EPOLLOUT) : 0U);
  if (wanted != conn.registeredEvents) {
    epoll_event ev{};
    ev.events = wanted;
    ev.data.ptr = &conn;
    if (::epoll_ctl(epollFd_, EPOLL_CTL_MOD, conn.fd(), &ev) == 0) {
      conn.registeredEvents = wanted;
    }
  }
}

void Replayer::checkDeadlines(int64_t now) {
  for (auto& conn : conns_) {
    if (conn->state() == MirrorConnection::State::kClosed || conn->deadlineNs > now) {
      continue;
    }
    switch (conn->state()) {
      case MirrorConnection::State::kConnecting:
        handleStep(*conn, conn->abort(ReplayError::kConnectTimeout), now);
        break;
      case MirrorConnection::State::kBusy:
        handleStep(*conn, conn->abort(ReplayError::kResponseTimeout), now);
        break;
      case MirrorConnection::State::kIdle:
        conn->close();
        break;
      case MirrorConnection::State::kClosed:
        break;
    }
  }
}

int Replayer::timeoutMs(int64_t now) const {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const auto& conn : conns_) {
    if (conn->state() != MirrorConnection::State::kClosed) {
      next = std::min(next, conn->deadlineNs);
    }
  }
  // Waiting jobs and room for a connection: wake when the next backoff ends.
  if ((queue_.size() > 0 || !backlog_.empty()) && liveConnections() < opts_.maxConnections) {
    for (const auto& addr : addrStates_) {
      next = std::min(next, std::max(addr.retryAtNs, now));
    }
  }
  if (stopRequested_.load(std::memory_order_relaxed)) {
    next = std::min(next, drainDeadlineNs_.load(std::memory_order_relaxed));
  }
  if (next == std::numeric_limits<int64_t>::max()) {
    return -1;
  }
  if (next <= now) {
    return 0;
  }
  // Round up: waking a little early would only turn around and wait again.
  int64_t ms = (next - now + 999'999) / 1'000'000;
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

void Replayer::reapClosed() {
  auto closed = [this](const std::unique_ptr<MirrorConnection>& conn) {
    if (conn->state() != MirrorConnection::State::kClosed) {
      return false;
    }
    base::bump(stats_.openConnections, -1);
    if (conn->established()) {
      base::bump(stats_.connectionsClosed);
    }
    return true;
  };
  conns_.erase(std::remove_if(conns_.begin(), conns_.end(), closed), conns_.end());
}

void Replayer::dropEverything() {
  for (auto& conn : conns_) {
    if (std::optional<ReplayJob> job = conn->close(); job.has_value()) {
      base::bump(stats_.inFlight, -1);
      base::bump(stats_.droppedShutdown);
      reportMissing(job->exchangeId);
    }
  }
  reapClosed();
  dropQueued();
}

void Replayer::dropQueued() {
  while (!backlog_.empty()) {
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -static_cast<int64_t>(backlog_.front().bytes.size()));
    base::bump(stats_.droppedShutdown);
    reportMissing(backlog_.front().exchangeId);
    backlog_.pop_front();
  }
  backlogBytes_ = 0;
  ReplayJob job;
  while (queue_.tryPop(job)) {
    base::bump(stats_.queueDepth, -1);
    base::bump(stats_.queueBytes, -static_cast<int64_t>(job.bytes.size()));
    base::bump(stats_.droppedShutdown);
    reportMissing(job.exchangeId);
  }
}

void Replayer::reportKept(uint64_t exchangeId, model::Response&& response) {
  if (!opts_.onKeptResponse) {
    reportMissing(exchangeId);
    return;
  }
  base::bump(stats_.keptResponses);
  opts_.onKeptResponse(exchangeId, opts_.comparePart, std::move(response));
}

void Replayer::reportMissing(uint64_t exchangeId) {
  if (exchangeId == 0 || !keeping()) {
    return;
  }
  base::bump(stats_.missingResponses);
  opts_.onMissingResponse(exchangeId, opts_.comparePart);
}

void Replayer::countResponse(int status) {
  base::bump(stats_.responses);
  switch (status / 100) {
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
}

void Replayer::countError(ReplayError error, const MirrorConnection* conn, int64_t now) {
  switch (error) {
    case ReplayError::kConnect:
      base::bump(stats_.errorsConnect);
      return;  // logged by noteConnectFailure
    case ReplayError::kConnectTimeout:
      base::bump(stats_.errorsConnectTimeout);
      return;
    case ReplayError::kReset:
      base::bump(stats_.errorsReset);
      break;
    case ReplayError::kResponseTimeout:
      base::bump(stats_.errorsResponseTimeout);
      break;
    case ReplayError::kBadResponse:
      base::bump(stats_.errorsBadResponse);
      break;
    case ReplayError::kResponseTooLarge:
      base::bump(stats_.errorsResponseTooLarge);
      break;
    case ReplayError::kNone:
      // A finished job has a status or an error; count it somewhere rather than lose it.
      base::bump(stats_.errorsBadResponse);
      break;
  }
  uint64_t suppressed = 0;
  if (errorLog_.allow(toTimePoint(now), suppressed)) {
    spdlog::warn("replay: request to mirror {}: {} ({} similar warnings suppressed; see the replay counters)",
                 conn != nullptr ? formatAddress(conn->remoteAddress()) : "?", errorName(error),
                 suppressed);
  }
}

void Replayer::noteConnectFailure(size_t addrIndex, int64_t now, ReplayError error, int err) {
  AddrState& addr = addrStates_[addrIndex];
  // Connects started in the same round fail together; only the first failure
  // after the backoff ran out lengthens it.
  if (now >= addr.retryAtNs) {
    int64_t initial = toNs(opts_.backoffInitial);
    int64_t maxBackoff = std::max(initial, toNs(opts_.backoffMax));
    addr.backoffNs = addr.backoffNs == 0 ? initial : std::min(addr.backoffNs * 2, maxBackoff);
    addr.retryAtNs = now + addr.backoffNs;
  }
  uint64_t suppressed = 0;
  if (connectLog_.allow(toTimePoint(now), suppressed)) {
    std::string why = err != 0 ? std::strerror(err) : errorName(error);
    spdlog::warn("replay: cannot connect to mirror {}: {}; next attempt in {} ms, jobs queue up to the limit "
                 "meanwhile ({} similar warnings suppressed)",
                 formatAddress(opts_.addrs[addrIndex]), why, addr.backoffNs / 1'000'000, suppressed);
  }
}

int Replayer::pickAddress(int64_t now) {
  const size_t count = opts_.addrs.size();
  for (size_t i = 0; i < count; ++i) {
    size_t index = (nextAddr_ + i) % count;
    if (addrStates_[index].retryAtNs <= now) {
      nextAddr_ = index + 1;
      return static_cast<int>(index);
    }
  }
  return -1;
}

size_t Replayer::liveConnections() const {
  size_t live = 0;
  for (const auto& conn : conns_) {
    live += conn->state() != MirrorConnection::State::kClosed ? 1 : 0;
  }
  return live;
}

size_t Replayer::jobsOnConnections() const {
  size_t jobs = 0;
  for (const auto& conn : conns_) {
    jobs += conn->hasJob() ? 1 : 0;
  }
  return jobs;
}

}  // namespace shadowtap::replay
