// The h2c connection kind on its own, driven by a poll() loop: what the server
// receives, stream limits, outcomes, keeping responses.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <map>

#include "base/strings.h"
#include "h2/request_edit.h"
#include "h2_test_server.h"
#include "pool_test_util.h"
#include "base/clock.h"
#include "replay/connection.h"

namespace shadowtap::replay {
namespace {

using h2::rewriteAuthority;
namespace test = h2::test;
using testing::drive;
using testing::openConnection;
using testing::OpenedConnection;

uint64_t nowNs() { return base::monotonicNs(); }

// What the connection reports, by exchange id (each test request has its own).
class Endings final : public ConnectionEvents {
 public:
  void onEnded(Ending& e) override {
    ++calls[e.exchangeId];
    got[e.exchangeId] = e;
    got[e.exchangeId].kept = nullptr;
    hadResponse[e.exchangeId] = e.kept != nullptr;
    if (e.kept != nullptr) {
      kept[e.exchangeId] = std::move(*e.kept);
    }
    if (each) {
      each(e);
    }
  }
  void onBytes(uint64_t sent, uint64_t received) override {
    bytesSent += sent;
    bytesReceived += received;
  }
  void onRequestWritten() override {}

  std::map<uint64_t, Ending> got;
  std::map<uint64_t, int> calls;
  std::map<uint64_t, bool> hadResponse;
  std::map<uint64_t, model::Response> kept;
  std::function<void(const Ending&)> each;
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
};


// A loopback listener the test handles by hand: the kernel completes the
// handshake from its backlog whether or not anyone accepts.
class RawListener {
 public:
  explicit RawListener(int rcvBuf = 0) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (rcvBuf > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvBuf, sizeof(rcvBuf));  // accepted sockets inherit it
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
  }
  ~RawListener() {
    if (peer_ >= 0) {
      ::close(peer_);
    }
    ::close(fd_);
  }
  sockaddr_storage address() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    return ss;
  }
  // Blocks until the connection under test is in the backlog.
  int accept() {
    peer_ = ::accept(fd_, nullptr, nullptr);
    return peer_;
  }

 private:
  int fd_;
  int peer_ = -1;
};

// An HTTP/2 frame header (RFC 9113 4.1) followed by its payload.
std::string frame(uint8_t type, const std::string& payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string f = {static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n),
                   static_cast<char>(type), 0, 0, 0, 0, 0};
  return f + payload;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// The pool's way of driving a connection: checkDeadlines only once
// nextDeadlineNs() has come, so a deadline it does not report never fires.
bool driveByDeadlines(Connection& c, const std::function<bool()>& until, int timeoutMs) {
  const uint64_t deadline = nowNs() + uint64_t(timeoutMs) * 1'000'000ULL;
  while (!until()) {
    if (nowNs() > deadline) {
      return false;
    }
    if (!c.closed()) {
      pollfd p{c.fd(), static_cast<short>(POLLIN | POLLRDHUP | (c.wantsWrite() ? POLLOUT : 0)), 0};
      poll(&p, 1, 10);
      c.onEvents(static_cast<uint32_t>(p.revents), nowNs());
    }
    if (const uint64_t now = nowNs(); now >= c.nextDeadlineNs()) {
      c.checkDeadlines(now);
    }
  }
  return true;
}

std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) & 0xff);
  }
  return s;
}

model::Request grpcCall(int i) {
  model::Request r;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "greeter:50051", false},
               {":path", "/helloworld.Greeter/SayHello", false},
               {"content-type", "application/grpc", false},
               {"te", "trailers", false},
               {"x-call", std::to_string(i), false},
               {"authorization", "Bearer t" + std::to_string(i), true},
               {"x-respond-grpc", std::to_string(i % 3), false}};
  r.body = pattern(static_cast<size_t>(i) * 1000 + 5, i);
  if (i % 2 == 0) {
    r.trailers = {{"x-client-trailer", "t" + std::to_string(i), false}};
  }
  r.finishHttp2();
  return r;
}

model::Request get(const std::string& path, std::vector<model::HeaderField> extra = {}) {
  model::Request r;
  r.headers = {{":method", "GET", false}, {":scheme", "http", false}, {":authority", "web:8080", false},
               {":path", path, false}};
  for (auto& f : extra) {
    r.headers.push_back(std::move(f));
  }
  r.finishHttp2();
  return r;
}

OpenedConnection open(const sockaddr_storage& addr, Endings& events, ConnectionSettings settings = {}) {
  return openConnection(h2Kind(settings), addr, events, nowNs());
}

TEST(H2Connection, ServerReceivesEveryRequestWithSuffixedAuthority) {
  test::H2TestServer server;
  Endings ended;
  auto c = open(server.address(), ended);
  std::vector<model::Request> sent;
  for (int i = 0; i < 40; ++i) {
    model::Request r = grpcCall(i);
    if (i == 7) {
      r.body = pattern(300000, 7);  // beyond the default 64 KiB stream window
    }
    rewriteAuthority(r, "-shadow");
    sent.push_back(r);
  }
  sent.push_back(get("/plain?q=1", {{"user-agent", "curl", false}}));
  rewriteAuthority(sent.back(), "-shadow");

  for (size_t i = 0; i < sent.size(); ++i) {
    model::Request r = sent[i];
    r.exchangeId = i + 1;  // the key of its ending
    ASSERT_GT(c->room(), 0u);
    ASSERT_TRUE(c->send(std::move(r), nowNs()));
  }
  EXPECT_EQ(c->load(), sent.size());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == sent.size(); }));

  const std::vector<model::Request> got = server.requests();
  ASSERT_EQ(got.size(), sent.size());
  for (const model::Request& want : sent) {
    bool found = false;
    for (const model::Request& g : got) {
      if (g.header("x-call") == want.header("x-call") && g.target() == want.target()) {
        found = true;
        EXPECT_EQ(g.headers, want.headers);
        EXPECT_EQ(g.body, want.body);
        EXPECT_EQ(g.trailers, want.trailers);
        EXPECT_TRUE(g.authority() == "greeter-shadow:50051" || g.authority() == "web-shadow:8080");
      }
    }
    EXPECT_TRUE(found) << want.target() << " " << want.header("x-call");
  }
  for (uint64_t i = 0; i < 40; ++i) {
    const Ending& e = ended.got[i + 1];
    EXPECT_EQ(e.outcome, Outcome::kResponse);
    EXPECT_EQ(e.status, 200);
    EXPECT_EQ(e.grpcStatus, static_cast<int>(i % 3));
    EXPECT_EQ(ended.calls[i + 1], 1);
  }
  EXPECT_EQ(ended.got[41].grpcStatus, -1);
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(c->load(), 0u);
  EXPECT_EQ(c->onWire(), 0u);
  EXPECT_GT(ended.bytesSent, 300000u);
  EXPECT_GT(ended.bytesReceived, 0u);
}

TEST(H2Connection, RespectsServerMaxConcurrentStreams) {
  test::H2TestServer server(4);
  Endings ended;
  ConnectionSettings settings;
  settings.maxQueued = 100;
  auto c = open(server.address(), ended, settings);
  size_t maxOnWire = 0;
  ended.each = [](const Ending& e) { EXPECT_EQ(e.outcome, Outcome::kResponse); };
  for (uint64_t i = 0; i < 30; ++i) {
    model::Request r = get("/c/" + std::to_string(i));
    r.exchangeId = i + 1;
    ASSERT_TRUE(c->send(std::move(r), nowNs()));
  }
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 30; }, 10000, true,
                    [&] { maxOnWire = std::max(maxOnWire, c->onWire()); }));
  EXPECT_LE(maxOnWire, 4u);
  EXPECT_GE(maxOnWire, 2u);
  EXPECT_EQ(server.requestCount(), 30u);
  // Once the server's SETTINGS are in, room() offers no more than its streams.
  EXPECT_EQ(c->room(), 4u);
}

TEST(H2Connection, QueueLimit) {
  test::H2TestServer server;
  Endings ended;
  ConnectionSettings settings;
  settings.maxQueued = 3;
  auto c = open(server.address(), ended, settings);  // not connected yet: everything queues
  for (uint64_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(c->room(), 4 - i);
    model::Request r = get("/q");
    r.exchangeId = i;
    EXPECT_TRUE(c->send(std::move(r), nowNs()));
  }
  EXPECT_EQ(c->room(), 0u);
  model::Request extra = get("/q");
  extra.exchangeId = 4;
  EXPECT_FALSE(c->send(std::move(extra), nowNs()));
  EXPECT_EQ(extra.target(), "/q");  // refused: left with the caller
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 3; }));
  EXPECT_EQ(ended.calls.count(4), 0u);
}

TEST(H2Connection, StatusResetAndTimeoutOutcomes) {
  test::H2TestServer server;
  Endings ended;
  ConnectionSettings settings;
  settings.responseTimeoutNs = 300'000'000;
  auto c = open(server.address(), ended, settings);
  auto send = [&](model::Request r, uint64_t id) {
    r.exchangeId = id;
    c->send(std::move(r), nowNs());
  };
  send(get("/404", {{"x-respond-status", "404", false}}), 1);
  send(get("/reset", {{"x-respond-reset", "1", false}}), 2);
  send(get("/never", {{"x-respond-never", "1", false}}), 3);
  model::Request bad = get("/bad");
  bad.headers.erase(bad.headers.begin());  // no :method: nghttp2 refuses to send it
  send(std::move(bad), 4);
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 4; }));
  EXPECT_EQ(ended.got[1].outcome, Outcome::kResponse);
  EXPECT_EQ(ended.got[1].status, 404);
  EXPECT_EQ(ended.got[2].outcome, Outcome::kReset);
  EXPECT_EQ(ended.got[2].errorCode, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_EQ(ended.got[3].outcome, Outcome::kResponseTimeout);
  EXPECT_GE(ended.got[3].latencyNs, 300'000'000u);
  EXPECT_TRUE(ended.got[4].outcome == Outcome::kRejected || ended.got[4].outcome == Outcome::kReset)
      << static_cast<int>(ended.got[4].outcome);
  EXPECT_FALSE(c->closed());
}

TEST(H2Connection, ConnectionLossFailsEverythingInFlight) {
  test::H2TestServer server;
  Endings ended;
  auto c = open(server.address(), ended);
  for (uint64_t i = 1; i <= 5; ++i) {
    model::Request r = get("/hang", {{"x-respond-never", "1", false}});
    r.exchangeId = i;
    c->send(std::move(r), nowNs());
  }
  ASSERT_TRUE(drive(*c, [&] { return server.requestCount() == 5; }));
  EXPECT_EQ(c->onWire(), 5u);
  server.dropConnections();
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  ASSERT_EQ(ended.got.size(), 5u);
  for (const auto& [id, e] : ended.got) {
    EXPECT_EQ(e.outcome, Outcome::kConnectionError);
  }
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(c->room(), 0u);
  EXPECT_FALSE(c->send(get("/after"), nowNs()));
}

TEST(H2Connection, ConnectFailure) {
  sockaddr_storage addr;
  {
    test::H2TestServer gone;  // a port nobody listens on afterwards
    addr = gone.address();
  }
  Endings ended;
  auto kind = h2Kind({});
  int err = 0;
  auto c = kind->open(addr, ended, nowNs(), err);
  ASSERT_NE(c, nullptr);
  model::Request r = get("/x");
  r.exchangeId = 1;
  c->send(std::move(r), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  EXPECT_EQ(ended.calls[1], 1);
  EXPECT_EQ(ended.got[1].outcome, Outcome::kConnectError);
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(c->connectError(), ECONNREFUSED);
}

TEST(H2Connection, ConnectTimeoutIsTheConnectionsOwn) {
  sockaddr_storage addr;
  {
    test::H2TestServer gone;
    addr = gone.address();
  }
  Endings ended;
  ConnectionSettings settings;
  settings.connectTimeoutNs = 1'000'000;
  auto kind = h2Kind(settings);
  int err = 0;
  const uint64_t t0 = nowNs();
  auto c = kind->open(addr, ended, t0, err);
  ASSERT_NE(c, nullptr);
  model::Request r = get("/x");
  r.exchangeId = 1;
  c->send(std::move(r), t0);
  EXPECT_EQ(c->nextDeadlineNs(), t0 + 1'000'000);
  c->checkDeadlines(t0 + 999'999);  // no I/O in between: the connect is still pending
  EXPECT_FALSE(c->closed());
  c->checkDeadlines(t0 + 1'000'000);
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(ended.got[1].outcome, Outcome::kConnectTimeout);
}

TEST(H2Connection, DestructionEndsEverythingWithShutdown) {
  test::H2TestServer server;
  Endings ended;
  {
    auto c = open(server.address(), ended);
    for (uint64_t i = 1; i <= 3; ++i) {
      model::Request r = get("/s");
      r.exchangeId = i;
      c->send(std::move(r), nowNs());
    }
  }
  ASSERT_EQ(ended.got.size(), 3u);
  for (const auto& [id, e] : ended.got) {
    EXPECT_EQ(e.outcome, Outcome::kDroppedShutdown);
  }
}

TEST(H2Connection, KeepsResponsesOnlyForExchanges) {
  test::H2TestServer server;
  Endings ended;
  ConnectionSettings settings;
  settings.keepResponses = true;
  settings.keepTrailers = false;
  settings.responseLimits.maxBodyBytes = 10;
  auto c = open(server.address(), ended, settings);
  model::Request a = get("/a", {{"x-respond-interim", "1", false},
                           {"x-respond-header", "x-a=1", false},
                           {"x-respond-body-size", "25", false},
                           {"x-respond-grpc", "3", false}});
  a.exchangeId = 5;
  model::Request b = get("/b", {{"x-respond-body-size", "25", false}});  // no exchange: nothing kept
  model::Request r = get("/r", {{"x-respond-reset", "1", false}});
  r.exchangeId = 6;
  c->send(std::move(a), nowNs());
  c->send(std::move(b), nowNs());
  c->send(std::move(r), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.hadResponse.size() == 3; }));
  EXPECT_TRUE(ended.hadResponse[5]);
  EXPECT_FALSE(ended.hadResponse[0]);
  EXPECT_FALSE(ended.hadResponse[6]);  // reset: no response to keep
  const model::Response& k = ended.kept[5];
  EXPECT_EQ(k.status, 200);
  ASSERT_EQ(k.headers.size(), 1u);  // not the 103's link, not the grpc-status trailer
  EXPECT_EQ(k.headers[0].name, "x-a");
  EXPECT_EQ(k.headers[0].value, "1");
  EXPECT_EQ(k.body, test::H2TestServer::bodyPattern(25).substr(0, 10));
  EXPECT_TRUE(k.bodyTruncated);
  EXPECT_EQ(k.bodyLength, 25u);
  EXPECT_EQ(k.bodyHash, base::fnv1a64(test::H2TestServer::bodyPattern(25)));
  EXPECT_GT(k.tsNs, 0u);
}

TEST(H2Connection, QueuedRequestsTimeOutWhenTheServerNeverSendsSettings) {
  RawListener mirror;  // completes the handshake, never accepts: no SETTINGS ever
  Endings ended;
  ConnectionSettings settings;
  settings.responseTimeoutNs = 100'000'000;
  auto c = open(mirror.address(), ended, settings);
  for (uint64_t i = 1; i <= 3; ++i) {
    model::Request r = get("/q");
    r.exchangeId = i;
    ASSERT_TRUE(c->send(std::move(r), nowNs()));
  }
  ASSERT_TRUE(driveByDeadlines(*c, [&] { return c->connected(); }, 2000));
  EXPECT_LE(c->nextDeadlineNs(), nowNs() + settings.responseTimeoutNs) << "queued requests have a deadline";
  const uint64_t t0 = nowNs();
  ASSERT_TRUE(driveByDeadlines(*c, [&] { return ended.got.size() == 3; }, 2000)) << "stranded until stop()";
  EXPECT_LT(nowNs() - t0, 1'000'000'000u);
  for (uint64_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(ended.calls[i], 1);
    EXPECT_EQ(ended.got[i].outcome, Outcome::kResponseTimeout) << i;
  }
  EXPECT_TRUE(c->closed()) << "a mirror that never speaks HTTP/2 is given up";
}

TEST(H2Connection, QueuedRequestsTimeOutWhenTheServerAllowsNoStreams) {
  test::H2TestServer server(0);  // SETTINGS_MAX_CONCURRENT_STREAMS = 0
  Endings ended;
  ConnectionSettings settings;
  settings.responseTimeoutNs = 100'000'000;
  auto c = open(server.address(), ended, settings);
  model::Request r = get("/none");
  r.exchangeId = 1;
  ASSERT_TRUE(c->send(std::move(r), nowNs()));
  ASSERT_TRUE(driveByDeadlines(*c, [&] { return ended.got.size() == 1; }, 2000));
  EXPECT_EQ(ended.got[1].outcome, Outcome::kResponseTimeout);
  EXPECT_EQ(c->load(), 0u);
  EXPECT_FALSE(c->closed()) << "the server spoke HTTP/2: only the request timed out";
  EXPECT_EQ(server.requestCount(), 0u);
}

TEST(H2Connection, TimedOutStreamEndsWhenItsResetCannotBeSent) {
  RawListener mirror(4096);  // stops reading at once: the client's send buffer fills
  Endings ended;
  ConnectionSettings settings;
  settings.responseTimeoutNs = 200'000'000;
  auto c = open(mirror.address(), ended, settings);
  const int peer = mirror.accept();
  ASSERT_GE(peer, 0);
  // Windows far beyond the body, so only the socket holds it back.
  const std::string windows = frame(NGHTTP2_SETTINGS, std::string{0, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE} +
                                                          be32(NGHTTP2_MAX_WINDOW_SIZE)) +
                              frame(NGHTTP2_WINDOW_UPDATE, be32(NGHTTP2_MAX_WINDOW_SIZE - 65535));
  ASSERT_EQ(::send(peer, windows.data(), windows.size(), 0), static_cast<ssize_t>(windows.size()));
  model::Request r = get("/upload");
  r.headers[0].value = "POST";
  r.body = std::string(16 << 20, 'b');  // beyond any socket buffer
  r.exchangeId = 1;
  ASSERT_TRUE(c->send(std::move(r), nowNs()));
  // Epoll (poll here) reports a socket writable only once much of its buffer
  // is free: write until it takes no more, so the reset cannot follow.
  for (int i = 0; i < 20; ++i) {
    c->onEvents(EPOLLIN | EPOLLOUT, nowNs());
    ::usleep(5000);
  }
  ASSERT_GT(ended.bytesSent, 1u << 20) << "the body is on the wire";
  ASSERT_TRUE(ended.got.empty());
  ASSERT_TRUE(driveByDeadlines(*c, [&] { return ended.got.size() == 1; }, 2000)) << "the stream never ends";
  EXPECT_EQ(ended.got[1].outcome, Outcome::kResponseTimeout);
  EXPECT_EQ(ended.calls[1], 1);
}

}  // namespace
}  // namespace shadowtap::replay
