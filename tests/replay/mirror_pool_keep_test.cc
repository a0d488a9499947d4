// Compare mode of the HTTP/1 mirror pool: requests with an exchange id keep
// their response (status, headers, de-chunked bounded body, hash of the whole
// body) and hand it to the observer's onResponse; every such request that ends
// any other way is reported to onMissing, exactly once. Requests without an id
// behave as before.

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "base/strings.h"
#include "replay/mirror_pool.h"
#include "pool_test_util.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

using namespace testing;

// Collects what the observer is told, by exchange id.
struct Collector final : public ResponseObserver {
  std::mutex mutex;
  std::map<uint64_t, model::Response> kept;
  std::multiset<uint64_t> missing;
  std::multiset<uint64_t> keptIds;  // to catch a second report of one id

  void onResponse(uint64_t id, model::Response&& r) override {
    std::lock_guard<std::mutex> lock(mutex);
    keptIds.insert(id);
    kept[id] = std::move(r);
  }
  void onMissing(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mutex);
    missing.insert(id);
  }
  void install(MirrorPoolOptions& opts) { opts.observer = this; }
  size_t ended() {
    std::lock_guard<std::mutex> lock(mutex);
    return keptIds.size() + missing.size();
  }
};

MirrorPoolOptions optionsFor(const sockaddr_storage& addr) {
  MirrorPoolOptions opts;
  opts.io = ::shadowtap::replay::testing::testIo();
  opts.addrs = {addr};
  opts.maxConnections = 2;
  opts.connectTimeout = 500ms;
  opts.responseTimeout = 1000ms;
  return opts;
}

model::Request job(uint64_t exchangeId, const std::string& method, const std::string& path) {
  model::Request j;
  j.ruleId = 1;
  j.exchangeId = exchangeId;
  j.method = method;
  j.bytes = method + " " + path + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
  return j;
}

std::string pathOf(const ServerRequest& r) {
  const size_t a = r.bytes.find(' ');
  return r.bytes.substr(a + 1, r.bytes.find(' ', a + 1) - a - 1);
}

TEST(MirrorPoolHttp1Keep, ResponsesAreKeptWholeAndPairedById) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    const std::string path = pathOf(r);
    if (path == "/json") {
      return ServerAction{.response = httpResponse(200, R"({"a":1,"b":"x"})", "Content-Type: application/json\r\n")};
    }
    if (path == "/chunked") {
      return ServerAction{.response = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-T: 1\r\n\r\n"
                                      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                          .writeChunk = 7};
    }
    if (path == "/continue") {
      return ServerAction{.interim = "HTTP/1.1 100 Continue\r\n\r\n", .response = httpResponse(404, "nope")};
    }
    if (path == "/head") {
      // A HEAD response carries the GET's Content-Length but no body.
      return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"};
    }
    return ServerAction{.response = httpResponse(200, "plain")};
  });
  MirrorPoolOptions opts = optionsFor(server.address());
  Collector c;
  c.install(opts);
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());

  ASSERT_TRUE(pool.submit(job(11, "GET", "/json")));
  ASSERT_TRUE(pool.submit(job(12, "GET", "/chunked")));
  ASSERT_TRUE(pool.submit(job(13, "GET", "/continue")));
  ASSERT_TRUE(pool.submit(job(14, "HEAD", "/head")));
  ASSERT_TRUE(pool.submit(job(0, "GET", "/untracked")));  // not compared: no report
  ASSERT_TRUE(pool.submit(job(15, "GET", "/plain")));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 6; }, 5s));
  pool.stop(1s);

  ASSERT_EQ(c.kept.size(), 5u);
  EXPECT_TRUE(c.missing.empty());
  EXPECT_EQ(c.keptIds.size(), 5u);
  EXPECT_EQ(c.kept[11].status, 200);
  EXPECT_EQ(c.kept[11].body, R"({"a":1,"b":"x"})");
  EXPECT_EQ(c.kept[11].header("content-type"), "application/json");
  EXPECT_EQ(c.kept[11].bodyHash, base::fnv1a64(R"({"a":1,"b":"x"})"));
  EXPECT_GT(c.kept[11].tsNs, 0u);
  EXPECT_EQ(c.kept[12].status, 201);
  EXPECT_EQ(c.kept[12].body, "abcdefg") << "chunk framing removed";
  EXPECT_EQ(c.kept[12].bodyLength, 7u);
  EXPECT_EQ(c.kept[12].header("X-T"), "1");
  EXPECT_EQ(c.kept[13].status, 404) << "the interim 100 is skipped";
  EXPECT_EQ(c.kept[13].body, "nope");
  EXPECT_EQ(c.kept[14].status, 200);
  EXPECT_EQ(c.kept[14].body, "") << "a HEAD response has no body";
  EXPECT_EQ(c.kept[15].body, "plain");
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.keptResponses.load(), 5u);
  EXPECT_EQ(s.missingResponses.load(), 0u);
  EXPECT_EQ(s.responses.load(), 6u);
  const http::ResponseStats& f = pool.stats().keptFraming;
  EXPECT_EQ(f.expected.load(), 5u);
  EXPECT_EQ(f.responses.load(), 5u);
  EXPECT_EQ(f.interim.load(), 1u);
}

TEST(MirrorPoolHttp1Keep, BodiesOverTheLimitAreCutButHashedWhole) {
  const std::string body(5000, 'z');
  TestHttpServer server([&](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, body)}; });
  MirrorPoolOptions opts = optionsFor(server.address());
  opts.responseLimits.maxBodyBytes = 100;
  Collector c;
  c.install(opts);
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(1, "GET", "/big")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 1; }, 5s));
  pool.stop(1s);
  ASSERT_EQ(c.kept.count(1), 1u);
  EXPECT_EQ(c.kept[1].body, body.substr(0, 100));
  EXPECT_TRUE(c.kept[1].bodyTruncated);
  EXPECT_EQ(c.kept[1].bodyLength, body.size());
  EXPECT_EQ(c.kept[1].bodyHash, base::fnv1a64(body));
}

TEST(MirrorPoolHttp1Keep, ABodyEndedByCloseIsKept) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", .closeAfter = true};
  });
  MirrorPoolOptions opts = optionsFor(server.address());
  Collector c;
  c.install(opts);
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(3, "GET", "/close")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 1; }, 5s));
  pool.stop(1s);
  ASSERT_EQ(c.kept.count(3), 1u);
  EXPECT_EQ(c.kept[3].body, "until the end");
}

TEST(MirrorPoolHttp1Keep, EveryFailureEndsTheExchangeAsMissingOnce) {
  // Resets, timeouts and oversized responses, each on its own path.
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    const std::string path = pathOf(r);
    if (path == "/reset") {
      return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", .reset = true};
    }
    if (path == "/slow") {
      return ServerAction{.delay = 1500ms, .response = httpResponse(200, "late")};
    }
    if (path == "/huge") {
      return ServerAction{.response = httpResponse(200, std::string(4096, 'h'))};
    }
    return ServerAction{.response = httpResponse(200, "fine")};
  });
  MirrorPoolOptions opts = optionsFor(server.address());
  opts.maxConnections = 4;
  opts.responseTimeout = 300ms;
  opts.maxResponseBytes = 1024;
  Collector c;
  c.install(opts);
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(21, "GET", "/reset")));
  ASSERT_TRUE(pool.submit(job(22, "GET", "/slow")));
  ASSERT_TRUE(pool.submit(job(23, "GET", "/huge")));
  ASSERT_TRUE(pool.submit(job(24, "GET", "/fine")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 4; }, 5s));
  pool.stop(1s);
  EXPECT_EQ(c.kept.size(), 1u);
  EXPECT_EQ(c.kept.count(24), 1u);
  EXPECT_EQ(c.missing, (std::multiset<uint64_t>{21, 22, 23}));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.keptResponses.load() + s.missingResponses.load(), 4u);
  EXPECT_EQ(s.submitted.load(), s.outcomes());
}

TEST(MirrorPoolHttp1Keep, DroppedAndRefusedJobsAreReportedMissing) {
  // A refused target: connect errors. Then a full queue and a stopped pool.
  RefusedPort refused;
  MirrorPoolOptions opts = optionsFor(refused.address());
  opts.queueCapacity = 2;
  opts.backoffInitial = 10s;  // after the first refusal the queue waits
  Collector c;
  c.install(opts);
  MirrorPool pool(opts);
  ASSERT_TRUE(pool.start());
  uint64_t id = 1;
  for (; id <= 20; ++id) {
    pool.submit(job(id, "GET", "/x"));
  }
  pool.stop(100ms);
  EXPECT_FALSE(pool.submit(job(id, "GET", "/after-stop")));
  EXPECT_TRUE(c.kept.empty());
  std::set<uint64_t> unique(c.missing.begin(), c.missing.end());
  EXPECT_EQ(c.missing.size(), unique.size()) << "each exchange ends once";
  EXPECT_EQ(unique.size(), 21u) << "every exchange ends";
  const MirrorStats& s = pool.stats();
  EXPECT_GT(s.queueFull.load(), 0u);
  EXPECT_GT(s.errorsConnect.load(), 0u);
  EXPECT_EQ(s.missingResponses.load(), 21u);
  EXPECT_EQ(s.submitted.load(), s.outcomes());
}

TEST(MirrorPoolHttp1Keep, WithoutAnObserverNothingIsKept) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  MirrorPool pool(optionsFor(server.address()));
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(job(5, "GET", "/")));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 1; }, 5s));
  pool.stop(1s);
  EXPECT_EQ(pool.stats().keptResponses.load(), 0u);
  EXPECT_EQ(pool.stats().keptFraming.expected.load(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
