// Compare mode of the mirror pool with h2c connections: every request with an
// exchange id ends in exactly one onResponse or onMissing call of the
// observer, whatever happens to it.

#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "model/response.h"
#include "replay/mirror_pool.h"
#include "h2_test_server.h"
#include "pool_test_util.h"

namespace shadowtap::replay {
namespace {

namespace test = h2::test;
using namespace testing;

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}


model::Request exchange(uint64_t id, const std::string& path, std::vector<model::HeaderField> extra = {}) {
  model::Request r;
  r.exchangeId = id;
  r.headers = {{":method", "GET", false}, {":scheme", "http", false}, {":authority", "svc-shadow:80", false},
               {":path", path, false}};
  for (auto& f : extra) {
    r.headers.push_back(std::move(f));
  }
  r.finishHttp2();
  return r;
}

// Records what the observer is told; it is called on the pool's loop thread
// and on the submitting / stopping thread.
class Recorder final : public ResponseObserver {
 public:
  void attach(MirrorPoolOptions& o) { o.observer = this; }
  void onResponse(uint64_t id, model::Response&& r) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++kept_[id];
    responses_[id] = std::move(r);
  }
  void onMissing(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++missing_[id];
  }
  size_t calls() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const auto& [id, c] : kept_) {
      n += static_cast<size_t>(c);
    }
    for (const auto& [id, c] : missing_) {
      n += static_cast<size_t>(c);
    }
    return n;
  }
  std::set<uint64_t> missing() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::set<uint64_t> out;
    for (const auto& [id, c] : missing_) {
      out.insert(id);
    }
    return out;
  }
  model::Response response(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return responses_.at(id);
  }
  // Each id in kept or missing ended in exactly one call, of that kind, and
  // nothing else was reported.
  void expectExactly(const std::set<uint64_t>& kept, const std::set<uint64_t>& missing) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::set<uint64_t> gotKept;
    for (const auto& [id, c] : kept_) {
      EXPECT_EQ(c, 1) << "kept " << id;
      gotKept.insert(id);
    }
    std::set<uint64_t> gotMissing;
    for (const auto& [id, c] : missing_) {
      EXPECT_EQ(c, 1) << "missing " << id;
      gotMissing.insert(id);
    }
    EXPECT_EQ(gotKept, kept);
    EXPECT_EQ(gotMissing, missing);
  }

 private:
  std::mutex mutex_;
  std::map<uint64_t, int> kept_;
  std::map<uint64_t, int> missing_;
  std::map<uint64_t, model::Response> responses_;
};

std::vector<std::pair<std::string, std::string>> fields(const model::Response& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : r.headers) {
    out.emplace_back(h.name, h.value);
  }
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

void expectAddsUp(const MirrorStats& s) {
  EXPECT_EQ(s.submitted.load(), s.outcomes());
  EXPECT_EQ(s.inFlight.load(), 0);
  EXPECT_EQ(s.queueDepth.load(), 0);
}

TEST(MirrorPoolH2Compare, KeptResponsesCarryStatusHeadersBodyAndTrailers) {
  test::H2TestServer server;
  Recorder rec;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.responseLimits.maxBodyBytes = 1000;
  rec.attach(o);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const uint64_t t0 = monotonicNs();
  pool.submit(exchange(1, "/full", {{"x-respond-status", "404", false},
                                    {"x-respond-header", "x-a=1", false},
                                    {"x-respond-header", "content-type=text/plain", false},
                                    {"x-respond-header", "x-a=again", false},
                                    {"x-respond-body-size", "700", false},
                                    {"x-respond-grpc", "0", false},
                                    {"x-respond-trailer", "x-t=end", false}}));
  pool.submit(exchange(2, "/interim", {{"x-respond-interim", "1", false}, {"x-respond-header", "x-final=yes", false}}));
  pool.submit(exchange(3, "/large", {{"x-respond-body-size", "300000", false}}));
  pool.submit(exchange(4, "/empty", {{"x-respond-body-size", "0", false}, {"x-respond-status", "204", false}}));
  pool.submit(exchange(0, "/not-compared"));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 5; }));
  const uint64_t t1 = monotonicNs();
  pool.stop(std::chrono::milliseconds(1000));
  rec.expectExactly({1, 2, 3, 4}, {});

  const model::Response full = rec.response(1);
  EXPECT_EQ(full.status, 404);
  EXPECT_EQ(fields(full), (Fields{{"x-a", "1"},
                                  {"content-type", "text/plain"},
                                  {"x-a", "again"},
                                  {"grpc-status", "0"},  // trailers after the regular fields
                                  {"x-t", "end"}}));
  EXPECT_FALSE(full.headersTruncated);
  EXPECT_EQ(full.body, test::H2TestServer::bodyPattern(700));
  EXPECT_FALSE(full.bodyTruncated);
  EXPECT_EQ(full.bodyLength, 700u);
  EXPECT_EQ(full.bodyHash, base::fnv1a64(test::H2TestServer::bodyPattern(700)));
  EXPECT_GE(full.tsNs, t0);
  EXPECT_LE(full.tsNs, t1);

  const model::Response interim = rec.response(2);
  EXPECT_EQ(interim.status, 200);
  EXPECT_EQ(fields(interim), (Fields{{"x-final", "yes"}}));  // the 103's fields are not the response's
  EXPECT_EQ(interim.body, std::string(100, 'r'));

  const model::Response large = rec.response(3);
  EXPECT_EQ(large.status, 200);
  EXPECT_TRUE(large.bodyTruncated);
  EXPECT_EQ(large.body, test::H2TestServer::bodyPattern(300000).substr(0, 1000));
  EXPECT_EQ(large.bodyLength, 300000u);
  EXPECT_EQ(large.bodyHash, base::fnv1a64(test::H2TestServer::bodyPattern(300000)));

  const model::Response empty = rec.response(4);
  EXPECT_EQ(empty.status, 204);
  EXPECT_EQ(empty.bodyLength, 0u);
  EXPECT_EQ(empty.bodyHash, base::kFnv1aSeed);

  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.keptResponses.load(), 4u);
  EXPECT_EQ(s.missingResponses.load(), 0u);
  EXPECT_EQ(s.keptBodiesTruncated.load(), 1u);
  EXPECT_EQ(s.keptHeadersTruncated.load(), 0u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2Compare, HeaderLimitTruncatesAndTrailersCanBeLeftOut) {
  test::H2TestServer server;
  Recorder rec;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  // Each field costs name + value + compare::kH2FieldOverhead (32), as in the primary's decoder.
  o.responseLimits.maxHeaderBytes = 76;
  o.keepTrailers = false;
  rec.attach(o);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  pool.submit(exchange(1, "/h", {{"x-respond-header", "x-a=1", false},                    // 36 bytes
                                 {"x-respond-header", "x-b=" + std::string(20, 'v'), false},  // 55: over
                                 {"x-respond-header", "x-c=3", false}}));                   // after the cut
  pool.submit(exchange(2, "/t", {{"x-respond-header", "x-a=1", false}, {"x-respond-trailer", "x-t=end", false}}));
  ASSERT_TRUE(waitFor([&] { return rec.calls() == 2; }));
  pool.stop(std::chrono::milliseconds(1000));
  rec.expectExactly({1, 2}, {});
  const model::Response cut = rec.response(1);
  EXPECT_TRUE(cut.headersTruncated);
  EXPECT_EQ(fields(cut), (Fields{{"x-a", "1"}}));
  const model::Response noTrailers = rec.response(2);
  EXPECT_FALSE(noTrailers.headersTruncated);
  EXPECT_EQ(fields(noTrailers), (Fields{{"x-a", "1"}}));
  EXPECT_EQ(pool.stats().keptHeadersTruncated.load(), 1u);
  expectAddsUp(pool.stats());
}

TEST(MirrorPoolH2Compare, MissingOnceForResetTimeoutRejectedAndShutdown) {
  test::H2TestServer server;
  Recorder rec;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 1;
  o.responseTimeout = std::chrono::milliseconds(300);
  rec.attach(o);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  pool.submit(exchange(10, "/reset", {{"x-respond-reset", "1", false}}));
  pool.submit(exchange(11, "/never", {{"x-respond-never", "1", false}}));
  model::Request bad = exchange(12, "/bad");
  bad.headers.erase(bad.headers.begin());  // no :method: never sent as is
  pool.submit(std::move(bad));
  pool.submit(exchange(13, "/ok"));
  pool.submit(exchange(0, "/reset-uncompared", {{"x-respond-reset", "1", false}}));
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 5; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_FALSE(pool.submit(exchange(14, "/after-stop")));
  rec.expectExactly({13}, {10, 11, 12, 14});
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.errorsReset.load() + s.errorsRejected.load(), 3u);  // /bad: refused by nghttp2 or reset by the server
  EXPECT_EQ(s.errorsResponseTimeout.load(), 1u);
  EXPECT_EQ(s.droppedShutdown.load(), 1u);
  EXPECT_EQ(s.keptResponses.load(), 1u);
  EXPECT_EQ(s.missingResponses.load(), 4u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2Compare, MissingOnceWhenPushedOutCutOffOrStopped) {
  test::H2TestServer server;
  Recorder rec;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 1;
  o.maxConcurrentStreams = 2;  // two hanging requests fill the connection
  o.responseTimeout = std::chrono::milliseconds(120'000);
  o.queueCapacity = 2;
  o.dropPolicy = DropPolicy::kOldest;
  rec.attach(o);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const MirrorStats& s = pool.stats();
  auto stall = [&](uint64_t first, uint64_t second) {
    const size_t before = server.requestCount();
    ASSERT_TRUE(pool.submit(exchange(first, "/hang", {{"x-respond-never", "1", false}})));
    ASSERT_TRUE(waitFor([&] { return server.requestCount() == before + 1; }));
    ASSERT_TRUE(pool.submit(exchange(second, "/hang", {{"x-respond-never", "1", false}})));
    ASSERT_TRUE(waitFor([&] { return s.queueDepth.load() == 0 && s.inFlight.load() == 2; }));
  };
  stall(1, 2);
  for (uint64_t id = 3; id <= 7; ++id) {
    ASSERT_TRUE(pool.submit(exchange(id, "/q")));
  }
  EXPECT_EQ(rec.missing(), (std::set<uint64_t>{3, 4, 5}));  // reported on the submitting thread, at once
  server.dropConnections();                                  // 1 and 2 fail with their connection
  ASSERT_TRUE(waitFor([&] { return s.keptResponses.load() == 2; }));
  stall(8, 9);
  ASSERT_TRUE(pool.submit(exchange(10, "/q")));
  ASSERT_TRUE(pool.submit(exchange(11, "/q")));
  pool.stop(std::chrono::milliseconds(0));  // 8, 9 in flight and 10, 11 queued: all dropped
  rec.expectExactly({6, 7}, {1, 2, 3, 4, 5, 8, 9, 10, 11});
  EXPECT_EQ(s.droppedOldest.load(), 3u);
  EXPECT_EQ(s.errorsConnection.load(), 2u);
  EXPECT_EQ(s.droppedShutdown.load(), 4u);
  EXPECT_EQ(s.missingResponses.load(), 9u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2Compare, MissingOnceWhenRateLimitedOversizedOrUnreachable) {
  sockaddr_storage dead;
  {
    test::H2TestServer gone;
    dead = gone.address();
  }
  Recorder rec;
  MirrorPoolOptions o = h2Options();
  o.addrs = {dead};
  o.maxRps = 20;  // one every 50 ms, burst of two
  o.queueBytes = 500;
  rec.attach(o);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const auto t0 = std::chrono::steady_clock::now();
  model::Request big = exchange(1, "/big");
  big.body = std::string(1000, 'b');
  EXPECT_FALSE(pool.submit(std::move(big)));  // admitted by the rate, too large for the queue
  EXPECT_TRUE(pool.submit(exchange(2, "/small")));  // admitted, queued, its connect is refused
  for (uint64_t id = 3; id <= 6; ++id) {
    pool.submit(exchange(id, "/small"));  // beyond the burst
  }
  const bool quick = std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50);
  ASSERT_TRUE(waitFor([&] { return rec.calls() == 6; }));
  pool.stop(std::chrono::milliseconds(500));
  rec.expectExactly({}, {1, 2, 3, 4, 5, 6});
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.queueFull.load(), 1u);
  if (quick) {
    EXPECT_EQ(s.droppedRateLimit.load(), 4u);
    EXPECT_EQ(s.errorsConnect.load(), 1u);
  }
  EXPECT_EQ(s.droppedRateLimit.load() + s.errorsConnect.load() + s.droppedShutdown.load(), 5u);
  EXPECT_EQ(s.missingResponses.load(), 6u);
  EXPECT_EQ(s.keptResponses.load(), 0u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2Compare, NothingReportedWithoutCallbacks) {
  test::H2TestServer server;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  pool.submit(exchange(1, "/a"));
  pool.submit(exchange(2, "/b", {{"x-respond-reset", "1", false}}));
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 2; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_EQ(pool.stats().keptResponses.load(), 0u);
  EXPECT_EQ(pool.stats().missingResponses.load(), 0u);
  expectAddsUp(pool.stats());
}

}  // namespace
}  // namespace shadowtap::replay
