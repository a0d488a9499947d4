// The growth rules of a mirror pool on explicit (fake) times: the floor, no
// growth without a measured latency, Little's law, pacing, holds after
// failures, descriptor exhaustion.
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

}  // namespace
}  // namespace shadowtap::replay
