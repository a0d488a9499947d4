// #15's end-to-end test without BPF or root: synthetic TCP segments, cut and
// reordered as a capture delivers them, go into a Worker (reassembly, HTTP/1
// framing, the rule's router) and out through its real mirror pool to a real
// HTTP server on loopback. What reaches the server is the client's bytes with
// the shadow host, in order, and the counters add up.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "base/counters.h"
#include "compare/comparator.h"
#include "compare/compare_engine.h"
#include "compare/pool_observer.h"
#include "h2_test_server.h"
#include "h2_wire.h"
#include "replay/mirror_pool.h"
#include "replay/target.h"
#include "replay/tls_client.h"
#include "rule_runtime.h"
#include "synthetic_segment.h"
#include "test_http_server.h"
#include "worker.h"

namespace shadowtap {
namespace {

using replay::testing::httpResponse;
using replay::testing::ServerAction;
using replay::testing::ServerRequest;
using replay::testing::TestHttpServer;

class WorkerMirrorTest : public ::testing::Test {
 protected:
  WorkerMirrorTest()
      : server_([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "ok")}; }) {
    const std::string target = "127.0.0.1:" + std::to_string(replay::testing::portOf(server_.address()));
    std::string error;
    auto rule = rules::parseRule("port=8000,mirror=" + target, rules::RuleDefaults{}, true, &error);
    EXPECT_TRUE(rule) << error;
    auto set = std::make_shared<RuleSet>();
    set->generation = 1;
    set->perWorker.resize(1);
    runtime_ = std::make_shared<RuleRuntime>(*rule, 1, 0);
    replay::MirrorPoolOptions o;
    o.target = target;
    o.addrs = replay::resolveTarget(target).addrs;
    o.minConnections = o.maxConnections = 2;
    o.localEndpoints = &local_;
    runtime_->mirrors[0].replayer = std::make_unique<replay::MirrorPool>(o);
    EXPECT_TRUE(runtime_->mirrors[0].replayer->start());
    set->perWorker[0].push_back(runtime_);
    snapshot_.publish(set);
    shared_.rules = &snapshot_;
    shared_.rulesMutex = &mutex_;
    shared_.localEndpoints = &local_;
  }
  ~WorkerMirrorTest() override {
    runtime_->mirrors[0].replayer->stop(std::chrono::milliseconds(500));
    server_.stop();
  }

  static flow::Segment segment(uint16_t sport, uint32_t seq, uint8_t flags, std::string_view payload = {}) {
    return testing::syntheticSegment(sport, 8000, 1, seq, flags, payload);
  }


  TestHttpServer server_;
  replay::LocalEndpoints local_;
  RuleSnapshot snapshot_;
  std::mutex mutex_;
  WorkerShared shared_;
  std::shared_ptr<RuleRuntime> runtime_;
};

TEST_F(WorkerMirrorTest, SegmentsOutOfOrderReachTheMirrorAsTheClientSentThemWithTheShadowHost) {
  Worker w(0, shared_);
  // Two keep-alive requests on one connection, the second a POST with a body;
  // the stream is cut in three and the pieces arrive last first.
  const std::string first = "GET /a?x=1 HTTP/1.1\r\nHost: shop.example:8000\r\nUser-Agent: t\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nHost: shop.example:8000\r\nContent-Length: 5\r\n\r\nhello";
  const std::string stream = first + second;
  const uint32_t isn = 4000;
  w.onSegment(segment(40000, isn, flow::kTcpSyn));
  const size_t cut1 = 17, cut2 = first.size() + 9;
  const std::string_view all(stream);
  w.onSegment(segment(40000, isn + 1 + cut2, flow::kTcpAck, all.substr(cut2)));
  w.onSegment(segment(40000, isn + 1 + cut1, flow::kTcpAck, all.substr(cut1, cut2 - cut1)));
  w.onSegment(segment(40000, isn + 1 + cut1, flow::kTcpAck, all.substr(cut1, cut2 - cut1)));  // retransmitted
  w.onSegment(segment(40000, isn + 1, flow::kTcpAck, all.substr(0, cut1)));
  w.onSegment(segment(40000, isn + 1 + static_cast<uint32_t>(stream.size()), flow::kTcpFin | flow::kTcpAck));

  ASSERT_TRUE(server_.waitForRequests(2, std::chrono::seconds(5)));
  std::vector<std::string> got;
  for (const auto& conn : server_.requestsByConnection()) {
    got.insert(got.end(), conn.begin(), conn.end());
  }
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {
      "GET /a?x=1 HTTP/1.1\r\nHost: shop.example-shadow:8000\r\nUser-Agent: t\r\n\r\n",
      "POST /b HTTP/1.1\r\nHost: shop.example-shadow:8000\r\nContent-Length: 5\r\n\r\nhello"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);

  const RuleStats& rs = runtime_->stats;
  EXPECT_EQ(base::load(w.stats().requests), 2u);
  EXPECT_EQ(base::load(rs.requests), 2u);
  EXPECT_EQ(base::load(runtime_->mirrors[0].stats.submitted), 2u);
  EXPECT_EQ(base::load(runtime_->mirrors[0].stats.queued), 2u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (base::load(runtime_->mirrors[0].replayer->stats().responses2xx) < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(base::load(runtime_->mirrors[0].replayer->stats().sent), 2u);
  EXPECT_EQ(base::load(runtime_->mirrors[0].replayer->stats().responses2xx), 2u);
  EXPECT_EQ(base::load(w.stats().segments), 6u) << "every segment is counted, the retransmission too";
}

TEST_F(WorkerMirrorTest, AGarbageStreamIsCountedAndNothingReachesTheMirror) {
  Worker w(0, shared_);
  const std::string junk = std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(200, '\xee');
  w.onSegment(segment(40001, 10, flow::kTcpSyn));
  w.onSegment(segment(40001, 11, flow::kTcpAck, junk));
  w.onSegment(segment(40001, 11 + static_cast<uint32_t>(junk.size()), flow::kTcpFin | flow::kTcpAck));
  // A good request on another connection afterwards still goes through.
  const std::string ok = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  w.onSegment(segment(40002, 50, flow::kTcpSyn));
  w.onSegment(segment(40002, 51, flow::kTcpAck, ok));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(5)));
  EXPECT_EQ(server_.requestCount(), 1u);
  EXPECT_EQ(server_.requestsByConnection().front().front(), "GET / HTTP/1.1\r\nHost: h-shadow\r\n\r\n");
  EXPECT_EQ(base::load(runtime_->stats.requests), 1u);
  EXPECT_GT(base::load(w.framers().stats().unmirroredBytes), 0u) << "the garbage's bytes are counted as not mirrored";
}

// What a Worker needs to run one rule (its runtime, with the pools the test
// gave it), without a pipeline.
struct OneRuleWorld {
  explicit OneRuleWorld(std::shared_ptr<RuleRuntime> rt) {
    auto set = std::make_shared<RuleSet>();
    set->generation = 1;
    set->perWorker.resize(1);
    set->perWorker[0].push_back(std::move(rt));
    snapshot.publish(set);
    shared.rules = &snapshot;
    shared.rulesMutex = &mutex;
    shared.localEndpoints = &local;
  }
  // Each mirror's HTTP/1 pool, 2 connections, to its target; false when one cannot start.
  bool startHttp1Pools(RuleRuntime& rt) {
    for (MirrorRuntime& m : rt.mirrors) {
      replay::MirrorPoolOptions o;
      o.target = m.spec.target;
      o.addrs = replay::resolveTarget(o.target).addrs;
      o.minConnections = o.maxConnections = 2;
      o.localEndpoints = &local;
      m.replayer = std::make_unique<replay::MirrorPool>(o);
      if (!m.replayer->start()) {
        return false;
      }
    }
    return true;
  }
  RuleSnapshot snapshot;
  std::mutex mutex;
  replay::LocalEndpoints local;
  WorkerShared shared;
};

// A client's HTTP/2 connection (port `sport`) with one GET, captured whole and
// fed to `w`; then up to `wait` for each of `servers` to have one request.
void sendOneH2Get(Worker& w, uint16_t sport, const std::string& scheme, const std::string& authority,
                  const std::string& path, std::vector<h2::test::H2TestServer*> servers,
                  std::chrono::seconds wait = std::chrono::seconds(10)) {
  h2::test::WireClient client;
  client.submit({.headers = {{":method", "GET", false}, {":scheme", scheme, false}, {":authority", authority, false},
                             {":path", path, false}}});
  client.pump();
  w.onSegment(testing::syntheticSegment(sport, 8000, 1, 70, flow::kTcpSyn));
  w.onSegment(testing::syntheticSegment(sport, 8000, 1, 71, flow::kTcpAck, client.captured()));
  const auto deadline = std::chrono::steady_clock::now() + wait;
  const auto allHaveOne = [&] {
    return std::all_of(servers.begin(), servers.end(), [](auto* s) { return s->requestCount() >= 1; });
  };
  while (!allHaveOne() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}


// #19: a request over the whole-request limit is streamed through the worker
// to the mirror: byte-identical except the host, with Content-Length and
// chunked, in capture-sized segments.
class WorkerStreamTest : public WorkerMirrorTest {
 protected:
  WorkerStreamTest() {
    shared_.framerLimits.maxRequestBytes = 64 << 10;
    // A window larger than the bodies: the test feeds segments faster than any
    // capture, and must not depend on the mirror keeping up.
    shared_.framerLimits.streamWindowBytes = 8 << 20;
    shared_.flowLimits.maxFlowBufferBytes = 256 << 10;
  }
  // Sends `stream` on connection `sport` in segments of `mss`, leaving out the
  // segments that overlap [holeFrom, holeTo) (a capture that lost them).
  static void send(Worker& w, uint16_t sport, const std::string& stream, size_t mss, size_t holeFrom = SIZE_MAX,
                   size_t holeTo = SIZE_MAX, bool syn = true) {
    const uint32_t isn = 1000;
    if (syn) {
      w.onSegment(segment(sport, isn, flow::kTcpSyn));
    }
    for (size_t off = 0; off < stream.size(); off += mss) {
      const size_t n = std::min(mss, stream.size() - off);
      if (off + n > holeFrom && off < holeTo) {
        continue;
      }
      w.onSegment(segment(sport, isn + 1 + static_cast<uint32_t>(off), flow::kTcpAck,
                          std::string_view(stream).substr(off, n)));
    }
  }
  static std::string body(size_t n) {
    std::string b(n, 0);
    for (size_t i = 0; i < n; ++i) {
      b[i] = static_cast<char>('a' + (i * 31 + i / 977) % 26);
    }
    return b;
  }
};

TEST_F(WorkerStreamTest, ContentLengthAndChunkedUploadsArriveByteIdenticalExceptTheHost) {
  Worker w(0, shared_);
  const std::string data = body(4 << 20);
  const std::string cl = "PUT /up HTTP/1.1\r\nHost: shop.example:8000\r\nContent-Length: " +
                         std::to_string(data.size()) + "\r\n\r\n" + data;
  std::string chunked = "POST /c HTTP/1.1\r\nHost: shop.example:8000\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t off = 0; off < data.size(); off += 40000) {
    const size_t n = std::min<size_t>(40000, data.size() - off);
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", n);
    chunked += std::string(size) + "\r\n" + data.substr(off, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  send(w, 41000, cl, 1448);
  send(w, 41001, chunked, 16384);
  ASSERT_TRUE(server_.waitForRequests(2, std::chrono::seconds(20)));
  std::vector<std::string> got;
  for (const auto& conn : server_.requestsByConnection()) {
    got.insert(got.end(), conn.begin(), conn.end());
  }
  ASSERT_EQ(got.size(), 2u);
  std::sort(got.begin(), got.end());
  auto shadow = [](std::string r) { return r.replace(r.find("shop.example"), 12, "shop.example-shadow"); };
  std::vector<std::string> want = {shadow(cl), shadow(chunked)};
  std::sort(want.begin(), want.end());
  EXPECT_TRUE(got == want) << "the mirror got other bytes than the client sent (sizes " << got[0].size() << ", "
                           << got[1].size() << ")";
  const http::HttpStats& hs = w.framers().stats();
  EXPECT_EQ(base::load(hs.requestsStreamed), 2u);
  EXPECT_EQ(base::load(hs.streamsCompleted), 2u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (base::load(runtime_->mirrors[0].replayer->stats().responses2xx) < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(base::load(runtime_->mirrors[0].replayer->stats().streamsSent), 2u);
  EXPECT_EQ(base::load(runtime_->mirrors[0].replayer->stats().responses2xx), 2u);
}

// A capture gap inside the body: the mirror's connection closes mid-request (it
// never frames a complete one), the request is counted aborted_gap, and the
// next upload goes through.
TEST_F(WorkerStreamTest, AGapInsideTheBodyAbortsTheMirrorRequest) {
  Worker w(0, shared_);
  const std::string data = body(2 << 20);
  const std::string head = "POST /up HTTP/1.1\r\nHost: shop.example\r\nContent-Length: " + std::to_string(data.size()) +
                           "\r\n\r\n";
  const std::string cl = head + data;
  // The first MiB (whole segments of 1000 bytes) reaches the mirror; then a
  // hole of 3000 bytes, and the bytes after it pass the flow's buffer limit, so
  // the hole is given up as a gap.
  const size_t before = (1u << 20) / 1000 * 1000;
  send(w, 41010, cl, 1000, before, SIZE_MAX);
  const size_t sentBefore = before + 7;  // with "-shadow"
  const replay::MirrorStats& ms = runtime_->mirrors[0].replayer->stats();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (base::load(ms.bytesSent) < sentBefore && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(base::load(ms.bytesSent), sentBefore) << "the head and the bytes before the hole went out";
  send(w, 41010, cl, 1000, 0, before + 3000, false);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (base::load(ms.abortedGap) < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(base::load(ms.abortedGap), 1u);
  EXPECT_EQ(base::load(w.framers().stats().streamsAbortedGap), 1u);
  EXPECT_EQ(server_.requestCount(), 0u) << "the mirror never saw a complete request";
  EXPECT_TRUE(server_.waitForRequests(0, std::chrono::seconds(1)));
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server_.partialBytes() < sentBefore && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the server counts them when the connection closes
  }
  EXPECT_EQ(server_.partialBytes(), sentBefore) << "the connection closed inside the body, nothing after the gap sent";
  const std::string next = "GET /after HTTP/1.1\r\nHost: shop.example\r\n\r\n";
  send(w, 41011, next, 1000);
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(5)));
  EXPECT_EQ(server_.requestsByConnection().back().back(), "GET /after HTTP/1.1\r\nHost: shop.example-shadow\r\n\r\n");
}

// tls=true: an HTTP/2 request of such a rule goes to the mirror as HTTP/2
// over TLS (ALPN h2), with the shadow authority; never in cleartext h2c.
TEST(WorkerTls, AnHttp2RequestOfATlsRuleGoesOverTlsWithAlpnH2) {
  const h2::test::ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const h2::test::TlsFiles files = h2::test::TlsFiles::selfSigned(dir.path(), "mirror.test");
  ASSERT_FALSE(files.cert.empty()) << "the openssl command is needed";
  h2::test::H2TestServer mirror(100, 100, files);
  const std::string target = "127.0.0.1:" + std::to_string(mirror.port());
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=" + target + ",tls=true,tls-ca=" + files.cert +
                                   ",host=mirror.test:" + std::to_string(mirror.port()),
                               rules::RuleDefaults{}, true, &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  OneRuleWorld world(rt);
  MirrorRuntime& m = rt->mirrors[0];
  replay::MirrorPoolOptions o;  // the rule's HTTP/1 pool, whose settings (TLS too) the HTTP/2 pool takes
  o.target = target;
  o.addrs = m.addrs = replay::resolveTarget(o.target).addrs;
  o.minConnections = o.maxConnections = 1;
  o.localEndpoints = &world.local;
  o.tls = replay::TlsClientConfig::make(true, files.cert, "mirror.test", &error);
  ASSERT_TRUE(o.tls) << error;
  m.replayer = std::make_unique<replay::MirrorPool>(o);
  Worker w(0, world.shared);

  sendOneH2Get(w, 40010, "https", "shop.example", "/secure", {&mirror});
  ASSERT_EQ(mirror.requestCount(), 1u);
  EXPECT_EQ(mirror.requests()[0].authority(), "mirror.test:" + std::to_string(mirror.port()));
  EXPECT_EQ(mirror.requests()[0].target(), "/secure");
  const auto handshakes = mirror.handshakes();
  ASSERT_EQ(handshakes.size(), 1u);
  EXPECT_EQ(handshakes[0].alpn, "h2");
  EXPECT_EQ(handshakes[0].sni, "mirror.test");
  EXPECT_EQ(base::load(m.stats.queued), 1u);
  EXPECT_EQ(base::load(m.stats.dropped), 0u);
  ASSERT_NE(m.h2Pool, nullptr);
  m.h2Pool->stop(std::chrono::milliseconds(500));
}

// Compare mode's secondary with tls=true of its own: the worker's HTTP/2 pool
// to it takes the HTTP/1 secondary pool's TLS (ALPN h2; given by address, its
// certificate names the address), while the mirror stays h2c.
TEST(WorkerTls, AnHttp2RequestReachesATlsSecondaryOverTlsWithAlpnH2) {
  const h2::test::ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const h2::test::TlsFiles files = h2::test::TlsFiles::selfSigned(dir.path(), "secondary", "IP:127.0.0.1");
  ASSERT_FALSE(files.cert.empty()) << "the openssl command is needed";
  h2::test::H2TestServer mirror;
  h2::test::H2TestServer secondary(100, 100, files);
  const std::string mirrorTarget = "127.0.0.1:" + std::to_string(mirror.port());
  const std::string secondaryTarget = "127.0.0.1:" + std::to_string(secondary.port());
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=" + mirrorTarget + ",compare=true,secondary=" + secondaryTarget +
                                   ";tls=true;tls-ca=" + files.cert,
                               rules::RuleDefaults{}, true, &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  rt->compared = true;
  OneRuleWorld world(rt);
  std::vector<std::unique_ptr<compare::Comparator>> comparators;
  comparators.push_back(compare::Comparator::create({}, &error));
  compare::CompareEngine engine(compare::EngineOptions{}, std::move(comparators), nullptr);
  compare::PoolObserver mirrorObserver(engine, compare::Part::kMirror);
  compare::PoolObserver secondaryObserver(engine, compare::Part::kSecondary);
  world.shared.engine = &engine;
  world.shared.mirrorObserver = &mirrorObserver;
  world.shared.secondaryObserver = &secondaryObserver;
  MirrorRuntime& m = rt->mirrors[0];
  replay::MirrorPoolOptions o;  // the HTTP/1 pools, whose settings the HTTP/2 pools take
  o.target = mirrorTarget;
  o.addrs = m.addrs = replay::resolveTarget(o.target).addrs;
  o.minConnections = o.maxConnections = 1;
  o.localEndpoints = &world.local;
  m.replayer = std::make_unique<replay::MirrorPool>(o);
  o.target = secondaryTarget;
  o.addrs = rt->secondaryAddrs = replay::resolveTarget(o.target).addrs;
  o.tls = replay::TlsClientConfig::make(true, files.cert, replay::tlsPeer("", secondaryTarget), &error);
  ASSERT_TRUE(o.tls) << error;
  rt->secondary = std::make_unique<replay::MirrorPool>(o);
  Worker w(0, world.shared);

  sendOneH2Get(w, 40020, "http", "shop.example", "/compared", {&mirror, &secondary});
  ASSERT_EQ(mirror.requestCount(), 1u);
  ASSERT_EQ(secondary.requestCount(), 1u);
  EXPECT_EQ(secondary.requests()[0].target(), "/compared");
  EXPECT_EQ(secondary.requests()[0].header(":scheme"), "https");
  EXPECT_EQ(mirror.requests()[0].header(":scheme"), "http");
  const auto handshakes = secondary.handshakes();
  ASSERT_EQ(handshakes.size(), 1u);
  EXPECT_EQ(handshakes[0].alpn, "h2");
  EXPECT_TRUE(mirror.handshakes().empty()) << "the mirror is h2c";
  ASSERT_NE(rt->h2SecondaryPool, nullptr);
  ASSERT_NE(m.h2Pool, nullptr);
  rt->h2SecondaryPool->stop(std::chrono::milliseconds(500));
  m.h2Pool->stop(std::chrono::milliseconds(500));
  w.shutdownFlows();
}

// Issue 19: one request to two shadows. A rule with two mirrors, the second
// with its own host mode and a 50 % share of the requests: every request
// reaches the first with the shadow host, half of them reach the second with
// the host kept, each mirror's pool counts its own, and for each mirror the
// rule's requests add up (submitted + sampled out).
TEST(WorkerMirrors, OneRequestGoesToTwoShadowsEachDecidingOnItsOwn) {
  const auto ok = [](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "ok")}; };
  TestHttpServer first(ok), second(ok);
  const std::string a = "127.0.0.1:" + std::to_string(replay::testing::portOf(first.address()));
  const std::string b = "127.0.0.1:" + std::to_string(replay::testing::portOf(second.address()));
  std::string error;
  auto rule = rules::parseRule("port=8000,sample=request,mirror=" + a + ",mirror=" + b + ";percentage=50;host=keep",
                               rules::RuleDefaults{}, false, &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  OneRuleWorld world(rt);
  ASSERT_TRUE(world.startHttp1Pools(*rt));
  Worker w(0, world.shared);

  std::string stream;
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    stream += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: shop.example:8000\r\n\r\n";
  }
  w.onSegment(testing::syntheticSegment(40020, 8000, 1, 500, flow::kTcpSyn));
  w.onSegment(testing::syntheticSegment(40020, 8000, 1, 501, flow::kTcpAck, stream));
  ASSERT_TRUE(first.waitForRequests(n, std::chrono::seconds(5)));
  ASSERT_TRUE(second.waitForRequests(n / 2 - 1, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // nothing more arrives
  const auto all = [](TestHttpServer& server) {
    std::vector<std::string> got;
    for (const auto& conn : server.requestsByConnection()) {
      got.insert(got.end(), conn.begin(), conn.end());
    }
    return got;
  };
  const std::vector<std::string> atFirst = all(first), atSecond = all(second);
  EXPECT_EQ(atFirst.size(), static_cast<size_t>(n));
  EXPECT_NEAR(static_cast<double>(atSecond.size()), n / 2.0, 1.0) << "sample=request: its share, within one";
  for (const std::string& r : atFirst) {
    EXPECT_NE(r.find("\r\nHost: shop.example-shadow:8000\r\n"), std::string::npos) << r;
  }
  for (const std::string& r : atSecond) {
    EXPECT_NE(r.find("\r\nHost: shop.example:8000\r\n"), std::string::npos) << r;
  }
  const MirrorCounters& ca = rt->mirrors[0].stats;
  const MirrorCounters& cb = rt->mirrors[1].stats;
  EXPECT_EQ(base::load(rt->stats.requests), static_cast<uint64_t>(n));
  EXPECT_EQ(base::load(ca.submitted) + base::load(ca.sampledOut), static_cast<uint64_t>(n));
  EXPECT_EQ(base::load(cb.submitted) + base::load(cb.sampledOut), static_cast<uint64_t>(n));
  EXPECT_EQ(base::load(ca.queued), atFirst.size());
  EXPECT_EQ(base::load(cb.queued), atSecond.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (base::load(rt->mirrors[1].replayer->stats().responses2xx) < atSecond.size() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(base::load(rt->mirrors[0].replayer->stats().sent), atFirst.size());
  EXPECT_EQ(base::load(rt->mirrors[1].replayer->stats().responses2xx), atSecond.size());
  for (MirrorRuntime& m : rt->mirrors) {
    m.replayer->stop(std::chrono::milliseconds(500));
  }
  first.stop();
  second.stop();
}

// A streamed request (over the whole-request limit) has one reader for its
// body: with two mirrors taking every request, the upload goes whole to the
// first and is counted as streamed_elsewhere for the second, while a small
// request on the same connection still goes to both.
TEST(WorkerMirrors, AStreamedUploadGoesToTheFirstMirrorOnlyAndIsCountedForTheOthers) {
  const auto ok = [](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "ok")}; };
  TestHttpServer first(ok), second(ok);
  const std::string a = "127.0.0.1:" + std::to_string(replay::testing::portOf(first.address()));
  const std::string b = "127.0.0.1:" + std::to_string(replay::testing::portOf(second.address()));
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=" + a + ",mirror=" + b + ";host=keep", rules::RuleDefaults{}, false,
                               &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  OneRuleWorld world(rt);
  world.shared.framerLimits.maxRequestBytes = 64 << 10;
  world.shared.framerLimits.streamWindowBytes = 8 << 20;
  world.shared.flowLimits.maxFlowBufferBytes = 256 << 10;
  ASSERT_TRUE(world.startHttp1Pools(*rt));
  Worker w(0, world.shared);
  const std::string body(200 << 10, 'u');
  const std::string stream = "PUT /big HTTP/1.1\r\nHost: shop.example\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body +
                             "GET /small HTTP/1.1\r\nHost: shop.example\r\n\r\n";
  w.onSegment(testing::syntheticSegment(40030, 8000, 1, 900, flow::kTcpSyn));
  for (size_t off = 0; off < stream.size(); off += 1448) {
    w.onSegment(testing::syntheticSegment(40030, 8000, 1, 901 + static_cast<uint32_t>(off), flow::kTcpAck,
                                          std::string_view(stream).substr(off, 1448)));
  }
  ASSERT_TRUE(first.waitForRequests(2, std::chrono::seconds(5)));
  ASSERT_TRUE(second.waitForRequests(1, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // nothing more arrives
  ASSERT_EQ(first.requestCount(), 2u);
  ASSERT_EQ(second.requestCount(), 1u);
  const std::string small = "GET /small HTTP/1.1\r\nHost: shop.example\r\n\r\n";
  const std::string bigShadowed = "PUT /big HTTP/1.1\r\nHost: shop.example-shadow\r\nContent-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t bigAtFirst = 0;
  for (const auto& conn : first.requestsByConnection()) {
    bigAtFirst += static_cast<size_t>(std::count(conn.begin(), conn.end(), bigShadowed));
  }
  EXPECT_EQ(bigAtFirst, 1u) << "the upload reached the first mirror whole, with the shadow host";
  EXPECT_EQ(second.requestsByConnection().front().front(), small);
  EXPECT_EQ(base::load(rt->mirrors[0].stats.submitted), 2u);
  EXPECT_EQ(base::load(rt->mirrors[1].stats.submitted), 1u);
  EXPECT_EQ(base::load(rt->mirrors[1].stats.streamedElsewhere), 1u);
  EXPECT_EQ(base::load(rt->mirrors[0].stats.streamedElsewhere), 0u);
  for (MirrorRuntime& m : rt->mirrors) {
    m.replayer->stop(std::chrono::milliseconds(500));
  }
  first.stop();
  second.stop();
}

// The same for HTTP/2: one request stream goes to two h2c shadows, each with
// its own :authority (suffix, and the host kept), each on its own pool.
TEST(WorkerMirrors, AnHttp2RequestGoesToTwoShadowsWithTheirOwnAuthority) {
  h2::test::H2TestServer first, second;
  const std::string a = "127.0.0.1:" + std::to_string(first.port());
  const std::string b = "127.0.0.1:" + std::to_string(second.port());
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=" + a + ",mirror=" + b + ";host=keep", rules::RuleDefaults{}, false,
                               &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  OneRuleWorld world(rt);
  for (MirrorRuntime& m : rt->mirrors) {
    replay::MirrorPoolOptions o;  // the HTTP/1 pool, whose settings the h2c pool takes
    o.target = m.spec.target;
    o.addrs = m.addrs = replay::resolveTarget(o.target).addrs;
    o.minConnections = o.maxConnections = 1;
    o.localEndpoints = &world.local;
    m.replayer = std::make_unique<replay::MirrorPool>(o);
  }
  Worker w(0, world.shared);
  sendOneH2Get(w, 40030, "http", "shop.example:8000", "/two", {&first, &second}, std::chrono::seconds(5));
  ASSERT_EQ(first.requestCount(), 1u);
  ASSERT_EQ(second.requestCount(), 1u);
  EXPECT_EQ(first.requests()[0].authority(), "shop.example-shadow:8000");
  EXPECT_EQ(second.requests()[0].authority(), "shop.example:8000");
  EXPECT_EQ(first.requests()[0].target(), "/two");
  for (MirrorRuntime& m : rt->mirrors) {
    EXPECT_EQ(base::load(m.stats.submitted), 1u);
    EXPECT_EQ(base::load(m.stats.queued), 1u);
    ASSERT_NE(m.h2Pool, nullptr) << "each mirror has its own h2c pool";
    m.h2Pool->stop(std::chrono::milliseconds(500));
  }
}

}  // namespace
}  // namespace shadowtap
