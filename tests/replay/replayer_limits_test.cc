// Replayer features for production: rate limit, drop-oldest policy, periodic
// re-resolution, published local endpoints, latency histogram.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <functional>
#include <set>

#include "replay/local_endpoints.h"
#include "replay/replayer.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using testing::httpResponse;
using testing::RefusedPort;
using testing::ServerAction;
using testing::ServerRequest;
using testing::TestHttpServer;

ReplayJob job(int seq) {
  ReplayJob j;
  j.bytes = "GET /?seq=" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\nX-Seq: " + std::to_string(seq) +
            "\r\n\r\n";
  return j;
}

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

uint64_t get(const std::atomic<uint64_t>& c) { return c.load(); }

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

TEST(ReplayerLimits, RateLimitDropsTheExcessAndCountsIt) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.maxRps = 20;  // bursts of 2
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  int accepted = 0;
  for (int i = 0; i < 50; ++i) {
    accepted += replayer.submit(job(i)) ? 1 : 0;
  }
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(get(replayer.stats().droppedRateLimit), 48u);
  // Paced below the rate, everything passes.
  std::this_thread::sleep_for(150ms);
  for (int i = 50; i < 55; ++i) {
    EXPECT_TRUE(replayer.submit(job(i))) << i;
    std::this_thread::sleep_for(60ms);
  }
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 7; }, 3s));
  replayer.stop(1s);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(server.requestCount(), 7u);
}

TEST(ReplayerLimits, DropOldestKeepsTheNewestJobs) {
  std::atomic<bool> release{false};
  TestHttpServer server([&](const ServerRequest&, size_t, size_t index) {
    if (index == 0) {
      waitFor([&] { return release.load(); }, 5s);
    }
    return ServerAction{.response = httpResponse(200, "x")};
  });
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  opts.queueCapacity = 3;
  opts.dropPolicy = DropPolicy::kOldest;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return server.requestCount() == 1; }, 2s));
  for (int i = 1; i < 10; ++i) {
    ASSERT_TRUE(replayer.submit(job(i))) << i;  // never refused: the oldest make room
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().droppedOldest) == 6; }, 2s));
  release = true;
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 4; }, 3s));
  replayer.stop(1s);
  EXPECT_EQ(seqsReceived(server), (std::set<int>{0, 7, 8, 9}));
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.queueFull), 0u);
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(s.queueDepth.load(), 0);
  EXPECT_EQ(s.queueBytes.load(), 0);
}

TEST(ReplayerLimits, DropOldestDropsAtShutdownWhatIsLeftInTheBacklog) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.delay = 400ms, .response = httpResponse(200, "x")};
  });
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  opts.queueCapacity = 4;
  opts.dropPolicy = DropPolicy::kOldest;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(replayer.submit(job(i)));
    std::this_thread::sleep_for(5ms);
  }
  replayer.stop(50ms);
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(get(s.droppedShutdown), 5u);
  EXPECT_EQ(get(s.submitted), s.outcomes());
  EXPECT_EQ(s.queueDepth.load(), 0);
}

TEST(ReplayerLimits, ReResolutionMovesToTheNewAddress) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  RefusedPort refused;
  ReplayOptions opts;
  opts.addrs = {refused.address()};                // what the name resolved to at start
  opts.target = portTarget(server.address());      // what it resolves to now
  opts.resolveInterval = 100ms;
  opts.backoffInitial = 20ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().errorsConnect) == 1; }, 2s));
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().addressChanges) == 1; }, 2s));
  ASSERT_TRUE(replayer.submit(job(1)));
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 1; }, 2s));
  // Later resolutions give the same address: no further change.
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().resolves) >= 3; }, 2s));
  replayer.stop(1s);
  EXPECT_EQ(get(replayer.stats().addressChanges), 1u);
  EXPECT_EQ(get(replayer.stats().resolveErrors), 0u);
  EXPECT_EQ(seqsReceived(server), (std::set<int>{1}));
}

TEST(ReplayerLimits, FailedReResolutionKeepsTheAddresses) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.target = "name.invalid:80";
  opts.resolveInterval = 50ms;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().resolveErrors) >= 1; }, 10s));
  ASSERT_TRUE(replayer.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 1; }, 2s));
  replayer.stop(1s);
  EXPECT_EQ(get(replayer.stats().addressChanges), 0u);
}

TEST(ReplayerLimits, LocalEndpointsArePublishedWhileSocketsLive) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  LocalEndpoints endpoints;
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.localEndpoints = &endpoints;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(0)));
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 1; }, 2s));
  EXPECT_EQ(endpoints.size(), 1u);  // the keep-alive connection, narrowed to its real address
  std::array<uint8_t, 16> loopback{127, 0, 0, 1};
  bool found = false;
  for (uint32_t port = 1; port < 65536 && !found; ++port) {
    found = endpoints.contains(4, loopback, static_cast<uint16_t>(port));
  }
  EXPECT_TRUE(found);
  replayer.stop(1s);
  EXPECT_EQ(endpoints.size(), 0u);
}

TEST(ReplayerLimits, LocalEndpointsMatchExactOrWildcard) {
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

TEST(ReplayerLimits, LatencyIsRecordedForEveryResponse) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t index) {
    return ServerAction{.delay = index == 0 ? 60ms : 0ms, .response = httpResponse(200, "x")};
  });
  ReplayOptions opts;
  opts.addrs = {server.address()};
  opts.maxConnections = 1;
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(replayer.submit(job(i)));
  }
  ASSERT_TRUE(waitFor([&] { return get(replayer.stats().responses) == 10; }, 3s));
  replayer.stop(1s);
  const LatencyHistogram& h = replayer.stats().latency;
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
