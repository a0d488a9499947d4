#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "base/rate_limited_log.h"
#include "replay/address_book.h"
#include "replay/connection.h"
#include "replay/mirror_pool_options.h"
#include "replay/mirror_sink.h"
#include "replay/mirror_stats.h"
#include "replay/pool_sizer.h"
#include "replay/rate_limiter.h"
#include "replay/request_queue.h"
#include "replay/target_resolver.h"

namespace shadowtap::replay {

class MirrorPool;

// Within its scope, pools submitted to on this thread are woken once, when the
// scope ends, instead of at the first submit: a worker opens one around each
// batch of ring records, so a batch costs each pool it feeds one eventfd write
// and its loop one wake-up, however many requests it holds (#16 item 2).
// Without a scope (tests, `shadowtap replay`) submit() wakes at once. Scopes
// do not nest; the pools must outlive the scope.
class WakeBatch {
 public:
  WakeBatch();
  ~WakeBatch();
  WakeBatch(const WakeBatch&) = delete;
  WakeBatch& operator=(const WakeBatch&) = delete;

  // The scope open on this thread, if any.
  static WakeBatch* current();
  void add(MirrorPool* pool);

 private:
  WakeBatch* outer_;
  std::vector<MirrorPool*> pending_;
};

// Mirrors requests to one target fire-and-forget, from its own event loop
// thread (epoll, non-blocking sockets), over connections of one kind (HTTP/1
// or h2c; see ConnectionKind). One core for both kinds: one bounded queue with
// a drop policy, one rate limit, one resolver thread, one per-address backoff,
// one set of outcome counters, one injectable clock. Responses are read and
// discarded, except in compare mode (see MirrorPoolOptions::observer).
// Requests are never retried. A dead or slow mirror costs at most the bounded
// queue plus what the connections hold, and connects to a failing address back
// off instead of spinning.
//
// Threads: submit() from any thread (normally the capture thread); start(),
// stop() and wake() from one control thread; stats() from anywhere.
class MirrorPool final : public MirrorSink, private ConnectionEvents {
 public:
  explicit MirrorPool(MirrorPoolOptions opts);
  // With a connection kind of the caller's (tests); null: the options' protocol.
  MirrorPool(MirrorPoolOptions opts, std::unique_ptr<ConnectionKind> kind);
  // Stops with no drain time if still running.
  ~MirrorPool() override;
  MirrorPool(const MirrorPool&) = delete;
  MirrorPool& operator=(const MirrorPool&) = delete;

  // Starts the loop thread (and the resolver thread with a resolveInterval).
  // False (logged) without an address, when the loop cannot be set up (no
  // epoll/eventfd, no thread), or when called twice.
  bool start();

  // Never blocks and never waits on the loop. Queues the request or drops it:
  // false with droppedRateLimit counted beyond maxRps, false with queueFull
  // counted when it does not fit (see MirrorPoolOptions::queueCapacity), false
  // with droppedShutdown counted once stop() has begun. True when queued,
  // which under drop policy oldest may have pushed older requests out
  // (droppedOldest, reported on this thread).
  bool submit(model::Request&& request) override;

  // Stops taking requests, lets queued and in-flight ones finish for up to
  // `drain` (on the pool's clock), drops the rest (droppedShutdown), closes
  // every connection and joins the threads. Idempotent. Afterwards
  // stats().submitted == stats().outcomes().
  void stop(std::chrono::milliseconds drain);

  // Makes the loop turn once (re-reading the clock): for tests that move a
  // FakeClock. Every turn bumps stats().loopTurns.
  void wake();

  // A WakeBatch's end: the wake-up its submits deferred (counted in stats().wakeups).
  void flushWake();

  const MirrorStats& stats() const { return stats_; }
  const MirrorPoolOptions& options() const { return opts_; }

 private:
  // A connection and the loop's bookkeeping of it.
  struct Slot {
    std::unique_ptr<Connection> conn;
    size_t addrIndex = 0;  // SIZE_MAX once retired
    sockaddr_storage addr{};
    uint32_t registeredEvents = 0;  // 0: not in the epoll set (its I/O is in the ring)
    uint64_t idleSinceNs = 0;  // 0: holds requests
    bool opened = false;       // counted in connectionsOpened
    bool retired = false;      // its address left the list: no new requests, closed once empty
    bool inReady = false;      // on ready_
    bool gone = false;         // closed and counted; reap() frees it
  };

  // Submit side.
  bool enqueue(model::Request& request, size_t bytes);
  void dropped(uint64_t exchangeId, Outcome outcome);
  // Loop.
  void run();
  bool dispatch(uint64_t nowNs);
  bool openConnection(uint64_t nowNs);
  Slot* popReady();
  void settle(Slot& slot, uint64_t nowNs);
  void handleEvents(int n, const epoll_event* events);
  // --mirror-io uring: submits the turn's ops, waits on the ring (the epoll set
  // through a poll op), reaps completions; then what epoll has, as epoll_wait.
  int waitRing(epoll_event* events, int maxEvents, int timeoutMs);
  void sweep(uint64_t nowNs);
  int timeoutMs(uint64_t nowNs) const;
  void reap();
  void applyAddresses();
  bool takeRequest(model::Request& request);
  void noteConnectFailure(size_t addrIndex, uint64_t nowNs, int err);
  // A refused or timed-out connect or a response timeout: growth holds (PoolSizer).
  void noteDistress(uint64_t nowNs);
  // More connections did not raise the mirror's answers a second: growth holds (PoolSizer).
  void noteSaturated(uint64_t nowNs);
  // The mirror's name for logs: its target, or its addresses when given as such.
  std::string mirrorName() const;
  size_t activeConnections() const { return live_ - retiredLive_; }
  void dropEverything();
  void dropQueued();
  bool stopping() const { return stopRequested_.load(std::memory_order_acquire); }
  // ConnectionEvents.
  void onEnded(Ending& ending) override;
  void onBytes(uint64_t sent, uint64_t received) override;
  void onRequestWritten() override;
  std::function<void()> bodyListener() override;
  void onStreamStarted() override;
  void onStreamSent() override;
  // Streamed bodies with news (bodyListener): every connection gets onBodyReady().
  void pumpBodies(uint64_t nowNs);
  void countResponse(const Ending& ending);
  void reportMissing(uint64_t exchangeId);

  MirrorPoolOptions opts_;
  const base::Clock& clock_;
  MirrorStats stats_;
  ConnectionSettings settings_;
  std::unique_ptr<ConnectionKind> kind_;
  RequestQueue queue_;
  RateLimiter rate_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<bool> accepting_{true};
  // Set by submit when it writes the eventfd; cleared by the loop only when it
  // ran out of requests. So submit writes the eventfd when the queue goes from
  // empty to non-empty, and not at all while the loop is busy or backing off.
  std::atomic<bool> wakePending_{false};
  std::atomic<bool> stopRequested_{false};
  // Set by a body stream's listener (capture thread), taken by the loop.
  std::atomic<bool> bodyNews_{false};
  std::atomic<uint64_t> drainDeadlineNs_{0};
  std::thread thread_;
  std::unique_ptr<TargetResolver> resolver_;
  // --mirror-io uring; created by start(), used and freed by the loop thread.
  std::unique_ptr<Ring> ring_;
  struct EpollOp final : RingOp {
    bool ready = false;
    void complete(int, uint64_t) override { ready = true; }
  };
  EpollOp epollOp_;
  bool started_ = false;
  bool stopped_ = false;

  // Loop thread only.
  AddressBook addrs_;
  PoolSizer sizer_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> ready_;  // slots that may have room, most recently used last
  size_t live_ = 0;           // slots not gone
  size_t retiredLive_ = 0;    // of them retired: on their way out, they leave room for new ones
  size_t held_ = 0;           // requests on connections
  bool anyGone_ = false;
  bool closing_ = false;
  uint64_t nextSweepNs_ = UINT64_MAX;  // no connection deadline before this
  uint64_t nextResolveNs_ = 0;
  base::RateLimitedLog connectLog_;
  base::RateLimitedLog errorLog_;
  base::RateLimitedLog saturationLog_;
};

}  // namespace shadowtap::replay
