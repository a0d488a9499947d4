#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "metrics/metrics_server.h"
#include "metrics/registry.h"

namespace shadowtap::metrics {
namespace {

// Plain HTTP/1.1 GET over a real loopback socket; returns the whole response.
std::string get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

struct FakeProbe : HealthProbe {
  std::atomic<bool> alive{true}, isReady{false};
  HealthStatus live() const override { return {alive.load(), "capture loop turned 0.1 s ago"}; }
  HealthStatus ready() const override { return {isReady.load(), isReady ? "attached to 1 interface" : "not attached"}; }
};

// A stage with one counter and one histogram, exported into a registry.
struct FakeCollector {
  std::atomic<uint64_t> requests{0};
  Registry registry;
  FakeCollector() {
    registry.add([this](base::StatsSink& out) {
      out.counter("shadowtap_test_requests_total", "Requests.", static_cast<double>(requests.load()), {{"rule", "1"}});
      const double bounds[] = {0.001, 0.01};
      const uint64_t counts[] = {2, 3, 1};
      out.histogram("shadowtap_test_latency_seconds", "Latency.", bounds, counts, 0.05, {{"rule", "1"}});
    });
  }
};

TEST(MetricsServer, ServesCountersReadAtScrapeTime) {
  FakeProbe probe;
  FakeCollector collector;
  std::string error;
  auto server = MetricsServer::start("127.0.0.1:0", probe, collector.registry, &error);
  ASSERT_TRUE(server) << error;
  ASSERT_GT(server->port(), 0);

  collector.requests = 41;
  std::string body = get(server->port(), "/metrics");
  EXPECT_NE(body.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(body.find("shadowtap_test_requests_total{rule=\"1\"} 41"), std::string::npos) << body;
  collector.requests = 42;
  body = get(server->port(), "/metrics");
  EXPECT_NE(body.find("shadowtap_test_requests_total{rule=\"1\"} 42"), std::string::npos) << body;
  // Cumulative buckets: 2, 2+3, 2+3+1.
  EXPECT_NE(body.find("shadowtap_test_latency_seconds_bucket{rule=\"1\",le=\"0.001\"} 2"), std::string::npos) << body;
  EXPECT_NE(body.find("shadowtap_test_latency_seconds_bucket{rule=\"1\",le=\"0.01\"} 5"), std::string::npos) << body;
  EXPECT_NE(body.find("shadowtap_test_latency_seconds_bucket{rule=\"1\",le=\"+Inf\"} 6"), std::string::npos) << body;
  EXPECT_NE(body.find("shadowtap_test_latency_seconds_count{rule=\"1\"} 6"), std::string::npos) << body;

  // /stats: the same counters as one JSON object.
  body = get(server->port(), "/stats");
  EXPECT_NE(body.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(body.find("application/json"), std::string::npos);
  EXPECT_NE(body.find(R"("shadowtap_test_requests_total":{"type":"counter","help":"Requests.","samples":[{"labels":{"rule":"1"},"value":42.0}]})"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("count":6.0,"sum":0.05,"buckets":[[0.001,2],[0.01,3],["+Inf",1]])"), std::string::npos) << body;
}

TEST(MetricsServer, HealthAndReadinessFollowTheProbe) {
  FakeProbe probe;
  FakeCollector collector;
  std::string error;
  auto server = MetricsServer::start("127.0.0.1:0", probe, collector.registry, &error);
  ASSERT_TRUE(server) << error;

  EXPECT_NE(get(server->port(), "/healthz").find("HTTP/1.1 200"), std::string::npos);
  std::string ready = get(server->port(), "/readyz");
  EXPECT_NE(ready.find("HTTP/1.1 503"), std::string::npos) << ready;
  EXPECT_NE(ready.find("not attached"), std::string::npos) << ready;
  probe.isReady = true;
  EXPECT_NE(get(server->port(), "/readyz").find("HTTP/1.1 200"), std::string::npos);
  probe.alive = false;
  EXPECT_NE(get(server->port(), "/healthz").find("HTTP/1.1 503"), std::string::npos);
}

TEST(MetricsServer, UnusableAddressIsAClearError) {
  FakeProbe probe;
  FakeCollector collector;
  std::string error;
  auto first = MetricsServer::start("127.0.0.1:0", probe, collector.registry, &error);
  ASSERT_TRUE(first);
  auto second =
      MetricsServer::start("127.0.0.1:" + std::to_string(first->port()), probe, collector.registry, &error);
  EXPECT_FALSE(second);
  EXPECT_NE(error.find("--metrics-address"), std::string::npos) << error;
}

}  // namespace
}  // namespace shadowtap::metrics
