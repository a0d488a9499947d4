// Compare mode of the replayer: jobs with an exchange id keep their response
// (status, headers, de-chunked bounded body, hash of the whole body) and hand it
// to onKeptResponse; every such job that ends any other way is reported to
// onMissingResponse, exactly once. Jobs without an id behave as before.

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "base/strings.h"
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

// Collects what the callbacks report, by exchange id.
struct Collector {
  std::mutex mutex;
  std::map<uint64_t, model::Response> kept;
  std::multiset<uint64_t> missing;
  std::multiset<uint64_t> keptIds;  // to catch a second report of one id
  compare::Part part = compare::Part::kPrimary;

  void install(ReplayOptions& opts, compare::Part p) {
    opts.comparePart = p;
    opts.onKeptResponse = [this](uint64_t id, compare::Part got, model::Response&& r) {
      std::lock_guard<std::mutex> lock(mutex);
      part = got;
      keptIds.insert(id);
      kept[id] = std::move(r);
    };
    opts.onMissingResponse = [this](uint64_t id, compare::Part got) {
      std::lock_guard<std::mutex> lock(mutex);
      part = got;
      missing.insert(id);
    };
  }
  size_t ended() {
    std::lock_guard<std::mutex> lock(mutex);
    return keptIds.size() + missing.size();
  }
};

ReplayOptions optionsFor(const sockaddr_storage& addr) {
  ReplayOptions opts;
  opts.addrs = {addr};
  opts.maxConnections = 2;
  opts.connectTimeout = 500ms;
  opts.responseTimeout = 1000ms;
  return opts;
}

ReplayJob job(uint64_t exchangeId, const std::string& method, const std::string& path) {
  ReplayJob j;
  j.ruleId = 1;
  j.exchangeId = exchangeId;
  j.method = method;
  j.isHead = method == "HEAD";
  j.bytes = method + " " + path + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
  return j;
}

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

std::string pathOf(const ServerRequest& r) {
  const size_t a = r.bytes.find(' ');
  return r.bytes.substr(a + 1, r.bytes.find(' ', a + 1) - a - 1);
}

TEST(ReplayerKeep, ResponsesAreKeptWholeAndPairedById) {
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
  ReplayOptions opts = optionsFor(server.address());
  Collector c;
  c.install(opts, compare::Part::kMirror);
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());

  ASSERT_TRUE(replayer.submit(job(11, "GET", "/json")));
  ASSERT_TRUE(replayer.submit(job(12, "GET", "/chunked")));
  ASSERT_TRUE(replayer.submit(job(13, "GET", "/continue")));
  ASSERT_TRUE(replayer.submit(job(14, "HEAD", "/head")));
  ASSERT_TRUE(replayer.submit(job(0, "GET", "/untracked")));  // not compared: no report
  ASSERT_TRUE(replayer.submit(job(15, "GET", "/plain")));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 6; }, 5s));
  replayer.stop(1s);

  ASSERT_EQ(c.kept.size(), 5u);
  EXPECT_TRUE(c.missing.empty());
  EXPECT_EQ(c.keptIds.size(), 5u);
  EXPECT_EQ(c.part, compare::Part::kMirror);
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
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(s.keptResponses.load(), 5u);
  EXPECT_EQ(s.missingResponses.load(), 0u);
  EXPECT_EQ(s.responses.load(), 6u);
  const http::ResponseStats& f = replayer.keptResponseStats();
  EXPECT_EQ(f.expected.load(), 5u);
  EXPECT_EQ(f.responses.load(), 5u);
  EXPECT_EQ(f.interim.load(), 1u);
}

TEST(ReplayerKeep, BodiesOverTheLimitAreCutButHashedWhole) {
  const std::string body(5000, 'z');
  TestHttpServer server([&](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, body)}; });
  ReplayOptions opts = optionsFor(server.address());
  opts.responseLimits.maxBodyBytes = 100;
  Collector c;
  c.install(opts, compare::Part::kSecondary);
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(1, "GET", "/big")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 1; }, 5s));
  replayer.stop(1s);
  ASSERT_EQ(c.kept.count(1), 1u);
  EXPECT_EQ(c.part, compare::Part::kSecondary);
  EXPECT_EQ(c.kept[1].body, body.substr(0, 100));
  EXPECT_TRUE(c.kept[1].bodyTruncated);
  EXPECT_EQ(c.kept[1].bodyLength, body.size());
  EXPECT_EQ(c.kept[1].bodyHash, base::fnv1a64(body));
}

TEST(ReplayerKeep, ABodyEndedByCloseIsKept) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", .closeAfter = true};
  });
  ReplayOptions opts = optionsFor(server.address());
  Collector c;
  c.install(opts, compare::Part::kMirror);
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(3, "GET", "/close")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 1; }, 5s));
  replayer.stop(1s);
  ASSERT_EQ(c.kept.count(3), 1u);
  EXPECT_EQ(c.kept[3].body, "until the end");
}

TEST(ReplayerKeep, EveryFailureEndsTheExchangeAsMissingOnce) {
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
  ReplayOptions opts = optionsFor(server.address());
  opts.maxConnections = 4;
  opts.responseTimeout = 300ms;
  opts.maxResponseBytes = 1024;
  Collector c;
  c.install(opts, compare::Part::kMirror);
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(21, "GET", "/reset")));
  ASSERT_TRUE(replayer.submit(job(22, "GET", "/slow")));
  ASSERT_TRUE(replayer.submit(job(23, "GET", "/huge")));
  ASSERT_TRUE(replayer.submit(job(24, "GET", "/fine")));
  ASSERT_TRUE(waitFor([&] { return c.ended() == 4; }, 5s));
  replayer.stop(1s);
  EXPECT_EQ(c.kept.size(), 1u);
  EXPECT_EQ(c.kept.count(24), 1u);
  EXPECT_EQ(c.missing, (std::multiset<uint64_t>{21, 22, 23}));
  const ReplayStats& s = replayer.stats();
  EXPECT_EQ(s.keptResponses.load() + s.missingResponses.load(), 4u);
  EXPECT_EQ(s.submitted.load(), s.outcomes());
}

TEST(ReplayerKeep, DroppedAndRefusedJobsAreReportedMissing) {
  // A refused target: connect errors. Then a full queue and a stopped replayer.
  RefusedPort refused;
  ReplayOptions opts = optionsFor(refused.address());
  opts.queueCapacity = 2;
  opts.backoffInitial = 10s;  // after the first refusal the queue waits
  Collector c;
  c.install(opts, compare::Part::kMirror);
  Replayer replayer(opts);
  ASSERT_TRUE(replayer.start());
  uint64_t id = 1;
  for (; id <= 20; ++id) {
    replayer.submit(job(id, "GET", "/x"));
  }
  replayer.stop(100ms);
  EXPECT_FALSE(replayer.submit(job(id, "GET", "/after-stop")));
  EXPECT_TRUE(c.kept.empty());
  std::set<uint64_t> unique(c.missing.begin(), c.missing.end());
  EXPECT_EQ(c.missing.size(), unique.size()) << "each exchange ends once";
  EXPECT_EQ(unique.size(), 21u) << "every exchange ends";
  const ReplayStats& s = replayer.stats();
  EXPECT_GT(s.queueFull.load(), 0u);
  EXPECT_GT(s.errorsConnect.load(), 0u);
  EXPECT_EQ(s.missingResponses.load(), 21u);
  EXPECT_EQ(s.submitted.load(), s.outcomes());
}

TEST(ReplayerKeep, WithoutCallbacksNothingIsKept) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  Replayer replayer(optionsFor(server.address()));
  ASSERT_TRUE(replayer.start());
  ASSERT_TRUE(replayer.submit(job(5, "GET", "/")));
  ASSERT_TRUE(waitFor([&] { return replayer.stats().responses.load() == 1; }, 5s));
  replayer.stop(1s);
  EXPECT_EQ(replayer.stats().keptResponses.load(), 0u);
  EXPECT_EQ(replayer.keptResponseStats().expected.load(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
