#pragma once

// Helpers shared by the mirror pool tests.

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <functional>
#include <thread>

#include "base/clock.h"
#include "replay/connection.h"
#include "replay/mirror_pool.h"

namespace shadowtap::replay::testing {

using namespace std::chrono_literals;

// The I/O the HTTP/1 pool tests run with: epoll in replay_tests, io_uring in
// replay_uring_tests (the same sources built with SHADOWTAP_TEST_URING).
inline MirrorIo testIo() {
#ifdef SHADOWTAP_TEST_URING
  return MirrorIo::kUring;
#else
  return MirrorIo::kEpoll;
#endif
}

inline bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

inline uint64_t get(const std::atomic<uint64_t>& counter) { return counter.load(); }

// Lets the pool's loop act on the time now on its clock: wakes it and waits
// until a whole turn has run after the wake-up.
inline void settle(MirrorPool& pool) {
  for (int i = 0; i < 2; ++i) {
    const uint64_t turns = pool.stats().loopTurns.load();
    pool.wake();
    ASSERT_TRUE(waitFor([&] { return pool.stats().loopTurns.load() > turns; }, 10s)) << "the loop does not turn";
  }
}

// Moves the fake clock and lets the pool see it.
inline void advance(base::FakeClock& clock, MirrorPool& pool, std::chrono::nanoseconds by) {
  clock.advance(static_cast<uint64_t>(by.count()));
  settle(pool);
}

// The h2c pool settings the HTTP/2 tests start from (what H2Pool's were).
inline MirrorPoolOptions h2Options() {
  MirrorPoolOptions o;
  o.protocol = model::Protocol::kHttp2;
  o.maxConnections = 2;
  o.queueCapacity = 10000;
  o.connectTimeout = std::chrono::milliseconds(2000);
  o.responseTimeout = std::chrono::milliseconds(10000);
  return o;
}

// A connection with its kind, which the connection's settings live in.
struct OpenedConnection {
  std::unique_ptr<ConnectionKind> kind;
  std::unique_ptr<Connection> conn;
  Connection* operator->() const { return conn.get(); }
  Connection& operator*() const { return *conn; }
};

inline OpenedConnection openConnection(std::unique_ptr<ConnectionKind> kind, const sockaddr_storage& addr,
                                       ConnectionEvents& events, uint64_t nowNs) {
  OpenedConnection o;
  o.kind = std::move(kind);
  int err = 0;
  o.conn = o.kind->open(addr, events, nowNs, err);
  EXPECT_NE(o.conn, nullptr) << err;
  return o;
}

// The caller's event loop for one connection, reduced to poll(), on real
// time: until `until` holds (true) or timeoutMs passed (false). With
// `deadlines`, checkDeadlines runs every turn; `each` after every turn.
inline bool drive(Connection& c, const std::function<bool()>& until, int timeoutMs = 10000, bool deadlines = true,
                  const std::function<void()>& each = {}) {
  const uint64_t deadline = base::monotonicNs() + uint64_t(timeoutMs) * 1'000'000ULL;
  while (!until()) {
    if (base::monotonicNs() > deadline) {
      return false;
    }
    if (!c.closed()) {
      pollfd p{c.fd(), static_cast<short>(POLLIN | POLLRDHUP | (c.wantsWrite() ? POLLOUT : 0)), 0};
      poll(&p, 1, 10);
      c.onEvents(static_cast<uint32_t>(p.revents), base::monotonicNs());  // poll's bits have epoll's values
    }
    if (deadlines) {
      c.checkDeadlines(base::monotonicNs());
    }
    if (each) {
      each();
    }
  }
  return true;
}

// Every request ends in exactly one outcome; checked after stop().
inline void expectOutcomesAddUp(const MirrorStats& s) {
  EXPECT_EQ(get(s.submitted), s.outcomes())
      << "responses " << get(s.responses) << " errors " << s.errors() << " queueFull " << get(s.queueFull)
      << " droppedShutdown " << get(s.droppedShutdown);
  EXPECT_EQ(get(s.responses), get(s.responses1xx) + get(s.responses2xx) + get(s.responses3xx) +
                                  get(s.responses4xx) + get(s.responses5xx) + get(s.responsesOther));
  EXPECT_EQ(s.queueDepth.load(), 0);
  EXPECT_EQ(s.queueBytes.load(), 0);
  EXPECT_EQ(s.inFlight.load(), 0);
  EXPECT_EQ(s.openConnections.load(), 0);
}

}  // namespace shadowtap::replay::testing
