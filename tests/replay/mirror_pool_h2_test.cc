// The mirror pool with h2c connections.
#include "replay/mirror_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "h2/request_edit.h"
#include "h2_test_server.h"
#include "pool_test_util.h"
#include "replay/tls_client.h"

namespace shadowtap::replay {
namespace {

using h2::rewriteAuthority;
namespace test = h2::test;
using namespace testing;

model::Request call(int i) {
  model::Request r;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "svc:9000", false},
               {":path", "/p/" + std::to_string(i), false},
               {"content-type", "application/grpc", false},
               {"te", "trailers", false},
               {"x-respond-grpc", i % 10 == 0 ? "13" : "0", false}};
  r.body = std::string(static_cast<size_t>(i % 50) * 100, 'b');
  r.finishHttp2();
  return r;
}



model::Request tagged(const std::string& path, std::vector<model::HeaderField> extra = {}, std::string body = "") {
  model::Request r;
  r.headers = {{":method", "POST", false}, {":scheme", "http", false}, {":authority", "svc:80", false},
               {":path", path, false}};
  for (auto& f : extra) {
    r.headers.push_back(std::move(f));
  }
  r.body = std::move(body);
  r.finishHttp2();
  return r;
}

std::multiset<std::string> pathsSeen(test::H2TestServer& server) {
  std::multiset<std::string> out;
  for (const model::Request& r : server.requests()) {
    out.emplace(r.target());
  }
  return out;
}

// One connection with two streams: two hanging requests fill both, so
// everything submitted afterwards waits in the pool queue until the server
// drops the connection.
MirrorPoolOptions stalledOptions(const test::H2TestServer& server) {
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 1;
  o.maxConcurrentStreams = 2;
  o.responseTimeout = std::chrono::milliseconds(120'000);  // never on a slow machine: the test releases them
  return o;
}

void stall(MirrorPool& pool, test::H2TestServer& server) {
  ASSERT_TRUE(pool.submit(tagged("/hang0", {{"x-respond-never", "1", false}})));
  ASSERT_TRUE(waitFor([&] { return server.requestCount() == 1; }));
  ASSERT_TRUE(pool.submit(tagged("/hang1", {{"x-respond-never", "1", false}})));
  ASSERT_TRUE(waitFor([&] { return server.requestCount() == 2; }));
  ASSERT_TRUE(waitFor([&] { return pool.stats().queueDepth.load() == 0 && pool.stats().inFlight.load() == 2; }));
}

void expectAddsUp(const MirrorStats& s) {
  EXPECT_EQ(s.submitted.load(), s.outcomes());
  EXPECT_EQ(s.inFlight.load(), 0);
  EXPECT_EQ(s.queueDepth.load(), 0);
}

TEST(MirrorPoolH2, MirrorsEverythingOverFewConnections) {
  test::H2TestServer server;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 3;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 600; ++i) {
    model::Request r = call(i);
    if (i % 2 == 1) {
      r.headers[1].value = "https";  // caught by the TLS probes; the mirror is cleartext
    }
    rewriteAuthority(r, "-shadow");
    ASSERT_TRUE(pool.submit(std::move(r)));
  }
  for (int i = 0; i < 500 && pool.stats().responses.load() < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pool.stop(std::chrono::milliseconds(2000));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.responses.load(), 600u);
  EXPECT_EQ(s.responses2xx.load(), 600u);
  EXPECT_EQ(s.grpcError.load(), 60u);
  EXPECT_EQ(s.grpcOk.load(), 540u);
  EXPECT_LE(s.connectionsOpened.load(), 3u);
  EXPECT_EQ(s.connectionsOpened.load(), s.connectionsClosed.load());
  expectAddsUp(s);
  EXPECT_EQ(s.latency.count.load(), 600u);
  EXPECT_GT(s.latency.sumUs.load(), 0u);
  const auto got = server.requests();
  ASSERT_EQ(got.size(), 600u);
  for (const model::Request& g : got) {
    EXPECT_EQ(g.authority(), "svc-shadow:9000");
    EXPECT_EQ(g.header(":scheme"), "http") << "the scheme of the transport to the mirror";
    const int i = std::stoi(std::string(g.target().substr(3)));
    EXPECT_EQ(g.body, call(i).body);
  }
  EXPECT_FALSE(pool.submit(call(1)));
  EXPECT_EQ(s.droppedShutdown.load(), 1u);
  expectAddsUp(s);
}

// A pool of `o` sends 3 requests; each ends as a connect error, none answered.
void expectEveryRequestAConnectError(const MirrorPoolOptions& o) {
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit(call(i)));
  }
  EXPECT_TRUE(waitFor([&] { return pool.stats().outcomes() == 3; }));
  pool.stop(std::chrono::milliseconds(100));
  EXPECT_EQ(pool.stats().errorsConnect.load(), 3u);
  EXPECT_EQ(pool.stats().responses.load(), 0u);
  expectAddsUp(pool.stats());
}

// tls=true: HTTP/2 over TLS, ALPN h2, the certificate verified against the
// CA file and the SNI name; a mirror whose certificate does not verify gets
// nothing, every request ending as a connect error.
TEST(MirrorPoolH2, OverTlsWithAlpnH2AndTheMirrorsNameVerified) {
  const test::ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const test::TlsFiles files = test::TlsFiles::selfSigned(dir.path(), "mirror.test");
  ASSERT_FALSE(files.cert.empty()) << "the openssl command is needed";
  test::H2TestServer server(100, 100, files);
  std::string error;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 2;
  o.tls = TlsClientConfig::make(true, files.cert, "mirror.test", &error);
  ASSERT_TRUE(o.tls) << error;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 50; ++i) {
    model::Request r = call(i);
    rewriteAuthority(r, "-shadow");
    ASSERT_TRUE(pool.submit(std::move(r)));
  }
  EXPECT_TRUE(waitFor([&] { return pool.stats().responses.load() == 50; }));
  pool.stop(std::chrono::milliseconds(2000));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.responses2xx.load(), 50u);
  EXPECT_EQ(s.grpcError.load(), 5u);
  expectAddsUp(s);
  const auto got = server.requests();
  ASSERT_EQ(got.size(), 50u);
  for (const model::Request& g : got) {
    EXPECT_EQ(g.authority(), "svc-shadow:9000");
    EXPECT_EQ(g.header(":scheme"), "https") << "caught as http, sent over TLS";
    EXPECT_EQ(g.body, call(std::stoi(std::string(g.target().substr(3)))).body);
  }
  const auto handshakes = server.handshakes();
  ASSERT_FALSE(handshakes.empty());
  EXPECT_LE(handshakes.size(), 2u);
  for (const auto& h : handshakes) {
    EXPECT_EQ(h.alpn, "h2");
    EXPECT_EQ(h.sni, "mirror.test");
  }

  // Verified against the system's CAs, the self-signed mirror is refused.
  MirrorPoolOptions refused = o;
  refused.tls = TlsClientConfig::make(true, "", "mirror.test", &error);
  ASSERT_TRUE(refused.tls) << error;
  expectEveryRequestAConnectError(refused);
  EXPECT_EQ(server.requestCount(), 50u) << "nothing reached the mirror without a verified certificate";
  EXPECT_TRUE(waitFor([&] { return server.failedHandshakes() >= 1; })) << "the server saw the handshake fail";

  // A TLS server that chooses no ALPN protocol does not speak HTTP/2 over TLS
  // (RFC 9113 3.2): nothing is sent to it, every request ends a connect error.
  test::TlsFiles noAlpnFiles = files;
  noAlpnFiles.alpn = false;
  test::H2TestServer http1Only(100, 100, noAlpnFiles);
  MirrorPoolOptions plain = o;
  plain.addrs = {http1Only.address()};
  expectEveryRequestAConnectError(plain);
  EXPECT_EQ(http1Only.requestCount(), 0u);
  ASSERT_FALSE(http1Only.handshakes().empty()) << "the handshake itself succeeded";
  EXPECT_EQ(http1Only.handshakes()[0].alpn, "");
}

// A mirror given by address (mirror=127.0.0.1:PORT;tls=true): no SNI, and a
// verified certificate must carry that address, not just any name a trusted
// CA signed.
TEST(MirrorPoolH2, AMirrorGivenByAddressMustHaveItOnItsCertificate) {
  const test::ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const test::TlsFiles byName = test::TlsFiles::selfSigned(dir.path(), "mirror.test");
  const test::TlsFiles byAddress = test::TlsFiles::selfSigned(dir.path(), "addressed", "IP:127.0.0.1");
  ASSERT_FALSE(byName.cert.empty() || byAddress.cert.empty()) << "the openssl command is needed";
  std::string error;
  for (const bool matches : {false, true}) {
    const test::TlsFiles& files = matches ? byAddress : byName;
    test::H2TestServer server(100, 100, files);
    MirrorPoolOptions o = h2Options();
    o.addrs = {server.address()};
    o.target = "127.0.0.1:" + std::to_string(server.port());
    o.tls = TlsClientConfig::make(true, files.cert, tlsPeer("", o.target), &error);
    ASSERT_TRUE(o.tls) << error;
    EXPECT_EQ(o.tls->serverName(), "");
    EXPECT_EQ(o.tls->address(), "127.0.0.1");
    if (!matches) {
      expectEveryRequestAConnectError(o);
      EXPECT_EQ(server.requestCount(), 0u) << "a certificate for another name is refused";
      continue;
    }
    MirrorPool pool(o);
    ASSERT_TRUE(pool.start());
    ASSERT_TRUE(pool.submit(call(1)));
    EXPECT_TRUE(waitFor([&] { return pool.stats().responses.load() == 1; }));
    pool.stop(std::chrono::milliseconds(500));
    EXPECT_EQ(server.requestCount(), 1u);
    ASSERT_EQ(server.handshakes().size(), 1u);
    EXPECT_EQ(server.handshakes()[0].sni, "") << "SNI carries names only";
  }
}

TEST(MirrorPoolH2, DeadTargetAndFullQueueAddUp) {
  sockaddr_storage dead;
  {
    test::H2TestServer gone;
    dead = gone.address();
  }
  MirrorPoolOptions o = h2Options();
  o.addrs = {dead};
  o.maxConnections = 1;
  o.queueCapacity = 50;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  size_t accepted = 0;
  for (int i = 0; i < 200; ++i) {
    accepted += pool.submit(call(i)) ? 1 : 0;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pool.stop(std::chrono::milliseconds(100));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.submitted.load(), 200u);
  EXPECT_EQ(s.queueFull.load(), 200u - accepted);
  EXPECT_GT(s.errorsConnect.load(), 0u);
  EXPECT_EQ(s.responses.load(), 0u);
  EXPECT_EQ(s.connectionsOpened.load(), 0u);
  EXPECT_EQ(s.latency.count.load(), 0u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2, StopWithoutDrainDropsInFlight) {
  test::H2TestServer server;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxConnections = 1;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 20; ++i) {
    model::Request r = call(i);
    r.headers.push_back({"x-respond-never", "1", false});
    pool.submit(std::move(r));
  }
  for (int i = 0; i < 300 && server.requestCount() < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(pool.stats().droppedShutdown.load(), 20u);
  expectAddsUp(pool.stats());
}

// Issue 21: an h2c pool uses the streams the mirror advertises (up to 1000, no
// longer 100) before it opens another connection, and opens one when they are full.
TEST(MirrorPoolH2, FillsTheAdvertisedStreamsBeforeAnotherConnection) {
  for (const uint32_t advertised : {3U, 250U}) {
    SCOPED_TRACE(advertised);
    test::H2TestServer server(advertised);
    MirrorPoolOptions o = h2Options();
    o.addrs = {server.address()};
    o.minConnections = 4;
    o.maxConnections = 4;
    o.responseTimeout = std::chrono::milliseconds(120'000);
    MirrorPool pool(o);
    ASSERT_TRUE(pool.start());
    auto hanging = [](int i) { return tagged("/h" + std::to_string(i), {{"x-respond-never", "1", false}}); };
    // The first one lets the server's SETTINGS arrive (before them nghttp2 assumes 100).
    ASSERT_TRUE(pool.submit(hanging(0)));
    ASSERT_TRUE(waitFor([&] { return server.requestCount() == 1; }));
    const int fill = static_cast<int>(advertised);
    for (int i = 1; i < fill; ++i) {
      ASSERT_TRUE(pool.submit(hanging(i)));
    }
    ASSERT_TRUE(waitFor([&] { return server.requestCount() == advertised; }));
    EXPECT_EQ(pool.stats().connectAttempts.load(), 1u) << "a second connection before the streams were full";
    ASSERT_TRUE(pool.submit(hanging(fill)));
    ASSERT_TRUE(waitFor([&] { return server.requestCount() == advertised + 1; }));
    EXPECT_EQ(pool.stats().connectAttempts.load(), 2u) << "no second connection once the advertised streams were full";
    pool.stop(std::chrono::milliseconds(0));
    expectAddsUp(pool.stats());
  }
}

// Interop with a real HTTP/2 server: nghttpd (nghttp2-server) on loopback, cleartext.
TEST(MirrorPoolH2, AgainstNghttpd) {
  const char* nghttpd = "/usr/sbin/nghttpd";
  if (access(nghttpd, X_OK) != 0) {
    GTEST_SKIP() << "nghttpd not installed (apt-get install nghttp2-server)";
  }
  const std::filesystem::path root = std::filesystem::temp_directory_path() / ("h2pool-" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  std::ofstream(root / "index.html") << std::string(70000, 'x');
  uint16_t port;
  {
    test::H2TestServer probe;  // a free loopback port
    port = probe.port();
  }
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string p = std::to_string(port);
    const std::string d = root.string();
    execl(nghttpd, "nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", d.c_str(), p.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  MirrorPoolOptions o = h2Options();
  sockaddr_storage a{};
  auto* in = reinterpret_cast<sockaddr_in*>(&a);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  in->sin_port = htons(port);
  o.addrs = {a};
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 20; ++i) {
    model::Request r;
    r.headers = {{":method", "GET", false}, {":scheme", "http", false}, {":authority", "web:80", false},
                 {":path", i % 2 ? "/index.html" : "/missing", false}};
    r.finishHttp2();
    rewriteAuthority(r, "-shadow");
    pool.submit(std::move(r));
  }
  for (int i = 0; i < 300 && pool.stats().responses.load() < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pool.stop(std::chrono::milliseconds(1000));
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(root);
  EXPECT_EQ(pool.stats().responses2xx.load(), 10u);
  EXPECT_EQ(pool.stats().responses4xx.load(), 10u);
  EXPECT_GT(pool.stats().bytesReceived.load(), 10u * 70000u);
  expectAddsUp(pool.stats());
}

// On a fake clock: the same GCRA as HTTP/1, exactly: a burst of a tenth of a
// second's worth, then one per interval.
TEST(MirrorPoolH2, MaxRpsAdmitsTheBurstAndDropsTheExcess) {
  test::H2TestServer server;
  base::FakeClock clock;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxRps = 100;  // one every 10 ms, bursts of 10
  o.clock = &clock;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  auto burst = [&pool](size_t n) {
    size_t admitted = 0;
    for (size_t i = 0; i < n; ++i) {
      admitted += pool.submit(tagged("/rate/" + std::to_string(i))) ? 1 : 0;
    }
    return admitted;
  };
  EXPECT_EQ(burst(50), 10u);
  clock.advance(9'999'999);
  EXPECT_EQ(burst(5), 0u);
  clock.advance(1);
  EXPECT_EQ(burst(5), 1u);   // each further interval lets one more in
  clock.advance(250'000'000);  // the burst allowance is back
  EXPECT_EQ(burst(50), 10u);
  EXPECT_EQ(pool.stats().droppedRateLimit.load(), 110u - 21u);
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 21; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_EQ(server.requestCount(), 21u);
  EXPECT_EQ(pool.stats().latency.count.load(), 21u);
  expectAddsUp(pool.stats());
}

TEST(MirrorPoolH2, MaxRpsBelowTenAllowsABurstOfOne) {
  test::H2TestServer server;
  base::FakeClock clock;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  o.maxRps = 10;  // one every 100 ms, burst max(1, 10/10) = 1
  o.clock = &clock;
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  size_t admitted = 0;
  for (int i = 0; i < 50; ++i) {
    admitted += pool.submit(tagged("/slow")) ? 1 : 0;
  }
  EXPECT_EQ(admitted, 1u);
  clock.advance(99'000'000);
  EXPECT_FALSE(pool.submit(tagged("/slow")));
  clock.advance(1'000'000);
  EXPECT_TRUE(pool.submit(tagged("/slow")));
  EXPECT_FALSE(pool.submit(tagged("/slow")));
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 2; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_EQ(pool.stats().droppedRateLimit.load(), 51u);
  EXPECT_EQ(pool.stats().responses.load(), 2u);
  expectAddsUp(pool.stats());
}

std::multiset<std::string> runFullQueue(DropPolicy policy) {
  test::H2TestServer server;
  MirrorPoolOptions o = stalledOptions(server);
  o.queueCapacity = 5;
  o.dropPolicy = policy;
  MirrorPool pool(o);
  EXPECT_TRUE(pool.start());
  stall(pool, server);
  size_t accepted = 0;
  for (int i = 0; i < 20; ++i) {
    accepted += pool.submit(tagged("/r" + std::to_string(i))) ? 1 : 0;
  }
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.queueDepth.load(), 5);
  if (policy == DropPolicy::kOldest) {
    EXPECT_EQ(accepted, 20u);
    EXPECT_EQ(s.droppedOldest.load(), 15u);
    EXPECT_EQ(s.queueFull.load(), 0u);
  } else {
    EXPECT_EQ(accepted, 5u);
    EXPECT_EQ(s.droppedOldest.load(), 0u);
    EXPECT_EQ(s.queueFull.load(), 15u);
  }
  server.dropConnections();  // the two hanging requests fail, the queue drains over a new connection
  EXPECT_TRUE(waitFor([&] { return s.responses.load() == 5; }));
  pool.stop(std::chrono::milliseconds(2000));
  EXPECT_EQ(s.errorsConnection.load(), 2u);
  EXPECT_EQ(s.submitted.load(), 22u);
  expectAddsUp(s);
  return pathsSeen(server);
}

TEST(MirrorPoolH2, DropOldestKeepsTheNewest) {
  const auto seen = runFullQueue(DropPolicy::kOldest);
  EXPECT_EQ(seen, (std::multiset<std::string>{"/hang0", "/hang1", "/r15", "/r16", "/r17", "/r18", "/r19"}));
}

TEST(MirrorPoolH2, DropNewestKeepsTheOldest) {
  const auto seen = runFullQueue(DropPolicy::kNewest);
  EXPECT_EQ(seen, (std::multiset<std::string>{"/hang0", "/hang1", "/r0", "/r1", "/r2", "/r3", "/r4"}));
}

TEST(MirrorPoolH2, ByteLimitAppliesTheDropPolicy) {
  for (const auto policy : {DropPolicy::kNewest, DropPolicy::kOldest}) {
    SCOPED_TRACE(policy == DropPolicy::kOldest ? "oldest" : "newest");
    test::H2TestServer server;
    MirrorPoolOptions o = stalledOptions(server);
    const size_t one = queuedBytes(tagged("/b0", {}, std::string(1000, 'x')));
    EXPECT_EQ(one, 7 + 4 + 7 + 4 + 10 + 6 + 5 + 3 + 1000u);  // names, values and body
    o.queueCapacity = 1000;
    o.queueBytes = 3 * one + one / 2;
    o.dropPolicy = policy;
    MirrorPool pool(o);
    ASSERT_TRUE(pool.start());
    stall(pool, server);
    for (int i = 0; i < 10; ++i) {
      pool.submit(tagged("/b" + std::to_string(i), {}, std::string(1000, 'x')));
    }
    const MirrorStats& s = pool.stats();
    EXPECT_EQ(s.queueDepth.load(), 3);
    EXPECT_EQ(s.queueBytes.load(), static_cast<int64_t>(3 * one));
    // Too large on its own: refused whatever the policy, and pushes nothing out.
    const uint64_t oldestBefore = s.droppedOldest.load();
    EXPECT_FALSE(pool.submit(tagged("/huge", {}, std::string(4 * one, 'h'))));
    EXPECT_EQ(s.droppedOldest.load(), oldestBefore);
    EXPECT_EQ(s.queueDepth.load(), 3);
    if (policy == DropPolicy::kOldest) {
      EXPECT_EQ(s.droppedOldest.load(), 7u);
      EXPECT_EQ(s.queueFull.load(), 1u);
    } else {
      EXPECT_EQ(s.droppedOldest.load(), 0u);
      EXPECT_EQ(s.queueFull.load(), 8u);
    }
    server.dropConnections();
    ASSERT_TRUE(waitFor([&] { return s.responses.load() == 3; }));
    pool.stop(std::chrono::milliseconds(2000));
    EXPECT_EQ(s.queueBytes.load(), 0);
    expectAddsUp(s);
    const std::multiset<std::string> want =
        policy == DropPolicy::kOldest
            ? std::multiset<std::string>{"/hang0", "/hang1", "/b7", "/b8", "/b9"}
            : std::multiset<std::string>{"/hang0", "/hang1", "/b0", "/b1", "/b2"};
    EXPECT_EQ(pathsSeen(server), want);
  }
}

TEST(MirrorPoolH2, ReResolutionMovesNewConnectionsToTheNewAddress) {
  test::H2TestServer a;
  test::H2TestServer b;
  std::atomic<int> mode{0};  // 0: resolves to a, 1: to b, 2: fails
  MirrorPoolOptions o = h2Options();
  o.addrs = {a.address()};
  o.maxConnections = 1;
  o.target = "mirror.test:80";
  o.resolveInterval = std::chrono::milliseconds(20);
  o.resolve = [&](const std::string& hostPort) {
    EXPECT_EQ(hostPort, "mirror.test:80");
    ResolveResult r;
    switch (mode.load()) {
      case 0:
        r.addrs = {a.address()};
        break;
      case 1:
        r.addrs = {b.address()};
        break;
      default:
        r.error = "cannot resolve";
        break;
    }
    return r;
  };
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const MirrorStats& s = pool.stats();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(tagged("/a1")));
  }
  ASSERT_TRUE(waitFor([&] { return s.responses.load() == 10 && s.resolves.load() >= 2; }));
  EXPECT_EQ(s.addressChanges.load(), 0u);  // the same list is no change
  mode = 2;
  ASSERT_TRUE(waitFor([&] { return s.resolveErrors.load() >= 1; }));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit(tagged("/a2")));  // a failed resolution keeps the last addresses
  }
  ASSERT_TRUE(waitFor([&] { return s.responses.load() == 15; }));
  EXPECT_EQ(a.requestCount(), 15u);
  EXPECT_EQ(s.connectionsOpened.load(), 1u);
  mode = 1;
  ASSERT_TRUE(waitFor([&] { return s.addressChanges.load() == 1; }));
  // The connection to a has nothing in flight: it is closed, and the next request opens one to b.
  ASSERT_TRUE(waitFor([&] { return s.connectionsClosed.load() == 1; }));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.submit(tagged("/b")));
  }
  ASSERT_TRUE(waitFor([&] { return s.responses.load() == 25; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_EQ(a.requestCount(), 15u);
  EXPECT_EQ(b.requestCount(), 10u);
  EXPECT_EQ(a.connections(), 1u);
  EXPECT_EQ(b.connections(), 1u);
  EXPECT_EQ(s.addressChanges.load(), 1u);
  EXPECT_EQ(s.connectionsOpened.load(), 2u);
  EXPECT_EQ(s.connectionsClosed.load(), 2u);
  EXPECT_GE(s.resolves.load(), s.resolveErrors.load() + 3);
  expectAddsUp(s);
}

// On a fake clock: the connection to the address that left the list keeps its
// stream but takes nothing new, and does not hold up a connection to the new
// address (maxConnections 1 counts only connections that stay).
TEST(MirrorPoolH2, RetiredConnectionFinishesItsStreamsFirst) {
  test::H2TestServer a;
  test::H2TestServer b;
  std::atomic<bool> moved{false};
  base::FakeClock clock;
  MirrorPoolOptions o = h2Options();
  o.addrs = {a.address()};
  o.maxConnections = 1;
  o.target = "mirror.test:80";
  o.resolveInterval = std::chrono::milliseconds(20);
  o.responseTimeout = std::chrono::milliseconds(300);
  o.clock = &clock;
  o.resolve = [&](const std::string&) {
    ResolveResult r;
    r.addrs = {moved ? b.address() : a.address()};
    return r;
  };
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  const MirrorStats& s = pool.stats();
  ASSERT_TRUE(pool.submit(tagged("/slow", {{"x-respond-never", "1", false}})));
  ASSERT_TRUE(waitFor([&] { return a.requestCount() == 1; }));
  moved = true;
  advance(clock, pool, std::chrono::milliseconds(20));
  ASSERT_TRUE(waitFor([&] { return s.addressChanges.load() == 1; }));
  ASSERT_TRUE(pool.submit(tagged("/new")));
  ASSERT_TRUE(waitFor([&] { return s.responses.load() == 1; }));
  EXPECT_EQ(b.requestCount(), 1u);
  EXPECT_EQ(s.errorsResponseTimeout.load(), 0u) << "the new address waited for the old connection";
  EXPECT_EQ(s.openConnections.load(), 2);
  // The stream on the retired connection ends its own way (here: timeout), not as a connection error.
  advance(clock, pool, std::chrono::milliseconds(300));
  ASSERT_TRUE(waitFor([&] { return s.errorsResponseTimeout.load() == 1 && s.connectionsClosed.load() == 1; }));
  pool.stop(std::chrono::milliseconds(0));
  EXPECT_EQ(s.errorsConnection.load(), 0u);
  expectAddsUp(s);
}

TEST(MirrorPoolH2, ReResolvesTheTargetWithResolveTarget) {
  test::H2TestServer a;
  test::H2TestServer b;
  MirrorPoolOptions o = h2Options();
  o.addrs = {a.address()};
  o.target = "127.0.0.1:" + std::to_string(b.port());  // resolves to b, not to the start address a
  o.resolveInterval = std::chrono::milliseconds(20);
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  ASSERT_TRUE(waitFor([&] { return pool.stats().addressChanges.load() == 1; }));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit(tagged("/x")));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().responses.load() == 5; }));
  pool.stop(std::chrono::milliseconds(1000));
  EXPECT_EQ(a.requestCount(), 0u);
  EXPECT_EQ(b.requestCount(), 5u);
  EXPECT_EQ(pool.stats().resolveErrors.load(), 0u);
  expectAddsUp(pool.stats());
}

TEST(MirrorPoolH2, LatencyCountsOnlyResponses) {
  test::H2TestServer server;
  MirrorPoolOptions o = h2Options();
  o.addrs = {server.address()};
  MirrorPool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 30; ++i) {
    pool.submit(tagged("/l", {{i % 3 == 0 ? "x-respond-reset" : "x-other", "1", false}}));
  }
  ASSERT_TRUE(waitFor([&] { return pool.stats().outcomes() == 30; }));
  pool.stop(std::chrono::milliseconds(1000));
  const MirrorStats& s = pool.stats();
  EXPECT_EQ(s.responses.load(), 20u);
  EXPECT_EQ(s.errorsReset.load(), 10u);
  EXPECT_EQ(s.latency.count.load(), 20u);
  uint64_t inBuckets = 0;
  for (const auto& b : s.latency.buckets) {
    inBuckets += b.load();
  }
  EXPECT_EQ(inBuckets, 20u);
  EXPECT_LE(s.latency.sumUs.load(), 20u * 15'000'000u);  // no observation beyond the test's own time
  expectAddsUp(s);
}

}  // namespace
}  // namespace shadowtap::replay
