// MirrorPool's event loop: hands queued requests to connections with room,
// opens connections, follows their sockets and deadlines, re-resolves the
// target, drains on stop.
#include <errno.h>
#include <spdlog/spdlog.h>
#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "base/counters.h"
#include "replay/mirror_pool.h"

namespace shadowtap::replay {
namespace {

constexpr int kMaxEvents = 64;
constexpr uint32_t kBaseEvents = EPOLLIN | EPOLLRDHUP;
constexpr int kMaxWaitMs = 60'000;

uint64_t toNs(std::chrono::milliseconds ms) { return static_cast<uint64_t>(ms.count()) * 1'000'000ULL; }

}  // namespace

void MirrorPool::run() {
  if (ring_) {
    if (const int err = ring_->enable(); err < 0) {
      spdlog::warn("mirror pool: cannot enable io_uring ({}); mirror I/O through epoll", std::strerror(-err));
      ring_.reset();
    }
  }
  epoll_event events[kMaxEvents];
  for (;;) {
    stats_.loopTurns.fetch_add(1, std::memory_order_release);  // tests wait on it (testing::settle)
    uint64_t now = clock_.nowNs();
    sizer_.arrivals(base::load(stats_.submitted) - base::load(stats_.droppedRateLimit), now);
    stats_.inFlightWanted.store(static_cast<int64_t>(sizer_.wanted(queue_.size())), std::memory_order_relaxed);
    if (resolver_) {
      if (resolver_->hasResult()) {
        applyAddresses();
      }
      if (now >= nextResolveNs_) {
        resolver_->request();
        nextResolveNs_ = now + toNs(opts_.resolveInterval);
      }
    }
    if (stopping() &&
        ((queue_.size() == 0 && held_ == 0) || now >= drainDeadlineNs_.load(std::memory_order_relaxed))) {
      break;
    }
    if (now >= nextSweepNs_) {
      sweep(now);
    }
    if (dispatch(now)) {
      // Out of requests: let the next submit wake us. Check again after
      // clearing, or a request pushed just before the clear would wait for an
      // unrelated event.
      wakePending_.exchange(false, std::memory_order_acq_rel);
      if (queue_.ready()) {
        continue;
      }
    }
    // Judged with the connections just filled: at the turn's start they hold
    // fewer, those whose answers came in the last wait.
    if (sizer_.checkGrowth(now, activeConnections(), queue_.size())) {
      noteSaturated(now);
    }
    const int timeout = timeoutMs(clock_.nowNs());
    const int n = ring_ ? waitRing(events, kMaxEvents, timeout) : ::epoll_wait(epollFd_, events, kMaxEvents, timeout);
    if (n < 0 && errno != EINTR) {
      // Only a bug (bad fd or arguments) gets here; give up rather than spin.
      spdlog::critical("mirror pool: waiting for events failed: {}; mirroring stops", std::strerror(errno));
      break;
    }
    handleEvents(n, events);
    if (bodyNews_.exchange(false, std::memory_order_acq_rel)) {
      pumpBodies(clock_.nowNs());
    }
    if (anyGone_) {
      reap();
    }
  }
  dropEverything();
  ring_.reset();  // waits for the kernel to let go of the closed connections' buffers
}

int MirrorPool::waitRing(epoll_event* events, int maxEvents, int timeoutMs) {
  if (!epollOp_.pending()) {
    // The epoll set (the wake-up eventfd, connects, connections not in the
    // ring) becomes one more completion.
    io_uring_sqe* sqe = ring_->prepare(epollOp_);
    io_uring_prep_poll_add(sqe, epollFd_, POLLIN);
  }
  // Every request on the wire answers with a completion, and each send not
  // yet taken by the kernel completes too: a burst of requests sent and
  // answered wakes the loop once (kernels with batched waits; see
  // Ring::submitAndWait), not once for the sends and again for the answers.
  // Not while requests wait for a connection: each completion frees one.
  const unsigned expected =
      queue_.size() > 0 ? 1 : static_cast<unsigned>(std::min<size_t>(held_ + ring_->sendsInFlight(), kMaxEvents));
  if (const int err = ring_->submitAndWait(timeoutMs, expected); err < 0) {
    errno = -err;
    return -1;
  }
  const uint64_t now = clock_.nowNs();
  ring_->reap(now, [&](void* tag) { settle(*static_cast<Slot*>(tag), now); });
  if (!epollOp_.ready) {
    return 0;
  }
  epollOp_.ready = false;
  return ::epoll_wait(epollFd_, events, maxEvents, 0);
}

void MirrorPool::pumpBodies(uint64_t now) {
  // Streamed requests are few (one per connection at most): a pass over the slots is cheap.
  for (auto& slot : slots_) {
    if (!slot->gone) {
      slot->conn->onBodyReady(now);
      settle(*slot, now);
    }
  }
}

void MirrorPool::handleEvents(int n, const epoll_event* events) {
  const uint64_t now = clock_.nowNs();
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == nullptr) {
      uint64_t value = 0;
      [[maybe_unused]] ssize_t r = ::read(wakeFd_, &value, sizeof(value));
      continue;
    }
    auto* slot = static_cast<Slot*>(events[i].data.ptr);
    if (!slot->gone) {
      slot->conn->onEvents(events[i].events, now);
      settle(*slot, now);
    }
  }
}

bool MirrorPool::takeRequest(model::Request& request) {
  size_t bytes = 0;
  if (!queue_.tryPop(request, bytes)) {
    return false;
  }
  base::bump(stats_.queueDepth, -1);
  base::bump(stats_.queueBytes, -static_cast<int64_t>(bytes));
  base::bump(stats_.inFlight, 1);
  ++held_;
  return true;
}

bool MirrorPool::dispatch(uint64_t now) {
  for (;;) {
    if (!queue_.ready()) {
      return true;
    }
    Slot* slot = popReady();
    if (slot == nullptr) {
      if (!openConnection(now)) {
        return false;  // no room and no new connection for now; the queue waits (bounded)
      }
      continue;
    }
    model::Request request;
    if (!takeRequest(request)) {
      return true;
    }
    if (!slot->conn->send(std::move(request), now)) {
      // room() said yes just now; count it rather than lose it.
      Ending e{.outcome = Outcome::kRejected, .exchangeId = request.exchangeId};
      onEnded(e);
    }
    settle(*slot, now);
  }
}

MirrorPool::Slot* MirrorPool::popReady() {
  while (!ready_.empty()) {
    Slot* slot = ready_.back();
    if (!slot->gone && !slot->retired && slot->conn->room() > 0) {
      return slot;
    }
    slot->inReady = false;
    ready_.pop_back();
  }
  return nullptr;
}

bool MirrorPool::openConnection(uint64_t now) {
  if (!sizer_.mayOpen(now, activeConnections(), held_, queue_.size())) {
    return false;
  }
  const int index = addrs_.pick(now);
  if (index < 0) {
    return false;  // every address is backing off
  }
  const auto addrIndex = static_cast<size_t>(index);
  base::bump(stats_.connectAttempts);
  int err = 0;
  auto slot = std::make_unique<Slot>();
  slot->conn = kind_->open(addrs_.at(addrIndex), *this, now, err);
  if (slot->conn && ring_) {
    slot->conn->useRing(*ring_, slot.get());
  }
  if (slot->conn) {
    epoll_event ev{};
    ev.events = kBaseEvents | EPOLLOUT;
    ev.data.ptr = slot.get();
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, slot->conn->fd(), &ev) != 0) {
      err = errno;
      slot->conn.reset();  // holds no request yet: ends nothing
    }
  }
  if (!slot->conn && (err == EMFILE || err == ENFILE)) {
    // Out of descriptors: no fault of the mirror's; stay at this size for a while.
    sizer_.noDescriptors(now, activeConnections());
    base::bump(stats_.noDescriptors);
    uint64_t suppressed = 0;
    if (connectLog_.allow(std::chrono::steady_clock::now(), suppressed)) {
      spdlog::warn("mirror pool: no file descriptor for another {} connection ({} open; raise the open files limit) "
                   "({} similar warnings suppressed)", kind_->name(), activeConnections(), suppressed);
    }
    return false;
  }
  if (!slot->conn) {
    // A connect that fails at once takes the request that asked for it along
    // (one connect per request, as when it fails later), so a dead address
    // costs one attempt per backoff, not a spin.
    model::Request request;
    if (takeRequest(request)) {
      Ending e{.outcome = Outcome::kConnectError, .exchangeId = request.exchangeId};
      onEnded(e);
    }
    noteConnectFailure(addrIndex, now, err);
    return true;
  }
  slot->addrIndex = addrIndex;
  slot->addr = addrs_.at(addrIndex);
  slot->registeredEvents = kBaseEvents | EPOLLOUT;
  ++live_;
  sizer_.opened(now, activeConnections());
  base::bump(stats_.openConnections, 1);
  nextSweepNs_ = std::min(nextSweepNs_, now + toNs(opts_.connectTimeout));
  Slot& s = *slot;
  slots_.push_back(std::move(slot));
  settle(s, now);
  return true;
}

// After every call into a connection: counts what changed, keeps ready_,
// the idle time, the sweep time and the epoll interest up to date.
void MirrorPool::settle(Slot& slot, uint64_t now) {
  Connection& conn = *slot.conn;
  if (!slot.opened && conn.connected()) {
    slot.opened = true;
    base::bump(stats_.connectionsOpened);
    addrs_.succeeded(slot.addrIndex);
  }
  if (conn.closed()) {
    if (!slot.gone) {
      slot.gone = true;
      anyGone_ = true;
      --live_;
      retiredLive_ -= slot.retired ? 1 : 0;
      if (!slot.opened && slot.addrIndex != SIZE_MAX && !closing_) {
        noteConnectFailure(slot.addrIndex, now, conn.connectError());
      }
    }
    return;
  }
  if (conn.load() == 0) {
    if (slot.retired) {
      conn.close(Outcome::kDroppedShutdown);  // holds nothing: ends nothing
      settle(slot, now);
      return;
    }
    if (slot.idleSinceNs == 0) {
      slot.idleSinceNs = now;
      nextSweepNs_ = std::min(nextSweepNs_, now + std::min(toNs(opts_.idleTimeout), toNs(opts_.shrinkIdle)));
    }
  } else {
    slot.idleSinceNs = 0;
    nextSweepNs_ = std::min(nextSweepNs_, now + toNs(opts_.responseTimeout));
  }
  if (!slot.retired && !slot.inReady && conn.room() > 0) {
    ready_.push_back(&slot);
    slot.inReady = true;
  }
  if (conn.usesRing()) {
    if (slot.registeredEvents != 0 && ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, conn.fd(), nullptr) == 0) {
      slot.registeredEvents = 0;
    }
    return;
  }
  const uint32_t wanted = kBaseEvents | (conn.wantsWrite() ? static_cast<uint32_t>(EPOLLOUT) : 0U);
  if (wanted != slot.registeredEvents) {
    epoll_event ev{};
    ev.events = wanted;
    ev.data.ptr = &slot;
    // A connection that left the ring (a streamed request) is watched again.
    if (::epoll_ctl(epollFd_, slot.registeredEvents == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, conn.fd(), &ev) == 0) {
      slot.registeredEvents = wanted;
    }
  }
}

// Deadlines (connect, response) and idle connections; then when the next one is.
void MirrorPool::sweep(uint64_t now) {
  const uint64_t idleNs = toNs(opts_.idleTimeout);
  const uint64_t shrinkNs = std::min(idleNs, toNs(opts_.shrinkIdle));
  uint64_t next = UINT64_MAX;
  for (auto& slot : slots_) {
    if (slot->gone) {
      continue;
    }
    slot->conn->checkDeadlines(now);
    if (!slot->conn->closed() && slot->idleSinceNs != 0 && slot->conn->connected()) {
      const bool surplus = activeConnections() > sizer_.floor() && !slot->retired;
      if (now >= slot->idleSinceNs + idleNs || (surplus && now >= slot->idleSinceNs + shrinkNs)) {
        base::bump(now >= slot->idleSinceNs + idleNs ? stats_.idleClosed : stats_.surplusClosed);
        slot->conn->close(Outcome::kDroppedShutdown);  // holds nothing: ends nothing
      }
    }
    settle(*slot, now);
    if (!slot->gone) {
      next = std::min(next, slot->conn->nextDeadlineNs());
      if (slot->idleSinceNs != 0) {
        // A connection within the floor waits for the idle timeout, not the
        // shrink time (which has passed for it, and would make the loop spin).
        const bool surplus = activeConnections() > sizer_.floor();
        next = std::min(next, slot->idleSinceNs + (surplus ? shrinkNs : idleNs));
      }
    }
  }
  nextSweepNs_ = next;
  if (anyGone_) {
    reap();
  }
}

int MirrorPool::timeoutMs(uint64_t now) const {
  uint64_t next = nextSweepNs_;
  // Requests waiting and room for a connection: wake when both the sizer
  // (pacing, growth hold) and an address (backoff) allow a connect. When the
  // sizer refuses for want of latency or because Little's law is met, time
  // alone changes nothing: a response or a submit wakes the loop, and waking
  // for a free address would spin (timeout 0) for as long as requests wait.
  if (queue_.size() > 0 && activeConnections() < opts_.maxConnections) {
    const size_t active = activeConnections();
    const uint64_t chance =
        sizer_.mayOpen(now, active, held_, queue_.size()) ? now : sizer_.nextChanceNs(now, active);
    if (chance != UINT64_MAX) {
      next = std::min(next, std::max(chance, addrs_.nextFreeNs(now)));
    }
  }
  if (resolver_) {
    next = std::min(next, nextResolveNs_);
  }
  if (stopping()) {
    next = std::min(next, drainDeadlineNs_.load(std::memory_order_relaxed));
  }
  if (next == UINT64_MAX) {
    return -1;
  }
  if (next <= now) {
    return 0;
  }
  // Round up: waking a little early would only turn around and wait again.
  const uint64_t ms = (next - now + 999'999) / 1'000'000;
  return static_cast<int>(std::min<uint64_t>(ms, kMaxWaitMs));
}

void MirrorPool::reap() {
  anyGone_ = false;
  ready_.erase(std::remove_if(ready_.begin(), ready_.end(), [](const Slot* s) { return s->gone; }), ready_.end());
  auto gone = [this](const std::unique_ptr<Slot>& slot) {
    if (!slot->gone) {
      return false;
    }
    base::bump(stats_.openConnections, -1);
    if (slot->opened) {
      base::bump(stats_.connectionsClosed);
    }
    return true;
  };
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(), gone), slots_.end());
}

void MirrorPool::applyAddresses() {
  std::optional<std::vector<sockaddr_storage>> fresh = resolver_->take();
  if (!fresh || !addrs_.replace(std::move(*fresh))) {
    return;
  }
  base::bump(stats_.addressChanges);
  spdlog::info("mirror pool: {} now resolves to {}", opts_.target, [&] {
    std::string list;
    for (const auto& addr : addrs_.addrs()) {
      list += (list.empty() ? "" : ", ") + formatAddress(addr);
    }
    return list;
  }());
  // Connections to an address that left the list finish what they hold and close.
  const uint64_t now = clock_.nowNs();
  for (auto& slot : slots_) {
    if (slot->gone) {
      continue;
    }
    if (const int index = addrs_.indexOf(slot->addr); index >= 0) {
      slot->addrIndex = static_cast<size_t>(index);
    } else if (!slot->retired) {
      slot->retired = true;
      slot->addrIndex = SIZE_MAX;
      ++retiredLive_;
    }
    settle(*slot, now);
  }
  if (anyGone_) {
    reap();
  }
}

void MirrorPool::noteConnectFailure(size_t addrIndex, uint64_t now, int err) {
  const uint64_t backoffNs = addrs_.failed(addrIndex, now);
  noteDistress(now);
  uint64_t suppressed = 0;
  if (connectLog_.allow(std::chrono::steady_clock::now(), suppressed)) {
    spdlog::warn("mirror pool: cannot connect to mirror {} ({}): {}; next attempt in {} ms, requests queue up to the "
                 "limit meanwhile ({} similar warnings suppressed)",
                 formatAddress(addrs_.at(addrIndex)), kind_->name(),
                 err != 0 ? std::strerror(err) : "refused or timed out", backoffNs / 1'000'000, suppressed);
  }
}

void MirrorPool::noteDistress(uint64_t now) {
  sizer_.distress(now);
  stats_.growthHolds.store(sizer_.holds(), std::memory_order_relaxed);
}

void MirrorPool::noteSaturated(uint64_t now) {
  stats_.growthSaturated.store(sizer_.saturations(), std::memory_order_relaxed);
  uint64_t suppressed = 0;
  if (saturationLog_.allow(std::chrono::steady_clock::now(), suppressed)) {
    spdlog::warn("mirror pool: mirror {} is at its capacity: {} connections answer {:.0f} requests/s, {} answered "
                 "{:.0f}/s; the pool grows no further (judged again in {} ms) and requests queue up to the limit meanwhile "
                 "({} similar warnings suppressed)",
                 mirrorName(), activeConnections(), sizer_.measuredAnswersPerSecond(), sizer_.paidConnections(),
                 sizer_.paidAnswersPerSecond(), (sizer_.saturatedUntilNs() - now) / 1'000'000, suppressed);
  }
}

void MirrorPool::dropEverything() {
  closing_ = true;  // what closes now is no connect failure
  for (auto& slot : slots_) {
    if (!slot->gone) {
      slot->conn->close(Outcome::kDroppedShutdown);
      settle(*slot, clock_.nowNs());
    }
  }
  reap();
  dropQueued();
}

}  // namespace shadowtap::replay
