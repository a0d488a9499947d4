// The HTTP/1 connection kind on its own, driven by a poll() loop with explicit
// times: connect, one request at a time, keep-alive, response framing, when it
// closes, deadlines, kept responses, published endpoints.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <vector>

#include "base/clock.h"
#include "model/body_stream.h"
#include "replay/connection.h"
#include "pool_test_util.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

uint64_t nowNs() { return base::monotonicNs(); }

class Endings final : public ConnectionEvents {
 public:
  void onEnded(Ending& e) override {
    Ending copy = e;
    copy.kept = nullptr;
    got.push_back(copy);
    kept.push_back(e.kept != nullptr ? std::optional<model::Response>(std::move(*e.kept)) : std::nullopt);
  }
  void onBytes(uint64_t s, uint64_t r) override {
    sent += s;
    received += r;
  }
  void onRequestWritten() override { ++written; }

  std::vector<Ending> got;
  std::vector<std::optional<model::Response>> kept;
  uint64_t sent = 0;
  uint64_t received = 0;
  int written = 0;
};

model::Request get(int seq, const std::string& method = "GET") {
  model::Request r;
  r.method = method;
  r.exchangeId = static_cast<uint64_t>(seq) + 1;
  r.bytes = method + " /x?seq=" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\nX-Seq: " +
            std::to_string(seq) + "\r\n\r\n";
  return r;
}

// Deadlines are the test's business here: the loop does not check them.
bool drive(Connection& c, const std::function<bool()>& until) { return testing::drive(c, until, 5000, false); }

OpenedConnection open(const sockaddr_storage& addr, Endings& events, ConnectionSettings settings = {},
                      uint64_t now = nowNs()) {
  return openConnection(http1Kind(settings), addr, events, now);
}

TEST(Http1Connection, OneRequestAtATimeKeptAlive) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(204, "")}; });
  Endings ended;
  auto c = open(server.address(), ended);
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(c->room(), 1u);  // a request can ride on the connect
  EXPECT_TRUE(c->wantsWrite());
  ASSERT_TRUE(c->send(get(0), nowNs()));
  EXPECT_EQ(c->room(), 0u);
  EXPECT_EQ(c->load(), 1u);
  EXPECT_EQ(c->onWire(), 0u);  // still connecting
  EXPECT_FALSE(c->send(get(99), nowNs())) << "a second request while one is held";
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(ended.got[0].outcome, Outcome::kResponse);
  EXPECT_EQ(ended.got[0].status, 204);
  EXPECT_EQ(ended.got[0].exchangeId, 1u);
  EXPECT_EQ(c->room(), 1u);
  EXPECT_EQ(c->load(), 0u);
  EXPECT_FALSE(c->wantsWrite());
  EXPECT_EQ(c->nextDeadlineNs(), UINT64_MAX) << "an idle connection has no deadline of its own";
  for (int i = 1; i < 5; ++i) {
    ASSERT_TRUE(c->send(get(i), nowNs()));
    ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == static_cast<size_t>(i) + 1; }));
  }
  EXPECT_EQ(server.connectionCount(), 1u);
  EXPECT_EQ(server.requestCount(), 5u);
  EXPECT_EQ(ended.written, 5);
  EXPECT_EQ(ended.sent, 5 * get(0).bytes.size());
  EXPECT_FALSE(c->closed());
  c->close(Outcome::kDroppedShutdown);  // holds nothing: ends nothing
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(ended.got.size(), 5u);
}

TEST(Http1Connection, ClosesWhenTheMirrorSaysSoOrSendsMoreThanOneResponse) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    if (r.bytes.find("seq=0") != std::string::npos) {
      return ServerAction{.response = httpResponse(200, "a", "Connection: close\r\n")};
    }
    return ServerAction{.response = httpResponse(200, "b") + httpResponse(200, "unasked")};
  });
  for (int seq = 0; seq < 2; ++seq) {
    Endings ended;
    auto c = open(server.address(), ended);
    c->send(get(seq), nowNs());
    ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
    EXPECT_EQ(ended.got[0].outcome, Outcome::kResponse) << seq;
    EXPECT_TRUE(c->closed()) << seq;
    EXPECT_EQ(c->room(), 0u);
  }
}

TEST(Http1Connection, RefusedConnectEndsTheRequestThatRodeOnIt) {
  RefusedPort dead;
  Endings ended;
  auto c = open(dead.address(), ended);
  ASSERT_TRUE(c->send(get(0), nowNs()));
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  ASSERT_EQ(ended.got.size(), 1u);
  EXPECT_EQ(ended.got[0].outcome, Outcome::kConnectError);
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(c->connectError(), ECONNREFUSED);
}

TEST(Http1Connection, RefusedConnectWithoutARequestEndsNothing) {
  RefusedPort dead;
  Endings ended;
  auto c = open(dead.address(), ended);
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  EXPECT_TRUE(ended.got.empty());
  EXPECT_FALSE(c->connected());
}

TEST(Http1Connection, DeadlinesAreExactOnTheCallersClock) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{}; });  // never answers
  Endings ended;
  ConnectionSettings settings;
  settings.connectTimeoutNs = 1'000'000'000'000ULL;  // the connect itself is not what times out here
  settings.responseTimeoutNs = 5'000'000;
  auto c = open(server.address(), ended, settings, 1000);
  EXPECT_EQ(c->nextDeadlineNs(), 1000 + settings.connectTimeoutNs);
  // Connected and the request written at (fake) time 2000: the response deadline counts from there.
  ASSERT_TRUE(drive(*c, [&] { return c->connected(); }));
  ASSERT_TRUE(c->send(get(0), 2000));
  ASSERT_TRUE(server.waitForRequests(1, 5s));
  EXPECT_EQ(c->onWire(), 1u);
  EXPECT_EQ(c->nextDeadlineNs(), 2000 + settings.responseTimeoutNs);
  c->checkDeadlines(2000 + settings.responseTimeoutNs - 1);
  EXPECT_TRUE(ended.got.empty());
  c->checkDeadlines(2000 + settings.responseTimeoutNs);
  ASSERT_EQ(ended.got.size(), 1u);
  EXPECT_EQ(ended.got[0].outcome, Outcome::kResponseTimeout);
  EXPECT_EQ(ended.got[0].latencyNs, settings.responseTimeoutNs);
  EXPECT_TRUE(c->closed()) << "a timed-out connection is not reused";
}

TEST(Http1Connection, ConnectTimeoutEndsTheRequestItCarries) {
  RefusedPort dead;  // never polled: its connect stays pending as far as the connection knows
  Endings ended;
  ConnectionSettings settings;
  settings.connectTimeoutNs = 100;
  auto c = open(dead.address(), ended, settings, 1000);
  c->send(get(0), 1000);
  c->checkDeadlines(1099);
  EXPECT_FALSE(c->closed());
  c->checkDeadlines(1100);
  EXPECT_TRUE(c->closed());
  ASSERT_EQ(ended.got.size(), 1u);
  EXPECT_EQ(ended.got[0].outcome, Outcome::kConnectTimeout);
}

TEST(Http1Connection, CloseEndsWhatItHoldsWithTheGivenOutcome) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{}; });
  Endings ended;
  auto c = open(server.address(), ended);
  c->send(get(0), nowNs());  // rides on the connect
  c->close(Outcome::kDroppedShutdown);
  ASSERT_EQ(ended.got.size(), 1u);
  EXPECT_EQ(ended.got[0].outcome, Outcome::kDroppedShutdown);
  c->close(Outcome::kDroppedShutdown);
  EXPECT_EQ(ended.got.size(), 1u) << "ended twice";
}

TEST(Http1Connection, OversizedAndUnreadableResponses) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    if (r.bytes.find("seq=0") != std::string::npos) {
      return ServerAction{.response = httpResponse(200, std::string(100000, 'z'))};
    }
    return ServerAction{.response = "SSH-2.0-OpenSSH\r\n\r\n"};
  });
  ConnectionSettings settings;
  settings.maxResponseBytes = 1000;
  const Outcome want[] = {Outcome::kResponseTooLarge, Outcome::kBadResponse};
  for (int seq = 0; seq < 2; ++seq) {
    Endings ended;
    auto c = open(server.address(), ended, settings);
    c->send(get(seq), nowNs());
    ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
    EXPECT_EQ(ended.got[0].outcome, want[seq]);
    EXPECT_TRUE(c->closed());
    if (seq == 0) {
      EXPECT_LE(ended.received, 1000u + 64 * 1024) << "read on well past the limit";
    }
  }
}

TEST(Http1Connection, IdleConnectionClosedByThePeerEndsNothing) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) {
    return ServerAction{.response = httpResponse(200, "x"), .closeAfter = true};  // FIN after a keep-alive response
  });
  Endings ended;
  auto c = open(server.address(), ended);
  c->send(get(0), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
  EXPECT_EQ(ended.got[0].outcome, Outcome::kResponse);
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  EXPECT_EQ(ended.got.size(), 1u);
}

TEST(Http1Connection, KeepsResponsesOfExchangesOnly) {
  TestHttpServer server([](const ServerRequest& r, size_t, size_t) {
    if (r.method == "HEAD") {
      return ServerAction{.response = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"};
    }
    return ServerAction{.response = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"};
  });
  http::ResponseStats framing;
  ConnectionSettings settings;
  settings.keepResponses = true;
  settings.keptFraming = &framing;
  Endings ended;
  auto c = open(server.address(), ended, settings);
  model::Request plain = get(0);
  plain.exchangeId = 0;  // not compared: nothing kept
  c->send(std::move(plain), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
  c->send(get(1), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 2; }));
  c->send(get(2, "HEAD"), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 3; }));
  EXPECT_FALSE(ended.kept[0].has_value());
  ASSERT_TRUE(ended.kept[1].has_value());
  EXPECT_EQ(ended.kept[1]->status, 201);
  EXPECT_EQ(ended.kept[1]->body, "abcde");
  EXPECT_EQ(ended.kept[1]->header("x-a"), "1");
  ASSERT_TRUE(ended.kept[2].has_value());
  EXPECT_EQ(ended.kept[2]->body, "") << "a HEAD response has no body";
  EXPECT_EQ(framing.expected.load(), 2u);
  EXPECT_EQ(framing.responses.load(), 2u);
  EXPECT_EQ(server.connectionCount(), 1u);
}

TEST(Http1Connection, LocalEndpointIsPublishedWhileTheSocketLives) {
  TestHttpServer server([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "x")}; });
  LocalEndpoints endpoints;
  ConnectionSettings settings;
  settings.endpoints = &endpoints;
  Endings ended;
  auto c = open(server.address(), ended, settings);
  EXPECT_EQ(endpoints.size(), 1u) << "published before the connect completes";
  c->send(get(0), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return ended.got.size() == 1; }));
  EXPECT_EQ(endpoints.size(), 1u);
  c->close(Outcome::kDroppedShutdown);
  EXPECT_EQ(endpoints.size(), 0u);
}

// A mirror that answers after one byte of a huge head and resets the
// connection: the connection reads the response, tries to send the rest of the
// request and fails; the request ends once, as a reset.
TEST(Http1Connection, SendFailureAfterTheResponseEndsTheRequestOnce) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  const int rcvBuf = 4096;  // the mirror takes little of the head before it stops reading
  ::setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvBuf, sizeof(rcvBuf));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);

  Endings ended;
  auto c = open(addr, ended);
  const int peer = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  model::Request r = get(0);
  r.bytes = "POST /big HTTP/1.1\r\nX-Big: " + std::string(8 << 20, 'h') + "\r\nContent-Length: 0\r\n\r\n";
  r.bodyStream = std::make_shared<model::BodyStream>(1 << 16);
  r.bodyStream->finish(model::BodyStream::End::kComplete);  // empty: nothing but the head to send
  const size_t headSize = r.bytes.size();
  ASSERT_TRUE(c->send(std::move(r), nowNs()));
  c->onEvents(EPOLLOUT, nowNs());  // connected: the head goes out until the socket is full
  ASSERT_TRUE(c->connected());
  ASSERT_LT(ended.sent, headSize);

  char byte = 0;
  ASSERT_EQ(::recv(peer, &byte, 1, 0), 1);
  const std::string answer = "HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(::send(peer, answer.data(), answer.size(), 0), static_cast<ssize_t>(answer.size()));
  int unacked = 1;
  for (int i = 0; i < 1000 && unacked > 0; ++i) {  // the answer is in before the reset
    ::ioctl(peer, SIOCOUTQ, &unacked);
    ::usleep(1000);
  }
  const linger reset{1, 0};
  ::setsockopt(peer, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  ::close(peer);
  ::close(listener);
  pollfd p{c->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  ASSERT_NE(p.revents & (POLLERR | POLLHUP), 0) << "the reset arrived";

  c->onEvents(EPOLLIN, nowNs());  // the response, then the failed send of the rest
  ASSERT_EQ(ended.got.size(), 1u) << "ended twice";
  EXPECT_EQ(ended.got[0].outcome, Outcome::kReset);
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(c->load(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
