#include "h2/h2_pool.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/clock.h"
#include "base/counters.h"
#include "base/rate_limited_log.h"

namespace shadowtap::h2 {
namespace {


void wake(int fd) {
  const uint64_t one = 1;
  // Non-blocking eventfd, never near its limit: cannot block or fail usefully.
  (void)!write(fd, &one, sizeof(one));
}

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  const size_t len = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return a.ss_family == b.ss_family && std::memcmp(&a, &b, len) == 0;
}

int indexIn(const std::vector<sockaddr_storage>& list, const sockaddr_storage& addr) {
  for (size_t i = 0; i < list.size(); ++i) {
    if (sameAddress(list[i], addr)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

size_t fieldsSize(const std::vector<model::HeaderField>& fields) {
  size_t n = 0;
  for (const model::HeaderField& f : fields) {
    n += f.name.size() + f.value.size();
  }
  return n;
}

constexpr int kTickMs = 50;

}  // namespace

size_t queuedSize(const model::Request& request) {
  return fieldsSize(request.headers) + request.body.size() + fieldsSize(request.trailers);
}

H2Pool::H2Pool(H2PoolOptions opts) : opts_(std::move(opts)) {
  retryAtNs_.assign(opts_.addrs.size(), 0);
  if (opts_.maxRps > 0) {
    rateIntervalNs_ = 1'000'000'000LL / opts_.maxRps;
    const int64_t burst = std::max<int64_t>(1, opts_.maxRps / 10);
    rateBurstNs_ = (burst - 1) * rateIntervalNs_;
  }
  opts_.client.keepResponses = keeping();
  opts_.client.keepTrailers = opts_.keepTrailers;
  opts_.client.responseLimits = opts_.responseLimits;
}

H2Pool::~H2Pool() { stop(std::chrono::milliseconds(0)); }

bool H2Pool::start() {
  if (started_ || stopped_ || opts_.addrs.empty()) {
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
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    spdlog::error("h2 pool: cannot start the event loop thread: {}", e.what());
    return false;
  }
  started_ = true;
  if (opts_.resolveInterval.count() > 0 && !opts_.target.empty()) {
    try {
      resolver_ = std::thread([this] { resolveLoop(); });
    } catch (const std::system_error& e) {
      spdlog::warn("h2 pool: cannot start the resolver thread for {} ({}); its addresses stay as resolved at start",
                   opts_.target, e.what());
    }
  }
  return true;
}

bool H2Pool::admitRate() {
  const auto now = static_cast<int64_t>(base::monotonicNs());
  int64_t tat = rateTatNs_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now);
    if (base - now > rateBurstNs_) {
      return false;
    }
    if (rateTatNs_.compare_exchange_weak(tat, base + rateIntervalNs_, std::memory_order_relaxed)) {
      return true;
    }
  }
}

H2Pool::Queued H2Pool::popFront() {
  Queued q = std::move(queue_.front());
  queue_.pop_front();
  queuedBytes_ -= q.bytes;
  stats_.queueDepth.fetch_sub(1, std::memory_order_relaxed);
  stats_.queueBytes.fetch_sub(static_cast<int64_t>(q.bytes), std::memory_order_relaxed);
  return q;
}

bool H2Pool::submit(model::Request&& request) {
  base::bump(stats_.submitted);
  const uint64_t exchangeId = request.exchangeId;
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
  const size_t bytes = queuedSize(request);
  // Requests pushed out are destroyed and reported after the lock is released:
  // their bodies may be large, and the callback is the caller's code.
  std::vector<Queued> pushedOut;
  bool queued = false;
  bool shutdown = false;
  bool wasEmpty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto fits = [&] { return queue_.size() < opts_.queueCapacity && queuedBytes_ + bytes <= opts_.queueBytes; };
    if (!accepting_.load(std::memory_order_relaxed)) {
      shutdown = true;
    } else if (bytes <= opts_.queueBytes) {
      if (opts_.dropPolicy == replay::DropPolicy::kOldest) {
        while (!fits() && !queue_.empty()) {
          pushedOut.push_back(popFront());
        }
      }
      if (fits()) {
        wasEmpty = queue_.empty();
        queuedBytes_ += bytes;
        stats_.queueDepth.fetch_add(1, std::memory_order_relaxed);
        stats_.queueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
        queue_.push_back(Queued{std::move(request), bytes});
        queued = true;
        // Under the mutex: stop() closes the eventfd under it, so it is still open here.
        if (wasEmpty && wakeFd_ >= 0) {
          wake(wakeFd_);
        }
      }
    }
  }
  for (const Queued& q : pushedOut) {
    base::bump(stats_.droppedOldest);
    reportMissing(q.request.exchangeId);
  }
  if (!queued) {
    base::bump(shutdown ? stats_.droppedShutdown : stats_.queueFull);
    reportMissing(exchangeId);
    return false;
  }
  return true;
}

void H2Pool::stop(std::chrono::milliseconds drain) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  {
    // Under the lock: a submit() that saw accepting_ before cannot push after the sweep below.
    std::lock_guard<std::mutex> lock(mutex_);
    accepting_.store(false, std::memory_order_release);
  }
  if (started_) {
    drainDeadlineNs_.store(static_cast<int64_t>(base::monotonicNs()) +
                               std::chrono::duration_cast<std::chrono::nanoseconds>(drain).count(),
                           std::memory_order_relaxed);
    stopRequested_.store(true, std::memory_order_release);
    wake(wakeFd_);
    thread_.join();
  }
  if (resolver_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(resolveMutex_);
      resolveStop_ = true;
    }
    resolveCv_.notify_all();
    resolver_.join();
  }
  // Whatever is left never reached a connection.
  std::vector<Queued> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!queue_.empty()) {
      left.push_back(popFront());
    }
  }
  for (const Queued& q : left) {
    base::bump(stats_.droppedShutdown);
    reportMissing(q.request.exchangeId);
  }
  if (epollFd_ >= 0) {
    close(epollFd_);
  }
  std::lock_guard<std::mutex> lock(mutex_);  // a submit() racing with stop() writes it under the mutex
  if (wakeFd_ >= 0) {
    close(wakeFd_);
  }
  epollFd_ = wakeFd_ = -1;
}

void H2Pool::reportMissing(uint64_t exchangeId) {
  if (exchangeId == 0 || !keeping()) {
    return;
  }
  base::bump(stats_.missingResponses);
  opts_.onMissingResponse(exchangeId, opts_.comparePart);
}

void H2Pool::onOutcome(const H2Outcome& o, uint64_t exchangeId) {
  stats_.inFlight.fetch_sub(1, std::memory_order_relaxed);
  switch (o.kind) {
    case H2Outcome::Kind::kResponse:
      base::bump(stats_.responses);
      if (o.status >= 200 && o.status < 300) {
        base::bump(stats_.responses2xx);
      } else if (o.status >= 300 && o.status < 400) {
        base::bump(stats_.responses3xx);
      } else if (o.status >= 400 && o.status < 500) {
        base::bump(stats_.responses4xx);
      } else if (o.status >= 500 && o.status < 600) {
        base::bump(stats_.responses5xx);
      } else {
        base::bump(stats_.responsesOther);
      }
      if (o.grpcStatus >= 0) {
        base::bump(o.grpcStatus == 0 ? stats_.grpcOk : stats_.grpcError);
      }
      stats_.latency.observe(o.latencyNs / 1000);
      break;
    case H2Outcome::Kind::kStreamReset:
      base::bump(stats_.errorsReset);
      break;
    case H2Outcome::Kind::kConnectFailed:
      base::bump(stats_.errorsConnect);
      break;
    case H2Outcome::Kind::kConnectionError:
      base::bump(stats_.errorsConnection);
      break;
    case H2Outcome::Kind::kTimeout:
      base::bump(stats_.errorsTimeout);
      break;
    case H2Outcome::Kind::kRejected:
      base::bump(stats_.errorsRejected);
      break;
    case H2Outcome::Kind::kShutdown:
      base::bump(stats_.droppedShutdown);
      break;
  }
  if (exchangeId == 0 || !keeping()) {
    return;
  }
  if (o.kind != H2Outcome::Kind::kResponse || o.response == nullptr || !opts_.onKeptResponse) {
    reportMissing(exchangeId);
    return;
  }
  if (o.response->headersTruncated) {
    base::bump(stats_.headersTruncated);
  }
  if (o.response->bodyTruncated) {
    base::bump(stats_.bodiesTruncated);
  }
  base::bump(stats_.keptResponses);
  opts_.onKeptResponse(exchangeId, opts_.comparePart, std::move(*o.response));
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
  // Retired connections are on their way out and do not count.
  size_t live = 0;
  for (const auto& c : conns_) {
    live += c->retired ? 0 : 1;
  }
  while (live < opts_.connections && !opts_.addrs.empty()) {
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
    base::bump(stats_.connectAttempts);
    int err = 0;
    auto client = H2MirrorClient::connect(opts_.addrs[a], opts_.client, now, &err);
    if (!client) {
      retryAtNs_[a] = now + static_cast<uint64_t>(opts_.reconnectBackoff.count()) * 1'000'000ULL;
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->client = std::move(client);
    c->addrIndex = a;
    c->addr = opts_.addrs[a];
    c->wantOut = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c.get();
    epoll_ctl(epollFd_, EPOLL_CTL_ADD, c->client->fd(), &ev);
    conns_.push_back(std::move(c));
    ++live;
  }
}

void H2Pool::dispatch(uint64_t now) {
  size_t rr = 0;
  for (;;) {
    Conn* target = nullptr;
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = *conns_[(rr + i) % conns_.size()];
      if (!c.retired && c.client->canAccept()) {
        target = &c;
        rr = (rr + i + 1) % conns_.size();
        break;
      }
    }
    if (target == nullptr) {
      return;
    }
    Queued q;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (queue_.empty()) {
        return;
      }
      q = popFront();
    }
    stats_.inFlight.fetch_add(1, std::memory_order_relaxed);
    const uint64_t exchangeId = q.request.exchangeId;
    auto done = [this, exchangeId](const H2Outcome& o) { onOutcome(o, exchangeId); };
    if (!target->client->submit(std::move(q.request), done, now)) {
      // canAccept() said yes just now; count it rather than lose it.
      H2Outcome o;
      o.kind = H2Outcome::Kind::kRejected;
      onOutcome(o, exchangeId);
    }
    updateInterest(*target);
  }
}

void H2Pool::reap() {
  for (size_t i = 0; i < conns_.size();) {
    Conn& c = *conns_[i];
    if (c.client->connected() && !c.opened) {
      c.opened = true;
      base::bump(stats_.connectionsOpened);
    }
    if (c.retired && !c.client->closed() && c.client->inFlight() + c.client->queued() == 0) {
      c.client->close(H2Outcome::Kind::kConnectionError);  // nothing left on it to end
    }
    if (c.client->closed()) {
      if (c.opened) {
        base::bump(stats_.connectionsClosed);
      } else if (c.addrIndex < retryAtNs_.size()) {
        // Never came up: back off this address before the next try.
        retryAtNs_[c.addrIndex] =
            base::monotonicNs() + static_cast<uint64_t>(opts_.reconnectBackoff.count()) * 1'000'000ULL;
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

void H2Pool::resolveLoop() {
  base::RateLimitedLog failLog(std::chrono::seconds(60));
  std::unique_lock<std::mutex> lock(resolveMutex_);
  for (;;) {
    if (resolveCv_.wait_for(lock, opts_.resolveInterval, [this] { return resolveStop_; })) {
      return;
    }
    lock.unlock();
    // Blocking (getaddrinfo), which is why it runs here and not in the loop.
    replay::ResolveResult result = opts_.resolve ? opts_.resolve(opts_.target) : replay::resolveTarget(opts_.target);
    base::bump(stats_.resolves);
    lock.lock();
    if (!result.error.empty() || result.addrs.empty()) {
      base::bump(stats_.resolveErrors);
      uint64_t suppressed = 0;
      if (failLog.allow(std::chrono::steady_clock::now(), suppressed)) {
        spdlog::warn("h2 pool: re-resolving {} failed, keeping its last addresses: {} ({} similar suppressed)",
                     opts_.target, result.error.empty() ? "no address" : result.error, suppressed);
      }
      continue;
    }
    pendingAddrs_ = std::move(result.addrs);
    addrsPending_.store(true, std::memory_order_release);
    wake(wakeFd_);
  }
}

void H2Pool::applyAddresses() {
  std::vector<sockaddr_storage> fresh;
  {
    std::lock_guard<std::mutex> lock(resolveMutex_);
    addrsPending_.store(false, std::memory_order_relaxed);
    if (!pendingAddrs_) {
      return;
    }
    fresh = std::move(*pendingAddrs_);
    pendingAddrs_.reset();
  }
  bool changed = fresh.size() != opts_.addrs.size();
  for (const auto& addr : fresh) {
    changed = changed || indexIn(opts_.addrs, addr) < 0;
  }
  if (!changed || fresh.empty()) {
    return;
  }
  base::bump(stats_.addressChanges);
  std::vector<uint64_t> retry(fresh.size(), 0);
  for (size_t i = 0; i < fresh.size(); ++i) {
    const int old = indexIn(opts_.addrs, fresh[i]);
    if (old >= 0) {
      retry[i] = retryAtNs_[static_cast<size_t>(old)];
    }
  }
  std::string list;
  for (const auto& addr : fresh) {
    list += (list.empty() ? "" : ", ") + replay::formatAddress(addr);
  }
  spdlog::info("h2 pool: {} now resolves to {}", opts_.target, list);
  opts_.addrs = std::move(fresh);
  retryAtNs_ = std::move(retry);
  nextAddr_ = 0;
  for (auto& c : conns_) {
    const int index = indexIn(opts_.addrs, c->addr);
    if (index >= 0) {
      c->addrIndex = static_cast<size_t>(index);
    } else {
      // Its streams finish; reap() closes it once they have.
      c->retired = true;
      c->addrIndex = SIZE_MAX;
    }
  }
}

void H2Pool::run() {
  epoll_event events[64];
  for (;;) {
    uint64_t now = base::monotonicNs();
    if (addrsPending_.load(std::memory_order_acquire)) {
      applyAddresses();
    }
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
    now = base::monotonicNs();
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
      base::bump(stats_.connectionsOpened);
      c->opened = true;
    }
    c->client->close(H2Outcome::Kind::kShutdown);
    if (c->opened) {
      base::bump(stats_.connectionsClosed);
    }
    stats_.bytesSent.fetch_add(c->client->bytesSent(), std::memory_order_relaxed);
    stats_.bytesReceived.fetch_add(c->client->bytesReceived(), std::memory_order_relaxed);
  }
  conns_.clear();
}

}  // namespace shadowtap::h2
