// Adaptive pool size with real sockets on a fake clock: no growth before a
// latency is measured, paced growth while requests wait, up to what Little's
// law wants, surplus connections closed when idle, growth held on failures;
// and on the real clock, growth held against a mirror at its capacity.
#include <gtest/gtest.h>

#include <errno.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "pool_test_util.h"
#include "replay/mirror_pool.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

// A mirror that answers only when the test says so: requests queue at a gate
// in arrival order and release(n) lets the next n through (so a request's
// latency is whatever the test moved the fake clock by). A permit belongs to
// the requests waiting when it is given, never to one that a connection sends
// after an answer (that race made AResponseTimeoutHoldsGrowth flaky).
// Requests for /hang get no answer at all.
class GatedMirror {
 public:
  GatedMirror()
      : server_([this](const ServerRequest& r, size_t, size_t) {
          std::unique_lock lock(mutex_);
          if (r.bytes.find("/hang") != std::string::npos) {
            cv_.wait(lock, [this] { return open_; });  // answered only at the end
            return ServerAction{};
          }
          const uint64_t ticket = arrived_++;
          cv_.notify_all();
          cv_.wait(lock, [&] { return ticket < passed_ || open_; });
          return ServerAction{.response = httpResponse(200, "x")};
        }) {}
  ~GatedMirror() {
    openAll();
    server_.stop();
  }
  // Until `n` requests wait at the gate (arrived, not let through).
  bool waitAtGate(uint64_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 15s, [&] { return arrived_ - std::min(arrived_, passed_) == n; });
  }
  // Lets the next n requests through: those waiting first, then later ones.
  void release(uint64_t n) {
    std::lock_guard lock(mutex_);
    passed_ += n;
    cv_.notify_all();
  }
  void openAll() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  TestHttpServer& server() { return server_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t arrived_ = 0;  // tickets given at the gate
  uint64_t passed_ = 0;   // tickets below this pass
  bool open_ = false;
  TestHttpServer server_;
};

model::Request request(int seq, const std::string& path = "/g/") {
  model::Request r;
  r.method = "GET";
  r.bytes = "GET " + path + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
  return r;
}

// The loop waits for an event or a deadline while growth is refused: a
// refusal that only time or a response can turn must not make it spin.
void expectLoopSleeps(const MirrorPool& pool, const char* when) {
  const uint64_t turns = pool.stats().loopTurns.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(pool.stats().loopTurns.load() - turns, 2u) << "the loop spins " << when;
}

MirrorPoolOptions growing(const sockaddr_storage& addr, base::FakeClock& clock) {
  MirrorPoolOptions o;
  o.io = ::shadowtap::replay::testing::testIo();
  o.addrs = {addr};
  o.minConnections = 2;
  o.maxConnections = 6;
  o.connectPacing = 5ms;
  o.shrinkIdle = 1s;
  o.responseTimeout = 10s;
  o.clock = &clock;
  return o;
}

TEST(MirrorPoolGrowth, GrowsPacedWhileRequestsWaitAndShrinksWhenIdle) {
  GatedMirror mirror;
  base::FakeClock clock;
  // A floor of 3 and at most 6: twice the floor is the maximum, so whether
  // growth paid (judged there, PoolSizer) never stops it here.
  MirrorPoolOptions o = growing(mirror.server().address(), clock);
  o.minConnections = 3;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  settle(pool);  // the arrival rate is measured from here
  const MirrorStats& s = pool.stats();
  int seq = 0;
  for (; seq < 8; ++seq) {
    ASSERT_TRUE(pool.submit(request(seq)));
  }
  ASSERT_TRUE(mirror.server().waitForRequests(3, 5s));
  settle(pool);
  EXPECT_EQ(get(s.connectAttempts), 3u) << "beyond the floor before any latency was measured";
  EXPECT_EQ(s.queueDepth.load(), 5);
  expectLoopSleeps(pool, "while requests wait for a first latency");
  // 100 ms later (so 80 requests a second arrived) the three answer: latency 100 ms.
  advance(clock, pool, 100ms);
  ASSERT_TRUE(mirror.waitAtGate(3));
  mirror.release(3);
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 3; }));
  // They took three more; two still wait: one new connection now, the next 5 ms later.
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 4; }));
  settle(pool);
  EXPECT_EQ(get(s.connectAttempts), 4u) << "connects not paced";
  EXPECT_GT(s.inFlightWanted.load(), 0);
  advance(clock, pool, 4ms);
  EXPECT_EQ(get(s.connectAttempts), 4u) << "connected again before the pacing interval";
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 5; }));
  for (int i = 0; i < 10; ++i) {
    advance(clock, pool, 5ms);
  }
  EXPECT_LE(get(s.connectAttempts), 6u) << "beyond maxConnections";
  ASSERT_TRUE(waitFor([&] { return s.queueDepth.load() == 0; }));
  const int64_t peak = s.openConnections.load();
  EXPECT_GT(peak, 3);
  // Everything answered; idle connections beyond the floor close after the shrink time, the floor stays.
  mirror.release(100);
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 8; }));
  settle(pool);
  advance(clock, pool, 999ms);
  EXPECT_EQ(s.openConnections.load(), peak) << "shrunk early";
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return s.openConnections.load() == 3; }));
  EXPECT_EQ(get(s.surplusClosed), static_cast<uint64_t>(peak - 3));
  EXPECT_EQ(get(s.idleClosed), 0u);
  // The floor's idle connections wait for the idle timeout (60 s), not the shrink time.
  advance(clock, pool, 2s);
  EXPECT_EQ(s.openConnections.load(), 3);
  expectLoopSleeps(pool, "with the floor idle past the shrink time");
  pool.stop(0ms);
  expectOutcomesAddUp(s);
}

TEST(MirrorPoolGrowth, AResponseTimeoutHoldsGrowth) {
  GatedMirror mirror;
  base::FakeClock clock;
  MirrorPoolOptions o = growing(mirror.server().address(), clock);
  o.responseTimeout = 200ms;
  o.growthHold = 1s;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  settle(pool);
  const MirrorStats& s = pool.stats();
  // t=0: /hang on the first connection, a gated request on the second, 38 waiting.
  ASSERT_TRUE(pool.submit(request(0, "/hang")));
  ASSERT_TRUE(mirror.server().waitForRequests(1, 5s));
  for (int seq = 1; seq < 40; ++seq) {
    ASSERT_TRUE(pool.submit(request(seq)));
  }
  ASSERT_TRUE(mirror.server().waitForRequests(2, 5s));
  settle(pool);
  EXPECT_EQ(get(s.connectAttempts), 2u);
  uint64_t answered = 0;
  // Answers the two gated requests in flight (started `age` ago, within the timeout).
  auto answerTwo = [&] {
    ASSERT_TRUE(mirror.waitAtGate(2));
    mirror.release(2);
    answered += 2;
    ASSERT_TRUE(waitFor([&] { return get(s.responses) == answered; }));
    settle(pool);
  };
  // t=100: one answers (a latency of 100 ms) and growth begins: a third connection.
  advance(clock, pool, 100ms);
  ASSERT_TRUE(mirror.waitAtGate(1));
  mirror.release(1);
  answered = 1;
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 1; }));
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 3; }));
  settle(pool);
  // Requests 2 and 3 (on the second and the new third connection) started at t=100.
  ASSERT_TRUE(mirror.waitAtGate(2));
  // t=200: /hang times out: growth is held for 1 s, whatever waits.
  advance(clock, pool, 100ms);
  ASSERT_TRUE(waitFor([&] { return get(s.errorsResponseTimeout) == 1; }));
  settle(pool);
  EXPECT_EQ(get(s.growthHolds), 1u);
  EXPECT_EQ(get(s.connectAttempts), 3u);
  EXPECT_EQ(s.openConnections.load(), 2) << "the timed-out connection closed";
  expectLoopSleeps(pool, "during a growth hold");
  advance(clock, pool, 50ms);  // t=250
  answerTwo();
  for (int i = 0; i < 9; ++i) {  // t=350 ... t=1150
    advance(clock, pool, 100ms);
    answerTwo();
    EXPECT_EQ(get(s.connectAttempts), 3u) << "grew during the hold (t=" << 350 + 100 * i << " ms)";
  }
  EXPECT_GT(s.queueDepth.load(), 0) << "nothing waited: the hold was not what kept the pool at its size";
  advance(clock, pool, 50ms);  // t=1200: the hold is over
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 4; })) << "no growth after the hold";
  pool.stop(0ms);
  expectOutcomesAddUp(s);
}

// HTTP/1 connections until `allowed` of them are open, then socket() "fails"
// with EMFILE, as it does when the process is out of descriptors.
class DescriptorStarvedKind final : public ConnectionKind {
 public:
  explicit DescriptorStarvedKind(size_t allowed) : inner_(http1Kind(ConnectionSettings{})), allowed_(allowed) {}
  std::unique_ptr<Connection> open(const sockaddr_storage& addr, ConnectionEvents& events, uint64_t nowNs,
                                   int& err) override {
    if (opened_ >= allowed_.load()) {
      err = EMFILE;
      return nullptr;
    }
    ++opened_;
    return inner_->open(addr, events, nowNs, err);
  }
  const char* name() const override { return "http1"; }
  void allow(size_t n) { allowed_.store(n); }

 private:
  std::unique_ptr<ConnectionKind> inner_;
  std::atomic<size_t> allowed_;
  size_t opened_ = 0;  // loop thread only
};

TEST(MirrorPoolGrowth, OutOfDescriptorsHoldsThePoolAtItsSize) {
  GatedMirror mirror;
  base::FakeClock clock;
  MirrorPoolOptions o = growing(mirror.server().address(), clock);
  o.minConnections = 4;
  auto starved = std::make_unique<DescriptorStarvedKind>(2);
  DescriptorStarvedKind* kind = starved.get();
  MirrorPool pool(o, std::move(starved));
  ASSERT_TRUE(pool.start());
  settle(pool);
  const MirrorStats& s = pool.stats();
  for (int seq = 0; seq < 6; ++seq) {
    ASSERT_TRUE(pool.submit(request(seq)));
  }
  ASSERT_TRUE(mirror.waitAtGate(2));
  settle(pool);
  // Two connections, then EMFILE: counted, and the requests wait (no connect error, no loss).
  EXPECT_EQ(get(s.noDescriptors), 1u);
  EXPECT_EQ(get(s.connectAttempts), 3u);
  EXPECT_EQ(get(s.errorsConnect), 0u) << "a request was lost to the missing descriptor";
  EXPECT_EQ(s.queueDepth.load(), 4);
  EXPECT_EQ(s.openConnections.load(), 2);
  expectLoopSleeps(pool, "out of descriptors");
  // The pool stays at its size for 1 s, even below the floor.
  kind->allow(4);
  advance(clock, pool, 999ms);
  EXPECT_EQ(get(s.connectAttempts), 3u) << "tried again within the hold";
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return s.openConnections.load() == 4; }));
  ASSERT_TRUE(mirror.waitAtGate(4));
  EXPECT_EQ(get(s.noDescriptors), 1u);
  mirror.release(6);
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 6; }));
  pool.stop(0ms);
  expectOutcomesAddUp(s);
}

// A mirror at its capacity, on the real clock: one request at a time, 2 ms
// each, so 500 answers a second however many connections wait in it. Little's
// law alone grows such a pool at its pace to the maximum (every connection's
// answer comes later as more wait); growth that does not raise the answers a
// second holds instead, and every request is still answered.
TEST(MirrorPoolGrowth, GrowthStopsAtAMirrorAtItsCapacity) {
  std::mutex oneAtATime;
  TestHttpServer server([&](const ServerRequest&, size_t, size_t) {
    std::lock_guard lock(oneAtATime);
    std::this_thread::sleep_for(2ms);
    return ServerAction{.response = httpResponse(200, "x")};
  });
  MirrorPoolOptions o;
  o.io = ::shadowtap::replay::testing::testIo();
  o.addrs = {server.address()};
  o.minConnections = 2;
  o.maxConnections = 64;
  o.connectPacing = 5ms;
  o.queueCapacity = 4096;
  o.responseTimeout = 30s;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  constexpr uint64_t kRequests = 1500;  // 3 s of the mirror's capacity
  for (uint64_t i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(pool.submit(request(static_cast<int>(i))));
  }
  const MirrorStats& s = pool.stats();
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == kRequests; }, 30s))
      << get(s.responses) << " of " << kRequests << " answered";
  EXPECT_GE(get(s.growthSaturated), 1u) << "growth was never judged unpaid";
  // Unpaid growth is judged at twice the floor; a noisy clock may let one
  // doubling pass, a slow machine two. Little's law alone: all 64.
  EXPECT_LE(get(s.connectAttempts), 16u) << "the pool grew against a mirror at its capacity";
  EXPECT_EQ(get(s.growthHolds), 0u) << "nothing refused or timed out";
  pool.stop(1s);
  expectOutcomesAddUp(s);
}

}  // namespace
}  // namespace shadowtap::replay
