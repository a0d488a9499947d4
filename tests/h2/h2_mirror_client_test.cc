#include "base/strings.h"
#include "h2/h2_mirror_client.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <time.h>

#include <functional>
#include <map>

#include "h2/request_edit.h"
#include "h2_test_server.h"

namespace shadowtap::h2 {
namespace {

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// The caller's event loop, reduced to poll().
bool drive(H2MirrorClient& c, const std::function<bool()>& until, int timeoutMs = 10000,
           const std::function<void()>& each = {}) {
  const uint64_t deadline = nowNs() + uint64_t(timeoutMs) * 1'000'000ULL;
  while (!until()) {
    if (nowNs() > deadline) {
      return false;
    }
    if (!c.closed()) {
      pollfd p{c.fd(), static_cast<short>(POLLIN | (c.wantsWrite() ? POLLOUT : 0)), 0};
      poll(&p, 1, 10);
      if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
        c.onWritable(nowNs());
      }
      if ((p.revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
        c.onReadable(nowNs());
      }
    }
    c.checkTimeouts(nowNs());
    if (each) {
      each();
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

std::unique_ptr<H2MirrorClient> open(const test::H2TestServer& server, H2ClientOptions opts = {}) {
  int err = 0;
  auto c = H2MirrorClient::connect(server.address(), opts, nowNs(), &err);
  EXPECT_NE(c, nullptr) << err;
  return c;
}

TEST(H2MirrorClient, ServerReceivesEveryRequestWithSuffixedAuthority) {
  test::H2TestServer server;
  auto c = open(server);
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

  std::map<std::string, H2Outcome> outcomes;
  for (const model::Request& r : sent) {
    const std::string key(r.target().empty() ? "" : std::string(r.header("x-call")) + std::string(r.target()));
    ASSERT_TRUE(c->submit(model::Request(r), [&outcomes, key](const H2Outcome& o) { outcomes[key] = o; }, nowNs()));
  }
  ASSERT_TRUE(drive(*c, [&] { return outcomes.size() == sent.size(); }));

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
  for (int i = 0; i < 40; ++i) {
    const H2Outcome& o = outcomes[std::to_string(i) + "/helloworld.Greeter/SayHello"];
    EXPECT_EQ(o.kind, H2Outcome::Kind::kResponse);
    EXPECT_EQ(o.status, 200);
    EXPECT_EQ(o.grpcStatus, i % 3);
  }
  EXPECT_EQ(outcomes["/plain?q=1"].grpcStatus, -1);
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(c->inFlight(), 0u);
}

TEST(H2MirrorClient, RespectsServerMaxConcurrentStreams) {
  test::H2TestServer server(4);
  H2ClientOptions opts;
  opts.maxQueued = 100;
  auto c = open(server, opts);
  size_t done = 0;
  size_t maxInFlight = 0;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(c->submit(get("/c/" + std::to_string(i)), [&](const H2Outcome& o) {
      EXPECT_EQ(o.kind, H2Outcome::Kind::kResponse);
      ++done;
    }, nowNs()));
  }
  ASSERT_TRUE(drive(*c, [&] { return done == 30; }, 10000, [&] { maxInFlight = std::max(maxInFlight, c->inFlight()); }));
  EXPECT_LE(maxInFlight, 4u);
  EXPECT_GE(maxInFlight, 2u);
  EXPECT_EQ(server.requestCount(), 30u);
}

TEST(H2MirrorClient, QueueLimit) {
  test::H2TestServer server;
  H2ClientOptions opts;
  opts.maxQueued = 3;
  auto c = open(server, opts);  // not connected yet: everything queues
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(c->submit(get("/q"), [&](const H2Outcome&) { ++calls; }, nowNs()));
  }
  EXPECT_FALSE(c->canAccept());
  EXPECT_FALSE(c->submit(get("/q"), [&](const H2Outcome&) { ++calls; }, nowNs()));
  ASSERT_TRUE(drive(*c, [&] { return calls == 3; }));
}

TEST(H2MirrorClient, StatusResetAndTimeoutOutcomes) {
  test::H2TestServer server;
  H2ClientOptions opts;
  opts.responseTimeoutNs = 300'000'000;
  auto c = open(server, opts);
  std::map<std::string, H2Outcome> out;
  auto rec = [&out](std::string k) { return [&out, k](const H2Outcome& o) { out[k] = o; }; };
  c->submit(get("/404", {{"x-respond-status", "404", false}}), rec("404"), nowNs());
  c->submit(get("/reset", {{"x-respond-reset", "1", false}}), rec("reset"), nowNs());
  c->submit(get("/never", {{"x-respond-never", "1", false}}), rec("never"), nowNs());
  model::Request bad = get("/bad");
  bad.headers.erase(bad.headers.begin());  // no :method: nghttp2 refuses to send it
  c->submit(std::move(bad), rec("bad"), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return out.size() == 4; }));
  EXPECT_EQ(out["404"].kind, H2Outcome::Kind::kResponse);
  EXPECT_EQ(out["404"].status, 404);
  EXPECT_EQ(out["reset"].kind, H2Outcome::Kind::kStreamReset);
  EXPECT_EQ(out["reset"].errorCode, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_EQ(out["never"].kind, H2Outcome::Kind::kTimeout);
  EXPECT_GE(out["never"].latencyNs, 300'000'000u);
  EXPECT_TRUE(out["bad"].kind == H2Outcome::Kind::kRejected || out["bad"].kind == H2Outcome::Kind::kStreamReset)
      << static_cast<int>(out["bad"].kind);
  EXPECT_FALSE(c->closed());
}

TEST(H2MirrorClient, ConnectionLossFailsEverythingInFlight) {
  test::H2TestServer server;
  auto c = open(server);
  std::vector<H2Outcome::Kind> kinds;
  for (int i = 0; i < 5; ++i) {
    c->submit(get("/hang", {{"x-respond-never", "1", false}}), [&](const H2Outcome& o) { kinds.push_back(o.kind); },
              nowNs());
  }
  ASSERT_TRUE(drive(*c, [&] { return server.requestCount() == 5; }));
  server.dropConnections();
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  ASSERT_EQ(kinds.size(), 5u);
  for (auto k : kinds) {
    EXPECT_EQ(k, H2Outcome::Kind::kConnectionError);
  }
  EXPECT_FALSE(c->submit(get("/after"), [](const H2Outcome&) {}, nowNs()));
}

TEST(H2MirrorClient, ConnectFailure) {
  sockaddr_storage addr;
  uint16_t port;
  {
    test::H2TestServer gone;  // a port nobody listens on afterwards
    addr = gone.address();
    port = gone.port();
  }
  (void)port;
  int err = 0;
  auto c = H2MirrorClient::connect(addr, {}, nowNs(), &err);
  ASSERT_NE(c, nullptr);
  H2Outcome::Kind kind = H2Outcome::Kind::kResponse;
  int calls = 0;
  c->submit(get("/x"), [&](const H2Outcome& o) { kind = o.kind; ++calls; }, nowNs());
  ASSERT_TRUE(drive(*c, [&] { return c->closed(); }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(kind, H2Outcome::Kind::kConnectFailed);
}

TEST(H2MirrorClient, DestructionEndsEverythingWithShutdown) {
  test::H2TestServer server;
  int shutdowns = 0;
  {
    auto c = open(server);
    for (int i = 0; i < 3; ++i) {
      c->submit(get("/s"), [&](const H2Outcome& o) { shutdowns += o.kind == H2Outcome::Kind::kShutdown; }, nowNs());
    }
  }
  EXPECT_EQ(shutdowns, 3);
}

TEST(H2MirrorClient, KeepsResponsesOnlyForExchanges) {
  test::H2TestServer server;
  H2ClientOptions opts;
  opts.keepResponses = true;
  opts.keepTrailers = false;
  opts.responseLimits.maxBodyBytes = 10;
  auto c = open(server, opts);
  std::map<uint64_t, model::Response> kept;
  std::map<uint64_t, bool> hadResponse;
  auto rec = [&](uint64_t id) {
    return [&kept, &hadResponse, id](const H2Outcome& o) {
      hadResponse[id] = o.response != nullptr;
      if (o.response != nullptr) {
        kept[id] = std::move(*o.response);
      }
    };
  };
  model::Request a = get("/a", {{"x-respond-interim", "1", false},
                           {"x-respond-header", "x-a=1", false},
                           {"x-respond-body-size", "25", false},
                           {"x-respond-grpc", "3", false}});
  a.exchangeId = 5;
  model::Request b = get("/b", {{"x-respond-body-size", "25", false}});  // no exchange: nothing kept
  model::Request r = get("/r", {{"x-respond-reset", "1", false}});
  r.exchangeId = 6;
  c->submit(std::move(a), rec(5), nowNs());
  c->submit(std::move(b), rec(0), nowNs());
  c->submit(std::move(r), rec(6), nowNs());
  ASSERT_TRUE(drive(*c, [&] { return hadResponse.size() == 3; }));
  EXPECT_TRUE(hadResponse[5]);
  EXPECT_FALSE(hadResponse[0]);
  EXPECT_FALSE(hadResponse[6]);  // reset: no response to keep
  const model::Response& k = kept[5];
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

}  // namespace
}  // namespace shadowtap::h2
