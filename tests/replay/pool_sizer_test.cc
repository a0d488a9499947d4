// The growth rules of a mirror pool on explicit (fake) times: the floor, no
// growth without a measured latency, Little's law, pacing, holds after
// failures, descriptor exhaustion, growth that must pay.
#include "replay/pool_sizer.h"

#include <gtest/gtest.h>

namespace shadowtap::replay {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'000 * kMs;

PoolSizer::Options options(size_t floor, size_t max) {
  PoolSizer::Options o;
  o.floor = floor;
  o.max = max;
  o.paceNs = 5 * kMs;
  o.holdInitialNs = 1000 * kMs;
  o.holdMaxNs = 4000 * kMs;
  return o;
}

// 2,000 requests a second measured over one 100 ms window, then a 200 ms latency.
void measureSlowMirror(PoolSizer& s, uint64_t& now) {
  s.arrivals(0, now);
  now += 100 * kMs;
  s.arrivals(200, now);
  s.latency(200 * kMs);
}

TEST(PoolSizer, UpToTheFloorConnectionsOpenAtOnce) {
  PoolSizer s(options(4, 100));
  for (size_t live = 0; live < 4; ++live) {
    EXPECT_TRUE(s.mayOpen(kT0, live, 1000, 0)) << live;
    s.opened(kT0, live + 1);  // no pacing up to the floor
  }
  EXPECT_FALSE(s.mayOpen(kT0, 4, 1000, 0)) << "beyond the floor without a measured latency";
  EXPECT_EQ(s.wanted(0), 0u);
  EXPECT_EQ(s.nextChanceNs(kT0, 4), UINT64_MAX);
}

TEST(PoolSizer, FloorAtOrAboveMaxIsAFixedPool) {
  PoolSizer s(options(16, 8));
  EXPECT_EQ(s.floor(), 8u);
  EXPECT_EQ(s.max(), 8u);
  uint64_t now = kT0;
  measureSlowMirror(s, now);
  EXPECT_TRUE(s.mayOpen(now, 7, 0, 0));
  EXPECT_FALSE(s.mayOpen(now, 8, 0, 0));
}

TEST(PoolSizer, LittlesLawBoundsTheRequestsInFlight) {
  PoolSizer s(options(16, 1024));
  uint64_t now = kT0;
  measureSlowMirror(s, now);
  EXPECT_DOUBLE_EQ(s.ratePerSecond(), 2000.0);
  EXPECT_EQ(s.latencyNs(), 200 * kMs);
  EXPECT_EQ(s.wanted(0), 501u);  // ceil(2000/s x 0.2 s x 1.25) + 1
  EXPECT_TRUE(s.mayOpen(now, 16, 500, 0));
  EXPECT_FALSE(s.mayOpen(now, 16, 501, 0));
  EXPECT_FALSE(s.mayOpen(now, 1024, 0, 0)) << "never beyond max";
  // What waits is to drain within a second: 2,000 waiting count as 2,000 more a second.
  EXPECT_EQ(s.wanted(2000), 1001u);
  EXPECT_TRUE(s.mayOpen(now, 16, 600, 2000));
  // A fast mirror wants few.
  PoolSizer fast(options(2, 1024));
  uint64_t t = kT0;
  fast.arrivals(0, t);
  t += 100 * kMs;
  fast.arrivals(4000, t);  // 40,000/s
  fast.latency(kMs / 4);   // 250 us
  EXPECT_EQ(fast.wanted(0), 14u);  // ceil(40000 x 0.00025 x 1.25) + 1
}

TEST(PoolSizer, GrowthIsPaced) {
  PoolSizer s(options(2, 100));
  uint64_t now = kT0;
  measureSlowMirror(s, now);
  ASSERT_TRUE(s.mayOpen(now, 2, 2, 0));
  s.opened(now, 3);
  EXPECT_FALSE(s.mayOpen(now + 5 * kMs - 1, 3, 3, 0));
  EXPECT_EQ(s.nextChanceNs(now, 3), now + 5 * kMs);
  EXPECT_TRUE(s.mayOpen(now + 5 * kMs, 3, 3, 0));
  // Over a second: at most 200 connections beyond the floor.
  size_t live = 3;
  uint64_t t = now + 5 * kMs;
  for (; t < now + 5 * kMs + 1000 * kMs; t += kMs) {
    if (s.mayOpen(t, live, live, 0)) {
      s.opened(t, ++live);
    }
  }
  EXPECT_EQ(live, 100u) << "capped by max 100 before the second ends";
  PoolSizer wide(options(2, 10000));
  uint64_t w = kT0;
  measureSlowMirror(wide, w);
  size_t n = 2;
  for (uint64_t u = w; u < w + 1000 * kMs; u += kMs / 10) {
    if (wide.mayOpen(u, n, n, 0)) {
      wide.opened(u, ++n);
    }
  }
  EXPECT_EQ(n, 2u + 200u) << "one per 5 ms";
}

TEST(PoolSizer, FailuresHoldGrowthLongerWhileTheyKeepComing) {
  PoolSizer s(options(2, 100));
  uint64_t now = kT0;
  measureSlowMirror(s, now);
  s.distress(now);
  EXPECT_EQ(s.holds(), 1u);
  EXPECT_FALSE(s.mayOpen(now + 999 * kMs, 2, 2, 0));
  EXPECT_TRUE(s.mayOpen(now + 1000 * kMs, 2, 2, 0));
  EXPECT_TRUE(s.mayOpen(now, 1, 1, 0)) << "the floor is not held";
  s.distress(now + 500 * kMs);  // same episode: no longer
  EXPECT_EQ(s.holds(), 1u);
  EXPECT_EQ(s.nextChanceNs(now + 500 * kMs, 2), now + 1000 * kMs);
  // Again within a hold's length of its end: twice as long (2 s), then 4 s (the max), 4 s.
  uint64_t t = now + 1500 * kMs;
  for (const uint64_t hold : {2000 * kMs, 4000 * kMs, 4000 * kMs}) {
    s.distress(t);
    EXPECT_FALSE(s.mayOpen(t + hold - 1, 2, 2, 0));
    EXPECT_TRUE(s.mayOpen(t + hold, 2, 2, 0));
    t += hold + 100 * kMs;
  }
  // Quiet for longer than the hold: back to 1 s.
  t += 10'000 * kMs;
  s.distress(t);
  EXPECT_FALSE(s.mayOpen(t + 999 * kMs, 2, 2, 0));
  EXPECT_TRUE(s.mayOpen(t + 1000 * kMs, 2, 2, 0));
  EXPECT_EQ(s.holds(), 5u);
}

TEST(PoolSizer, OutOfDescriptorsStaysAtItsSizeForAWhile) {
  PoolSizer s(options(16, 100));
  s.noDescriptors(kT0, 3);
  EXPECT_FALSE(s.mayOpen(kT0, 3, 0, 0)) << "not even below the floor";
  EXPECT_EQ(s.nextChanceNs(kT0, 3), kT0 + 1000 * kMs);
  EXPECT_TRUE(s.mayOpen(kT0 + 1000 * kMs, 3, 0, 0));
}

TEST(PoolSizer, RateIsAnAverageOfWindowsAndForgetsIdleStretches) {
  PoolSizer s(options(1, 10));
  uint64_t t = kT0;
  s.arrivals(0, t);
  s.arrivals(50, t + 50 * kMs);  // window not over: nothing yet
  EXPECT_EQ(s.ratePerSecond(), 0.0);
  t += 100 * kMs;
  s.arrivals(100, t);
  EXPECT_DOUBLE_EQ(s.ratePerSecond(), 1000.0);
  t += 100 * kMs;
  s.arrivals(300, t);  // 2000/s: moves 30 % of the way
  EXPECT_DOUBLE_EQ(s.ratePerSecond(), 1300.0);
  t += 5000 * kMs;  // idle 5 s, then a window of it
  s.arrivals(310, t);
  EXPECT_DOUBLE_EQ(s.ratePerSecond(), 2.0) << "an idle stretch replaces the estimate";
  s.latency(100 * kMs);
  s.latency(300 * kMs);
  EXPECT_EQ(s.latencyNs(), 125 * kMs);  // 1/8 of the way
}

// A mirror that answers `live` connections after `latencyOf(live)` each
// (HTTP/1: one request in flight per connection), so live / latency answers a
// second: every millisecond for `ms` ms its answers of that millisecond come
// in, growth is judged and, where the sizer allows, one more connection opens
// while `waiting` requests wait.
struct Mirror {
  PoolSizer& sizer;
  uint64_t now;
  size_t live;
  uint64_t saturatedAt = 0;  // when checkGrowth last judged that growth did not pay
  double due = 0;            // answers owed, fractions of one carried over
  bool flicker = false;      // every other millisecond nothing waits

  template <typename LatencyOf>
  void run(uint64_t ms, LatencyOf latencyOf, size_t waiting = 1000) {
    for (uint64_t end = now + ms * kMs; now < end; now += kMs) {
      const uint64_t latency = latencyOf(live);
      due += static_cast<double>(live) * static_cast<double>(kMs) / static_cast<double>(latency);
      for (; due >= 1; due -= 1) {
        sizer.latency(latency);
      }
      const size_t queued = flicker && (now / kMs) % 2 == 1 ? 0 : waiting;
      if (sizer.checkGrowth(now, live, queued)) {
        saturatedAt = now;
      }
      if (queued > 0 && sizer.mayOpen(now, live, live, queued)) {
        sizer.opened(now, ++live);
      }
    }
  }
};

// A mirror for `s` after measureSlowMirror (2,000 requests a second), with
// `live` connections open.
Mirror slowMirror(PoolSizer& s, size_t live) {
  uint64_t t = kT0;
  measureSlowMirror(s, t);
  return Mirror{s, t, live};
}

TEST(PoolSizer, GrowthAgainstAParallelSlowMirrorPays) {
  // 200 ms whatever the connections: each doubling doubles the answers a second.
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  m.run(5000, [](size_t) { return 200 * kMs; });
  EXPECT_GE(m.live, 700u) << "Little's law wants 751 with 1,000 waiting at 2,000/s";
  EXPECT_EQ(s.saturations(), 0u);
  EXPECT_EQ(s.holds(), 0u);
  EXPECT_GE(s.paidConnections(), 512u) << "judged at 32, 64, ... 512: each paid";
  // Counted over 200 ms while it grew no further: 5 answers a second a connection.
  EXPECT_NEAR(s.paidAnswersPerSecond(), static_cast<double>(s.paidConnections()) * 5.0, 10.0);
}

TEST(PoolSizer, AMirrorAtItsCapacityHoldsGrowthAtTwiceWhereItLastPaid) {
  // 1 ms per connection: 1,000 answers a second however many connections wait.
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  auto capacity = [](size_t live) { return live * kMs; };
  // The pool leaves the floor at once, before 200 ms were counted there: the
  // first doubling is taken on trust, and 32 is where growth last paid.
  m.run(300, capacity);
  ASSERT_EQ(s.paidConnections(), 32u);
  ASSERT_NEAR(s.paidAnswersPerSecond(), 1000.0, 10.0);
  m.run(600, capacity);
  EXPECT_EQ(m.live, 64u) << "grew past twice where growth last paid, though it did not pay";
  EXPECT_EQ(s.saturations(), 1u);
  EXPECT_EQ(s.holds(), 0u) << "no failure: a saturation is counted apart";
  EXPECT_EQ(s.paidConnections(), 32u);
  EXPECT_NEAR(s.measuredAnswersPerSecond(), 1000.0, 10.0);
  const uint64_t first = m.saturatedAt;
  EXPECT_EQ(s.saturatedUntilNs(), first + 1000 * kMs);
  EXPECT_EQ(s.holdUntilNs(), 0u) << "not a failure hold";
  EXPECT_FALSE(s.mayOpen(first + 999 * kMs, 64, 64, 1000));
  EXPECT_EQ(s.nextChanceNs(first, 64), first + 1000 * kMs);
  EXPECT_TRUE(s.mayOpen(first + 10 * kMs, 63, 63, 1000)) << "a connection that closed is replaced";
  EXPECT_TRUE(s.mayOpen(first, 15, 15, 1000)) << "the floor is not held";
  // It stays so: counted afresh as each hold ends (200 ms), held twice as
  // long up to the most (4 s here): holds of 1, 2, 4, 4 s, so the fifth
  // judgement comes 11 s + 4 x 200 ms after the first.
  m.run(12'000, capacity);
  EXPECT_EQ(m.live, 64u);
  EXPECT_EQ(s.saturations(), 5u);
  EXPECT_EQ(m.saturatedAt - first, 11'800 * kMs);
  EXPECT_EQ(s.saturatedUntilNs() - m.saturatedAt, 4000 * kMs);
}

TEST(PoolSizer, GrowthResumesWhenTheMirrorRecovers) {
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  m.run(900, [](size_t live) { return live * kMs; });
  ASSERT_EQ(m.live, 64u);
  ASSERT_EQ(s.saturations(), 1u);
  // Scaled up: 20 ms whatever the connections. After the hold, 64 connections
  // answer 3,200/s, more than the 1,250/s growth must give: it paid, and goes
  // on to what Little's law wants (76).
  m.run(2500, [](size_t) { return 20 * kMs; });
  EXPECT_EQ(s.saturations(), 1u);
  EXPECT_GE(m.live, 70u);
  EXPECT_EQ(s.paidConnections(), 64u);
}

TEST(PoolSizer, AMirrorThatSlowedByItselfIsJudgedFromWhereItIs) {
  // 10 ms whatever the connections, then 50 ms (a slower dependency, say):
  // fewer answers a second at 64 than where growth last paid (32 at 10 ms),
  // which is no reason to stop at 64. Little's law wants 189 at 50 ms.
  PoolSizer s(options(4, 1024));
  Mirror m = slowMirror(s, 4);
  m.run(2000, [](size_t) { return 10 * kMs; });
  ASSERT_EQ(s.paidConnections(), 32u);
  m.run(4000, [](size_t) { return 50 * kMs; });
  EXPECT_EQ(s.saturations(), 0u);
  EXPECT_GE(m.live, 180u);
}

TEST(PoolSizer, OneLowCountIsABurstNotAChangedMirror) {
  // Held at 64 as above; as the hold ends the mirror answers half as fast for
  // 250 ms: one count below 80 % of the bar is counted again, not taken for
  // a mirror that changed (which would let the pool double again).
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  uint64_t slowdown = 1;
  auto capacity = [&](size_t live) { return live * kMs * slowdown; };
  m.run(900, capacity);
  ASSERT_EQ(s.saturations(), 1u);
  m.run((s.saturatedUntilNs() - m.now) / kMs, capacity);
  slowdown = 2;
  m.run(250, capacity);
  slowdown = 1;
  m.run(400, capacity);
  EXPECT_EQ(s.saturations(), 2u) << "not judged again after the low count";
  EXPECT_EQ(s.paidConnections(), 32u) << "judged from the low count";
  EXPECT_EQ(m.live, 64u);
}

TEST(PoolSizer, AfterAShrinkTheBarStaysWhatWasCountedAtTheLargerSize) {
  // Held at 64 (where growth last paid: 32, 1,000 answers a second); the
  // pool drops below 32 (connections closed). Growth from 31 to 62 must
  // still beat 1,000/s; taken on trust it would climb a doubling per shrink.
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  auto capacity = [](size_t live) { return live * kMs; };
  m.run(900, capacity);
  ASSERT_EQ(m.live, 64u);
  ASSERT_EQ(s.saturations(), 1u);
  m.live = 31;
  m.run(2000, capacity);
  EXPECT_EQ(s.paidConnections(), 31u);
  EXPECT_NEAR(s.paidAnswersPerSecond(), 1000.0, 10.0);
  EXPECT_EQ(m.live, 62u);
  EXPECT_EQ(s.saturations(), 2u);
}

TEST(PoolSizer, StretchesWithoutRequestsWaitingAreLeftOutOfTheCount) {
  // The queue empties every other millisecond (a pool nearly big enough):
  // the count pauses then instead of starting over, so the parallel 200 ms
  // mirror is still judged and grows as before.
  PoolSizer s(options(16, 1024));
  Mirror m = slowMirror(s, 16);
  m.flicker = true;
  m.run(6000, [](size_t) { return 200 * kMs; });
  EXPECT_EQ(s.saturations(), 0u);
  EXPECT_GE(s.paidConnections(), 256u);
  EXPECT_GE(m.live, 500u);
}

TEST(PoolSizer, AnswersAreCountedOnlyWhileRequestsWait) {
  PoolSizer s(options(4, 100));
  s.latency(kMs);
  uint64_t t = kT0;
  // At the floor, requests waiting: 2,000 answers a second counted over 200 ms.
  EXPECT_FALSE(s.checkGrowth(t, 4, 100));
  for (int i = 0; i < 400; ++i) {
    s.latency(2 * kMs);
  }
  t += 200 * kMs;
  EXPECT_FALSE(s.checkGrowth(t, 4, 100));
  EXPECT_DOUBLE_EQ(s.paidAnswersPerSecond(), 2000.0);
  // Doubled: no growth until the answers at 8 are counted.
  EXPECT_FALSE(s.checkGrowth(t, 7, 100)) << "not yet twice";
  s.opened(t, 8);  // pacing alone would allow one at t + 5 ms
  EXPECT_FALSE(s.checkGrowth(t, 8, 100));
  EXPECT_FALSE(s.mayOpen(t, 8, 8, 100000)) << "grew while its answers were counted";
  EXPECT_EQ(s.nextChanceNs(t, 8), UINT64_MAX) << "answers turn it, not time";
  for (int i = 0; i < 300; ++i) {
    s.latency(4 * kMs);
  }
  EXPECT_FALSE(s.checkGrowth(t + 150 * kMs, 8, 100)) << "judged before 200 ms were counted";
  EXPECT_FALSE(s.checkGrowth(t + 160 * kMs, 8, 0)) << "judged while nothing waits";
  // 240 ms with nothing waiting at its start: its 1,000 answers are not the
  // mirror's pace at 8 (what arrived, drained), and are left out.
  for (int i = 0; i < 1000; ++i) {
    s.latency(4 * kMs);
  }
  EXPECT_FALSE(s.checkGrowth(t + 400 * kMs, 8, 100)) << "the stretch without requests waiting was counted";
  for (int i = 0; i < 100; ++i) {
    s.latency(4 * kMs);
  }
  EXPECT_TRUE(s.checkGrowth(t + 450 * kMs, 8, 100)) << "400 answers in 210 ms at 8, 2,000/s at 4: not paid";
  EXPECT_NEAR(s.measuredAnswersPerSecond(), 400 / 0.21, 0.1);
  EXPECT_FALSE(s.checkGrowth(t + 950 * kMs, 8, 100)) << "judged again before the hold ended";
  EXPECT_EQ(s.nextChanceNs(t + 950 * kMs, 8), t + 1450 * kMs);
  // The pool shrank below where growth last paid: the count starts there,
  // the bar stays.
  EXPECT_FALSE(s.checkGrowth(t + 5000 * kMs, 3, 100));
  EXPECT_EQ(s.paidConnections(), 3u);
  EXPECT_DOUBLE_EQ(s.paidAnswersPerSecond(), 2000.0);
  EXPECT_EQ(s.saturations(), 1u);
  EXPECT_EQ(s.holds(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
