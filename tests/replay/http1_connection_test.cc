// The HTTP/1 connection kind on its own, driven by a poll() loop with explicit
// times: connect, one request at a time, keep-alive, response framing, when it
// closes, deadlines, kept responses, published endpoints.
#include <gtest/gtest.h>
#include <poll.h>
#include <time.h>

#include <functional>
#include <map>
#include <vector>

#include "base/clock.h"
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

}  // namespace
}  // namespace shadowtap::replay
