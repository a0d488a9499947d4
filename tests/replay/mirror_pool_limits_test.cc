// Mirror pool features for production: rate limit, drop-oldest policy, periodic
// re-resolution, published local endpoints, latency histogram.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <functional>
#include <set>

#include "replay/local_endpoints.h"
#include "replay/mirror_pool.h"
#include "pool_test_util.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

using namespace testing;

model::Request job(int seq) {
  model::Request j;
  j.method = "GET";
  j.bytes = "GET /?seq=" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\nX-Seq: " + std::to_string(seq) +
            "\r\n\r\n";
  return j;
}

std::set<int> seqsReceived(TestHttpServer& server) {
  std::set<int> out;
  for (const auto& conn : server.requestsByConnection()) {
    for (const auto& r : conn) {
      out.insert(std::stoi(r.substr(r.find("X-Seq: ") + 7)));
    }
  }
  return out;
}

std::string portTarget(const sockaddr_storage& addr) {
  const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
  return "127.0.0.1:" + std::to_string(ntohs(in->sin_port));
}

// On a fake clock: GCRA admits a burst of a tenth of a second's worth, then
// one per interval, exactly.
TEST(MirrorPoolLimits, RateLimitDropsTheExcessAndCountsIt) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  base::FakeClock clock;
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.maxRps = 20;  // one every 50 ms, bursts of 2
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  int accepted = 0;
  for (int i = 0; i < 50; ++i) {
    accepted += pool.submit(job(i)) ? 1 : 0;
  }
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(get(pool.stats().droppedRateLimit), 48u);
  clock.advance(49'000'000);
  EXPECT_FALSE(pool.submit(job(50))) << "admitted before the interval passed";
  clock.advance(1'000'000);
  EXPECT_TRUE(pool.submit(job(51)));
  EXPECT_FALSE(pool.submit(job(52)));
  // Paced at the rate, everything passes.
  for (int i = 53; i < 58; ++i) {
    clock.advance(50'000'000);
    EXPECT_TRUE(pool.submit(job(i))) << i;
  }
  // Idle for long: the burst allowance is back, and no more.
  clock.advance(1'000'000'000);
  EXPECT_TRUE(pool.submit(job(58)));
  EXPECT_TRUE(pool.submit(job(59)));
  EXPECT_FALSE(pool.submit(job(60)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 10; }, 3s));
  pool.stop(1s);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.droppedRateLimit), 51u);
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(server.requestCount(), 10u);
}

TEST(MirrorPoolLimits, DropOldestKeepsTheNewestJobs) {
  std::atomic<bool> release{false};
  TestHttpServer server([&](const ServerRequest&, size_t, size_t index) {
    if (index == 0) {
      waitFor([&] { return release.load(); }, 5s);
    }
    return ServerAction{.response = httpResponse(200, "x")};
  });
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  opts.queueCapacity = 3;
  opts.dropPolicy = DropPolicy::kOldest;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return server.requestCount() == 1; }, 2s));
  for (int i = 1; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(job(i))) << i;  // never refused: the oldest make room
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().droppedOldest) == 6; }, 2s));
  release = true;
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 4; }, 3s));
  pool.stop(1s);
  EXPECT_EQ(seqsReceived(server), (std::set<int>{0, 7, 8, 9}));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.queueFull), 0u);
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(s.queueDepth.load(), 0);
  EXPECT_EQ(s.queueBytes.load(), 0);
}

TEST(MirrorPoolLimits, DropOldestDropsAtShutdownWhatIsLeftInTheBacklog) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 400ms, .response = httpResponse(200, "x")};
  });
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  opts.queueCapacity = 4;
  opts.dropPolicy = DropPolicy::kOldest;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit(job(i)));
    std::this_thread::sleep_for(5ms);
  }
  pool.stop(50ms);
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(get(s.droppedShutdown), 5u);
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(s.queueDepth.load(), 0);
}

// On a fake clock: re-resolution runs when resolveInterval has passed on the
// pool's clock, with resolveTarget when no resolver is given.
TEST(MirrorPoolLimits, ReResolutionMovesToTheNewAddress) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  RefusedPort refused;
  base::FakeClock clock;
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {refused.address()};                // what the name resolved to at start
  opts.target = portTarget(server.address());      // what it resolves to now
  opts.resolveInterval = 100ms;
  opts.backoffInitial = 20ms;
  opts.clock = &clock;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().errorsConnect) == 1; }, 2s));
  advance(clock, pool, 99ms);
  EXPECT_EQ(get(pool.stats().resolves), 0u) << "resolved before the interval passed";
  advance(clock, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().addressChanges) == 1; }, 2s));
  ASSERT_TRUE(pool.submit(job(1)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }, 2s));
  // Later resolutions give the same address: no further change.
  for (uint64_t n = 2; n <= 3; ++n) {
    advance(clock, pool, 100ms);
    ASSERT_TRUE(waitFor([&] { return get(pool.stats().resolves) == n; }, 2s));
  }
  pool.stop(1s);
  EXPECT_EQ(get(pool.stats().addressChanges), 1u);
  EXPECT_EQ(get(pool.stats().resolveErrors), 0u);
  EXPECT_EQ(seqsReceived(server), (std::set<int>{1}));
}

TEST(MirrorPoolLimits, FailedReResolutionKeepsTheAddresses) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.target = "name.invalid:80";
  opts.resolveInterval = 50ms;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().resolveErrors) >= 1; }, 10s));
  ASSERT_TRUE(pool.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }, 2s));
  pool.stop(1s);
  EXPECT_EQ(get(pool.stats().addressChanges), 0u);
}

TEST(MirrorPoolLimits, LocalEndpointsArePublishedWhileSocketsLive) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  LocalEndpoints endpoints;
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.localEndpoints = &endpoints;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }, 2s));
  EXPECT_EQ(endpoints.size(), 1u);  // the keep-alive connection, narrowed to its real address
  std::array<uint8_t, 16> loopback{127, 0, 0, 1};
  bool found = false;
  for (uint32_t port = 1; port < 65536 && !found; ++port) {
    found = endpoints.contains(4, loopback, static_cast<uint16_t>(port));
  }
  EXPECT_TRUE(found);
  pool.stop(1s);
  EXPECT_EQ(endpoints.size(), 0u);
}

TEST(MirrorPoolLimits, LocalEndpointsMatchExactOrWildcard) {
  LocalEndpoints e;
  std::array<uint8_t, 16> a{198, 18, 0, 2};
  std::array<uint8_t, 16> b{198, 18, 0, 3};
  EXPECT_FALSE(e.contains(4, a, 40000));
  e.add({4, a, 40000});
  EXPECT_TRUE(e.contains(4, a, 40000));
  EXPECT_FALSE(e.contains(4, b, 40000));
  EXPECT_FALSE(e.contains(6, a, 40000));
  EXPECT_FALSE(e.contains(4, a, 40001));
  e.add({4, {}, 40001});  // bound, not yet connected: any address
  EXPECT_TRUE(e.contains(4, b, 40001));
  e.remove({4, a, 40000});
  e.remove({4, {}, 40001});
  EXPECT_FALSE(e.contains(4, a, 40000));
  EXPECT_FALSE(e.contains(4, b, 40001));
  EXPECT_EQ(e.size(), 0u);
}

// A worker's View answers as the shared set does after every change, and
// copies the set only once it stayed the same between two of its lookups (a
// burst of changes costs locked lookups, not a copy per change).
TEST(MirrorPoolLimits, AViewSeesEveryChangeAndCopiesOnlyASettledSet) {
  LocalEndpoints e;
  LocalEndpoints::View v(e);
  std::array<uint8_t, 16> a{198, 18, 0, 2};
  std::array<uint8_t, 16> b{198, 18, 0, 3};
  EXPECT_FALSE(v.contains(4, a, 40000));
  EXPECT_EQ(v.refreshes(), 0u) << "nothing published: nothing to copy";
  e.add({4, a, 40000});
  EXPECT_TRUE(v.contains(4, a, 40000)) << "seen at once, under the lock";
  EXPECT_EQ(v.refreshes(), 0u);
  EXPECT_FALSE(v.contains(4, b, 40000));
  EXPECT_EQ(v.refreshes(), 1u) << "unchanged since the last lookup: copied";
  EXPECT_FALSE(v.contains(4, a, 40001));
  EXPECT_EQ(v.refreshes(), 1u) << "from the copy";
  for (uint16_t port = 41000; port < 41100; ++port) {  // a burst: one change between lookups
    e.add({4, {}, port});
    EXPECT_TRUE(v.contains(4, b, port));
  }
  EXPECT_EQ(v.refreshes(), 1u) << "no copy while the set changes between every two lookups";
  e.remove({4, a, 40000});
  EXPECT_FALSE(v.contains(4, a, 40000));
  EXPECT_TRUE(v.contains(4, a, 41050));
  EXPECT_EQ(v.refreshes(), 2u);
  EXPECT_TRUE(v.contains(4, b, 41099));
  EXPECT_FALSE(v.contains(4, b, 40000));
}

TEST(MirrorPoolLimits, LatencyIsRecordedForEveryResponse) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t index) {
    return ServerAction{.delay = index == 0 ? 60ms : 0ms, .response = httpResponse(200, "x")};
  });
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(job(i)));
  }
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 10; }, 3s));
  pool.stop(1s);
  const LatencyHistogram& h = pool.stats().latency;
  EXPECT_EQ(get(h.count), 10u);
  uint64_t inBuckets = 0;
  for (const auto& b : h.buckets) {
    inBuckets += get(b);
  }
  EXPECT_EQ(inBuckets, 10u);
  EXPECT_GE(get(h.sumUs), 60'000u);
  EXPECT_GE(h.quantileBoundUs(1.0), 100'000u);  // the slow one lands in the 100 ms bucket
  EXPECT_LE(h.quantileBoundUs(0.5), 50'000u);
}

TEST(LatencyHistogram, BucketsAreUpperInclusive) {
  LatencyHistogram h;
  h.observe(0);
  h.observe(500);
  h.observe(501);
  h.observe(20'000'000);
  EXPECT_EQ(get(h.buckets[0]), 2u);
  EXPECT_EQ(get(h.buckets[1]), 1u);
  EXPECT_EQ(get(h.buckets.back()), 1u);
  EXPECT_EQ(h.quantileBoundUs(0.5), 500u);
  EXPECT_EQ(h.quantileBoundUs(1.0), UINT64_MAX);
}

}  // namespace
}  // namespace shadowtap::replay
