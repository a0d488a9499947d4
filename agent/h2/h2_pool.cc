#include "h2/h2_pool.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace shadowtap::h2 {
namespace {

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

constexpr int kTickMs = 50;

}  // namespace

H2Pool::H2Pool(H2PoolOptions opts) : opts_(std::move(opts)) { retryAtNs_.assign(opts_.addrs.size(), 0); }

H2Pool::~H2Pool() { stop(std::chrono::milliseconds(0)); }

bool H2Pool::start() {
  if (started_ || opts_.addrs.empty()) {
    return false;
  }
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || wakeFd_ < 0) {
    spdlog::error("h2 pool: cannot create epoll/eventfd: {}", std::strerror(errno));
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev);
  started_ = true;
  thread_ = std::thread([this] { run(); });
  return true;
}

bool H2Pool::submit(H2Request&& request) {
  bump(stats_.submitted);
  if (!accepting_.load(std::memory_order_acquire)) {
    bump(stats_.droppedShutdown);
    return false;
  }
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= opts_.queueCapacity) {
      bump(stats_.queueFull);
      return false;
    }
    wasEmpty = queue_.empty();
    queue_.push_back(std::move(request));
  }
  stats_.queueDepth.fetch_add(1, std::memory_order_relaxed);
  if (wasEmpty && wakeFd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wakeFd_, &one, sizeof(one));
  }
  return true;
}

void H2Pool::stop(std::chrono::milliseconds drain) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  accepting_.store(false, std::memory_order_release);
  if (started_) {
    drainDeadlineNs_.store(static_cast<int64_t>(monotonicNs()) +
                               std::chrono::duration_cast<std::chrono::nanoseconds>(drain).count(),
                           std::memory_order_relaxed);
    stopRequested_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!write(wakeFd_, &one, sizeof(one));
    thread_.join();
  }
  // Whatever is left never reached a connection.
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < queue_.size(); ++i) {
    bump(stats_.droppedShutdown);
  }
  stats_.queueDepth.fetch_sub(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
  queue_.clear();
  if (epollFd_ >= 0) {
    close(epollFd_);
  }
  if (wakeFd_ >= 0) {
    close(wakeFd_);
  }
  epollFd_ = wakeFd_ = -1;
}

void H2Pool::onOutcome(const H2Outcome& o) {
  stats_.inFlight.fetch_sub(1, std::memory_order_relaxed);
  switch (o.kind) {
    case H2Outcome::Kind::kResponse:
      bump(stats_.responses);
      if (o.status >= 200 && o.status < 300) {
        bump(stats_.responses2xx);
      } else if (o.status >= 300 && o.status < 400) {
        bump(stats_.responses3xx);
      } else if (o.status >= 400 && o.status < 500) {
        bump(stats_.responses4xx);
      } else if (o.status >= 500 && o.status < 600) {
        bump(stats_.responses5xx);
      } else {
        bump(stats_.responsesOther);
      }
      if (o.grpcStatus >= 0) {
        bump(o.grpcStatus == 0 ? stats_.grpcOk : stats_.grpcError);
      }
      break;
    case H2Outcome::Kind::kStreamReset:
      bump(stats_.errorsReset);
      break;
    case H2Outcome::Kind::kConnectFailed:
      bump(stats_.errorsConnect);
      break;
    case H2Outcome::Kind::kConnectionError:
      bump(stats_.errorsConnection);
      break;
    case H2Outcome::Kind::kTimeout:
      bump(stats_.errorsTimeout);
      break;
    case H2Outcome::Kind::kRejected:
      bump(stats_.errorsRejected);
      break;
    case H2Outcome::Kind::kShutdown:
      bump(stats_.droppedShutdown);
      break;
  }
}

void H2Pool::updateInterest(Conn& c) {
  if (c.client->closed()) {
    return;
  }
  const bool want = c.client->wantsWrite();
  if (want == c.wantOut) {
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? static_cast<uint32_t>(EPOLLOUT) : 0U);
  ev.data.ptr = &c;
  epoll_ctl(epollFd_, EPOLL_CTL_MOD, c.client->fd(), &ev);
  c.wantOut = want;
}

void H2Pool::connectMore(uint64_t now) {
  while (conns_.size() < opts_.connections) {
    // Next address not backing off.
    size_t tried = 0;
    while (tried < opts_.addrs.size() && retryAtNs_[nextAddr_] > now) {
      nextAddr_ = (nextAddr_ + 1) % opts_.addrs.size();
      ++tried;
    }
    if (tried == opts_.addrs.size()) {
      return;
    }
    const size_t a = nextAddr_;
    nextAddr_ = (nextAddr_ + 1) % opts_.addrs.size();
    bump(stats_.connectAttempts);
    int err = 0;
    auto client = H2MirrorClient::connect(opts_.addrs[a], opts_.client, now, &err);
    if (!client) {
      retryAtNs_[a] = now + static_cast<uint64_t>(opts_.reconnectBackoff.count()) * 1'000'000ULL;
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->client = std::move(client);
    c->addrIndex = a;
    c->wantOut = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c.get();
    epoll_ctl(epollFd_, EPOLL_CTL_ADD, c->client->fd(), &ev);
    conns_.push_back(std::move(c));
  }
}

void H2Pool::dispatch(uint64_t now) {
  size_t rr = 0;
  for (;;) {
    Conn* target = nullptr;
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = *conns_[(rr + i) % conns_.size()];
      if (c.client->canAccept()) {
        target = &c;
        rr = (rr + i + 1) % conns_.size();
        break;
      }
    }
    if (target == nullptr) {
      return;
    }
    H2Request r;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (queue_.empty()) {
        return;
      }
      r = std::move(queue_.front());
      queue_.pop_front();
    }
    stats_.queueDepth.fetch_sub(1, std::memory_order_relaxed);
    stats_.inFlight.fetch_add(1, std::memory_order_relaxed);
    target->client->submit(std::move(r), [this](const H2Outcome& o) { onOutcome(o); }, now);
    updateInterest(*target);
  }
}

void H2Pool::reap() {
  for (size_t i = 0; i < conns_.size();) {
    Conn& c = *conns_[i];
    if (c.client->connected() && !c.opened) {
      c.opened = true;
      bump(stats_.connectionsOpened);
    }
    if (c.client->closed()) {
      if (c.opened) {
        bump(stats_.connectionsClosed);
      } else {
        // Never came up: back off this address before the next try.
        retryAtNs_[c.addrIndex] =
            monotonicNs() + static_cast<uint64_t>(opts_.reconnectBackoff.count()) * 1'000'000ULL;
      }
      stats_.bytesSent.fetch_add(c.client->bytesSent(), std::memory_order_relaxed);
      stats_.bytesReceived.fetch_add(c.client->bytesReceived(), std::memory_order_relaxed);
      conns_.erase(conns_.begin() + static_cast<ptrdiff_t>(i));  // its fd is closed, so epoll forgot it
      continue;
    }
    ++i;
  }
}

bool H2Pool::idle() {
  for (const auto& c : conns_) {
    if (c->client->inFlight() + c->client->queued() > 0) {
      return false;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.empty();
}

void H2Pool::run() {
  epoll_event events[64];
  for (;;) {
    uint64_t now = monotonicNs();
    bool waiting;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      waiting = !queue_.empty();
    }
    if (waiting) {
      connectMore(now);
    }
    dispatch(now);
    if (stopRequested_.load(std::memory_order_acquire) &&
        (idle() || static_cast<int64_t>(now) >= drainDeadlineNs_.load(std::memory_order_relaxed))) {
      break;
    }
    const int n = epoll_wait(epollFd_, events, 64, kTickMs);
    now = monotonicNs();
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t v;
        (void)!read(wakeFd_, &v, sizeof(v));
        continue;
      }
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if ((events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
        c.client->onWritable(now);
      }
      if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        c.client->onReadable(now);
      }
    }
    for (auto& c : conns_) {
      c->client->checkTimeouts(now);
      updateInterest(*c);
    }
    reap();
  }
  // Drain over: what is left on connections ends as kShutdown.
  for (auto& c : conns_) {
    if (c->client->connected() && !c->opened) {
      bump(stats_.connectionsOpened);
      c->opened = true;
    }
    c->client->close(H2Outcome::Kind::kShutdown);
    if (c->opened) {
      bump(stats_.connectionsClosed);
    }
    stats_.bytesSent.fetch_add(c->client->bytesSent(), std::memory_order_relaxed);
    stats_.bytesReceived.fetch_add(c->client->bytesReceived(), std::memory_order_relaxed);
  }
  conns_.clear();
}

}  // namespace shadowtap::h2
