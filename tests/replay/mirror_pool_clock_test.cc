// The pool's time decisions on a fake clock, the same for both connection
// kinds: backoff after failed connects, response timeouts, idle connections,
// re-resolution with an injected resolver.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "h2_test_server.h"
#include "pool_test_util.h"
#include "replay/mirror_pool.h"
#include "test_http_server.h"

namespace shadowtap::replay {
namespace {

using namespace std::chrono_literals;
using namespace testing;

// A mirror of either kind on loopback: answers, or never answers.
class Mirror {
 public:
  Mirror(model::Protocol protocol, bool answers) : protocol_(protocol), answers_(answers) {
    if (protocol == model::Protocol::kHttp2) {
      h2_ = std::make_unique<h2::test::H2TestServer>();
    } else {
      http1_ = std::make_unique<testing::TestHttpServer>([answers](const testing::ServerRequest&, size_t, size_t) {
        return answers ? testing::ServerAction{.response = testing::httpResponse(200, "x")} : testing::ServerAction{};
      });
    }
  }
  sockaddr_storage address() const { return h2_ ? h2_->address() : http1_->address(); }
  size_t requests() const { return h2_ ? h2_->requestCount() : http1_->requestCount(); }
  size_t connections() const { return h2_ ? h2_->connections() : http1_->connectionCount(); }

  model::Request request(int seq) const {
    model::Request r;
    if (protocol_ == model::Protocol::kHttp2) {
      r.headers = {{":method", "GET", false}, {":scheme", "http", false}, {":authority", "svc-shadow", false},
                   {":path", "/c/" + std::to_string(seq), false}};
      if (!answers_) {
        r.headers.push_back({"x-respond-never", "1", false});
      }
      r.finishHttp2();
    } else {
      r.method = "GET";
      r.bytes = "GET /c/" + std::to_string(seq) + " HTTP/1.1\r\nHost: svc-shadow\r\n\r\n";
    }
    return r;
  }

 private:
  model::Protocol protocol_;
  bool answers_;
  std::unique_ptr<h2::test::H2TestServer> h2_;
  std::unique_ptr<testing::TestHttpServer> http1_;
};

class MirrorPoolClock : public ::testing::TestWithParam<model::Protocol> {
 protected:
  MirrorPoolOptions options(const sockaddr_storage& addr) {
    MirrorPoolOptions o;
    o.io = ::shadowtap::replay::testing::testIo();
    o.protocol = GetParam();
    o.addrs = {addr};
    o.clock = &clock_;
    return o;
  }
  base::FakeClock clock_;
};

std::string protocolName(const ::testing::TestParamInfo<model::Protocol>& info) {
  return info.param == model::Protocol::kHttp2 ? "h2c" : "http1";
}

INSTANTIATE_TEST_SUITE_P(BothKinds, MirrorPoolClock,
                         ::testing::Values(model::Protocol::kHttp1, model::Protocol::kHttp2), protocolName);

// Connects to a refused address: one attempt, then none before the backoff
// (100 ms doubling to 400) has run out on the pool's clock, then exactly one more.
TEST_P(MirrorPoolClock, FailedConnectsBackOff) {
  testing::RefusedPort dead;
  Mirror shape(GetParam(), true);
  MirrorPoolOptions o = options(dead.address());
  o.maxConnections = 1;
  o.maxConcurrentStreams = 1;  // an h2c connect carries one request, as an HTTP/1 one does
  o.backoffInitial = std::chrono::milliseconds(100);
  o.backoffMax = std::chrono::milliseconds(400);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(shape.request(i)));
  }
  const MirrorStats& s = pool.stats();
  ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == 1 && get(s.errorsConnect) >= 1; }));
  for (const auto backoff : {100ms, 200ms, 400ms, 400ms}) {
    settle(pool);
    const uint64_t attempts = get(s.connectAttempts);
    advance(clock_, pool, backoff - 1ms);
    EXPECT_EQ(get(s.connectAttempts), attempts) << "connected again before the " << backoff.count() << " ms backoff";
    advance(clock_, pool, 1ms);
    ASSERT_TRUE(waitFor([&] { return get(s.connectAttempts) == attempts + 1; }))
        << "no attempt after the " << backoff.count() << " ms backoff";
  }
  EXPECT_EQ(get(s.connectionsOpened), 0u);
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(get(s.errorsConnect) + get(s.droppedShutdown), 10u);
  expectOutcomesAddUp(s);
}

// A mirror that never answers: each request ends exactly at the response timeout.
TEST_P(MirrorPoolClock, ResponseTimeout) {
  Mirror mirror(GetParam(), false);
  MirrorPoolOptions o = options(mirror.address());
  o.responseTimeout = std::chrono::milliseconds(300);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(mirror.request(0)));
  ASSERT_TRUE(waitFor([&] { return mirror.requests() == 1; }));
  settle(pool);
  advance(clock_, pool, 299ms);
  EXPECT_EQ(get(pool.stats().errorsResponseTimeout), 0u);
  advance(clock_, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().errorsResponseTimeout) == 1; }));
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(get(pool.stats().responses), 0u);
  expectOutcomesAddUp(pool.stats());
}

// A connection with nothing to do closes at the idle timeout; the next request opens another.
TEST_P(MirrorPoolClock, IdleConnectionsClose) {
  Mirror mirror(GetParam(), true);
  MirrorPoolOptions o = options(mirror.address());
  o.idleTimeout = std::chrono::milliseconds(1000);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(pool.submit(mirror.request(0)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 1; }));
  settle(pool);
  advance(clock_, pool, 999ms);
  EXPECT_EQ(pool.stats().openConnections.load(), 1);
  advance(clock_, pool, 1ms);
  ASSERT_TRUE(waitFor([&] { return pool.stats().openConnections.load() == 0; }));
  EXPECT_EQ(get(pool.stats().idleClosed), 1u);
  ASSERT_TRUE(pool.submit(mirror.request(1)));
  ASSERT_TRUE(waitFor([&] { return get(pool.stats().responses) == 2; }));
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(mirror.connections(), 2u);
  expectOutcomesAddUp(pool.stats());
}

// Re-resolution every resolveInterval of the pool's clock, with the injected
// resolver: the same list is no change, a failure keeps the addresses, a new
// list moves new connections.
TEST_P(MirrorPoolClock, ReResolvesWithTheInjectedResolver) {
  Mirror a(GetParam(), true);
  Mirror b(GetParam(), true);
  std::atomic<int> mode{0};  // 0: a, 1: b, 2: fails
  MirrorPoolOptions o = options(a.address());
  o.target = "mirror.test:80";
  o.resolveInterval = std::chrono::milliseconds(500);
  o.resolve = [&](const std::string& hostPort) {
    EXPECT_EQ(hostPort, "mirror.test:80");
    ResolveResult r;
    if (mode == 2) {
      r.error = "cannot resolve";
    } else {
      r.addrs = {mode == 0 ? a.address() : b.address()};
    }
    return r;
  };
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const MirrorStats& s = pool.stats();
  auto resolveOnce = [&] {
    const uint64_t before = get(s.resolves);
    advance(clock_, pool, 499ms);
    EXPECT_EQ(get(s.resolves), before) << "resolved before the interval";
    advance(clock_, pool, 1ms);
    ASSERT_TRUE(waitFor([&] { return get(s.resolves) == before + 1; }));
    settle(pool);
  };
  resolveOnce();
  EXPECT_EQ(get(s.addressChanges), 0u);
  mode = 2;
  resolveOnce();
  EXPECT_EQ(get(s.resolveErrors), 1u);
  ASSERT_TRUE(pool.submit(a.request(0)));
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 1; }));
  mode = 1;
  resolveOnce();
  EXPECT_EQ(get(s.addressChanges), 1u);
  ASSERT_TRUE(waitFor([&] { return pool.stats().openConnections.load() == 0; })) << "the idle connection to a stays";
  ASSERT_TRUE(pool.submit(b.request(1)));
  ASSERT_TRUE(waitFor([&] { return get(s.responses) == 2; }));
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(a.requests(), 1u);
  EXPECT_EQ(b.requests(), 1u);
  expectOutcomesAddUp(s);
}

}  // namespace
}  // namespace shadowtap::replay
