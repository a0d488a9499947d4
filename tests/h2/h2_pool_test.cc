#include "h2/h2_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "h2/authority_rewrite.h"
#include "h2_test_server.h"

namespace shadowtap::h2 {
namespace {

H2Request call(int i) {
  H2Request r;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "svc:9000", false},
               {":path", "/p/" + std::to_string(i), false},
               {"content-type", "application/grpc", false},
               {"te", "trailers", false},
               {"x-respond-grpc", i % 10 == 0 ? "13" : "0", false}};
  r.body = std::string(static_cast<size_t>(i % 50) * 100, 'b');
  return r;
}

void expectAddsUp(const H2PoolStats& s) {
  EXPECT_EQ(s.submitted.load(), s.outcomes());
  EXPECT_EQ(s.inFlight.load(), 0);
  EXPECT_EQ(s.queueDepth.load(), 0);
}

TEST(H2Pool, MirrorsEverythingOverFewConnections) {
  test::H2TestServer server;
  H2PoolOptions o;
  o.addrs = {server.address()};
  o.connections = 3;
  H2Pool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 600; ++i) {
    H2Request r = call(i);
    rewriteAuthority(r, "-shadow");
    ASSERT_TRUE(pool.submit(std::move(r)));
  }
  for (int i = 0; i < 500 && pool.stats().responses.load() < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pool.stop(std::chrono::milliseconds(2000));
  const H2PoolStats& s = pool.stats();
  EXPECT_EQ(s.responses.load(), 600u);
  EXPECT_EQ(s.responses2xx.load(), 600u);
  EXPECT_EQ(s.grpcError.load(), 60u);
  EXPECT_EQ(s.grpcOk.load(), 540u);
  EXPECT_LE(s.connectionsOpened.load(), 3u);
  EXPECT_EQ(s.connectionsOpened.load(), s.connectionsClosed.load());
  expectAddsUp(s);
  const auto got = server.requests();
  ASSERT_EQ(got.size(), 600u);
  for (const H2Request& g : got) {
    EXPECT_EQ(g.authority(), "svc-shadow:9000");
    const int i = std::stoi(std::string(g.path().substr(3)));
    EXPECT_EQ(g.body, call(i).body);
  }
  EXPECT_FALSE(pool.submit(call(1)));
  EXPECT_EQ(s.droppedShutdown.load(), 1u);
  expectAddsUp(s);
}

TEST(H2Pool, DeadTargetAndFullQueueAddUp) {
  sockaddr_storage dead;
  {
    test::H2TestServer gone;
    dead = gone.address();
  }
  H2PoolOptions o;
  o.addrs = {dead};
  o.connections = 1;
  o.queueCapacity = 50;
  o.client.maxQueued = 10;
  H2Pool pool(o);
  ASSERT_TRUE(pool.start());
  size_t accepted = 0;
  for (int i = 0; i < 200; ++i) {
    accepted += pool.submit(call(i)) ? 1 : 0;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pool.stop(std::chrono::milliseconds(100));
  const H2PoolStats& s = pool.stats();
  EXPECT_EQ(s.submitted.load(), 200u);
  EXPECT_EQ(s.queueFull.load(), 200u - accepted);
  EXPECT_GT(s.errorsConnect.load(), 0u);
  EXPECT_EQ(s.responses.load(), 0u);
  EXPECT_EQ(s.connectionsOpened.load(), 0u);
  expectAddsUp(s);
}

TEST(H2Pool, StopWithoutDrainDropsInFlight) {
  test::H2TestServer server;
  H2PoolOptions o;
  o.addrs = {server.address()};
  o.connections = 1;
  H2Pool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 20; ++i) {
    H2Request r = call(i);
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

// Interop with a real HTTP/2 server: nghttpd (nghttp2-server) on loopback, cleartext.
TEST(H2Pool, AgainstNghttpd) {
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
  H2PoolOptions o;
  sockaddr_storage a{};
  auto* in = reinterpret_cast<sockaddr_in*>(&a);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  in->sin_port = htons(port);
  o.addrs = {a};
  H2Pool pool(o);
  ASSERT_TRUE(pool.start());
  for (int i = 0; i < 20; ++i) {
    H2Request r;
    r.headers = {{":method", "GET", false}, {":scheme", "http", false}, {":authority", "web:80", false},
                 {":path", i % 2 ? "/index.html" : "/missing", false}};
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

}  // namespace
}  // namespace shadowtap::h2
