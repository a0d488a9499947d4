#include "replay/replayer.h"

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

void add(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }
void add(std::atomic<int64_t>& gauge, int64_t n) { gauge.fetch_add(n, std::memory_order_relaxed); }

}  // namespace

Replayer::Replayer(ReplayOptions opts)
    : opts_(std::move(opts)),
      queue_(opts_.queueCapacity, opts_.queueBytes),
      addrStates_(opts_.addrs.size()),
      readBuf_(kReadBufferSize) {
  if (opts_.maxConnections == 0) {
    opts_.maxConnections = 1;
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
  started_ = true;
  std::string targets;
  for (const auto& addr : opts_.addrs) {
    targets += (targets.empty() ? "" : ", ") + formatAddress(addr);
  }
  spdlog::info("replay: mirroring to {} with up to {} connections, queue {} jobs / {} bytes", targets,
               opts_.maxConnections, opts_.queueCapacity, opts_.queueBytes);
  return true;
}

bool Replayer::submit(ReplayJob&& job) {
  add(stats_.submitted);
  if (!accepting_.load(std::memory_order_acquire)) {
    add(stats_.droppedShutdown);
    return false;
  }
  const auto size = static_cast<int64_t>(job.bytes.size());
  // Gauges go up before the push so the loop's decrement never makes them negative.
  add(stats_.queueDepth, 1);
  add(stats_.queueBytes, size);
  if (!queue_.tryPush(job)) {
    add(stats_.queueDepth, -1);
    add(stats_.queueBytes, -size);
    add(stats_.queueFull);
    return false;
  }
  if (!wakePending_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    // Cannot block: the eventfd is non-blocking and never near its limit.
    [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof(one));
    add(stats_.wakeups);
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
  dropQueued();
  if (started_) {
    spdlog::info("replay: stopped; {} submitted, {} responses, {} errors, {} queue full, {} dropped at shutdown",
                 stats_.submitted.load(), stats_.responses.load(), stats_.errors(), stats_.queueFull.load(),
                 stats_.droppedShutdown.load());
  }
}

void Replayer::run() {
  epoll_event events[kMaxEvents];
  for (;;) {
    int64_t now = nowNs();
    if (stopRequested_.load(std::memory_order_acquire)) {
      bool idle = queue_.size() == 0 && jobsOnConnections() == 0;
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
  if (!queue_.tryPop(job)) {
    return false;
  }
  add(stats_.queueDepth, -1);
  add(stats_.queueBytes, -static_cast<int64_t>(job.bytes.size()));
  add(stats_.inFlight, 1);
  return true;
}

bool Replayer::dispatch(int64_t now) {
  for (;;) {
    if (!queue_.ready()) {
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
    add(stats_.connectAttempts);
    int err = 0;
    auto conn = MirrorConnection::open(opts_.addrs[addrIndex], static_cast<size_t>(addrIndex), std::move(job),
                                       opts_.maxResponseBytes, err);
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
      add(stats_.inFlight, -1);
      add(stats_.errorsConnect);
      noteConnectFailure(static_cast<size_t>(addrIndex), now, ReplayError::kConnect, err);
      continue;
    }
    conn->deadlineNs = now + toNs(opts_.connectTimeout);
    conn->registeredEvents = kBaseEvents | EPOLLOUT;
    add(stats_.openConnections, 1);
    conns_.push_back(std::move(conn));
  }
}

void Replayer::handleStep(MirrorConnection& conn, const MirrorConnection::Step& step, int64_t now) {
  if (step.bytesWritten > 0) {
    add(stats_.bytesSent, step.bytesWritten);
  }
  if (step.requestWritten) {
    add(stats_.sent);
  }
  if (step.bytesRead > 0) {
    add(stats_.bytesReceived, step.bytesRead);
  }
  if (step.connected) {
    add(stats_.connectionsOpened);
    addrStates_[conn.addrIndex()] = AddrState{};
    conn.deadlineNs = now + toNs(opts_.responseTimeout);
  }
  if (step.finished) {
    add(stats_.inFlight, -1);
    if (step.status > 0) {
      countResponse(step.status);
    } else {
      countError(step.error, &conn, now);
    }
  }
  if (step.connectFailed) {
    noteConnectFailure(conn.addrIndex(), now, step.error, step.osError);
  }
  if (conn.state() == MirrorConnection::State::kClosed) {
    return;  // the socket left epoll when it was closed; reapClosed() discards it
  }
  if (step.finished && conn.state() == MirrorConnection::State::kIdle) {
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
  if (queue_.size() > 0 && liveConnections() < opts_.maxConnections) {
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
    add(stats_.openConnections, -1);
    if (conn->established()) {
      add(stats_.connectionsClosed);
    }
    return true;
  };
  conns_.erase(std::remove_if(conns_.begin(), conns_.end(), closed), conns_.end());
}

void Replayer::dropEverything() {
  for (auto& conn : conns_) {
    if (conn->close().has_value()) {
      add(stats_.inFlight, -1);
      add(stats_.droppedShutdown);
    }
  }
  reapClosed();
  dropQueued();
}

void Replayer::dropQueued() {
  ReplayJob job;
  while (queue_.tryPop(job)) {
    add(stats_.queueDepth, -1);
    add(stats_.queueBytes, -static_cast<int64_t>(job.bytes.size()));
    add(stats_.droppedShutdown);
  }
}

void Replayer::countResponse(int status) {
  add(stats_.responses);
  switch (status / 100) {
    case 1:
      add(stats_.responses1xx);
      break;
    case 2:
      add(stats_.responses2xx);
      break;
    case 3:
      add(stats_.responses3xx);
      break;
    case 4:
      add(stats_.responses4xx);
      break;
    case 5:
      add(stats_.responses5xx);
      break;
    default:
      add(stats_.responsesOther);
      break;
  }
}

void Replayer::countError(ReplayError error, const MirrorConnection* conn, int64_t now) {
  switch (error) {
    case ReplayError::kConnect:
      add(stats_.errorsConnect);
      return;  // logged by noteConnectFailure
    case ReplayError::kConnectTimeout:
      add(stats_.errorsConnectTimeout);
      return;
    case ReplayError::kReset:
      add(stats_.errorsReset);
      break;
    case ReplayError::kResponseTimeout:
      add(stats_.errorsResponseTimeout);
      break;
    case ReplayError::kBadResponse:
      add(stats_.errorsBadResponse);
      break;
    case ReplayError::kResponseTooLarge:
      add(stats_.errorsResponseTooLarge);
      break;
    case ReplayError::kNone:
      // A finished job has a status or an error; count it somewhere rather than lose it.
      add(stats_.errorsBadResponse);
      break;
  }
  uint64_t suppressed = 0;
  if (errorLog_.allow(toTimePoint(now), suppressed)) {
    spdlog::warn("replay: request to mirror {}: {} ({} similar warnings suppressed; see the replay counters)",
                 conn != nullptr ? formatAddress(opts_.addrs[conn->addrIndex()]) : "?", errorName(error),
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
