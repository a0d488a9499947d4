// #15's end-to-end test of the Pipeline itself, without BPF or root: the real
// Pipeline (config -> rules -> workers -> routers -> mirror pools, the metrics
// registry, the reload path) built from a parsed command line, with a
// synthetic segment source in place of the kernel capture, sending to a real
// HTTP server on loopback. Bytes at the mirror are the client's with the
// shadow host; the counters the operator reads add up; a reload adds a rule.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/resource.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config_args.h"
#include "pipeline.h"
#include "summary.h"
#include "synthetic_segment.h"
#include "synthetic_source.h"
#include "test_http_server.h"

namespace shadowtap {
namespace {

using replay::testing::httpResponse;
using replay::testing::ServerAction;
using replay::testing::ServerRequest;
using replay::testing::TestHttpServer;
using testing::SyntheticSource;

constexpr size_t kMss = 1448;

Config parse(std::vector<std::string> args) { return testing::parseArgs(std::move(args)); }

// One client connection's requests as segments of at most kMss bytes, with its
// handshake and FIN, pushed into the source.
void sendConnection(SyntheticSource& source, uint16_t sport, uint16_t dport, uint32_t ruleId,
                    const std::string& stream) {
  const uint32_t isn = 1000u * sport;
  source.push(testing::syntheticSegment(sport, dport, ruleId, isn, flow::kTcpSyn));
  for (size_t off = 0; off < stream.size(); off += kMss) {
    source.push(testing::syntheticSegment(sport, dport, ruleId, isn + 1 + static_cast<uint32_t>(off),
                                          flow::kTcpAck,
                                          std::string_view(stream).substr(off, kMss)));
  }
  source.push(testing::syntheticSegment(sport, dport, ruleId, isn + 1 + static_cast<uint32_t>(stream.size()),
                                        flow::kTcpFin | flow::kTcpAck));
}

std::string request(uint16_t sport, int i, const std::string& host) {
  if (i % 3 == 2) {  // a POST whose body spans several segments
    const std::string body(3000 + i, static_cast<char>('a' + i % 26));
    return "POST /upload/" + std::to_string(sport) + "/" + std::to_string(i) + " HTTP/1.1\r\nHost: " + host +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  return "GET /items/" + std::to_string(sport) + "/" + std::to_string(i) + "?q=1 HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: pipeline-test\r\n\r\n";
}

std::string shadowed(std::string r, const std::string& host) {
  const std::string from = "Host: " + host + "\r\n";
  const size_t at = r.find(from);
  r.replace(at, from.size(), "Host: " + host.substr(0, host.find(':')) + "-shadow" +
                                 (host.find(':') == std::string::npos ? "" : host.substr(host.find(':'))) + "\r\n");
  return r;
}

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest()
      : server_([](const ServerRequest&, size_t, size_t) { return ServerAction{.response = httpResponse(200, "ok")}; }),
        mirror_("127.0.0.1:" + std::to_string(replay::testing::portOf(server_.address()))) {}
  ~PipelineTest() override { server_.stop(); }

  std::unique_ptr<Pipeline> start(const Config& config) {
    std::string error;
    auto p = Pipeline::create(config, &error, [this](const capture::CaptureOptions& o, std::string*) {
      auto s = std::make_unique<SyntheticSource>(o.workers);
      source_ = s.get();
      return s;
    });
    EXPECT_TRUE(p) << error;
    return p;
  }

  std::vector<std::string> received() {
    std::vector<std::string> got;
    for (const auto& conn : server_.requestsByConnection()) {
      got.insert(got.end(), conn.begin(), conn.end());
    }
    std::sort(got.begin(), got.end());
    return got;
  }

  TestHttpServer server_;
  const std::string mirror_;
  SyntheticSource* source_ = nullptr;
};

TEST_F(PipelineTest, SyntheticConnectionsOnTwoWorkersReachTheMirrorWithTheShadowHostAndTheCountersAddUp) {
  Config config = parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--workers", "2",
                         "--metrics-address", "off", "--summary-interval", "0"});
  auto p = start(config);
  ASSERT_TRUE(p);
  ASSERT_NE(source_, nullptr);
  const std::string host = "shop.example:8000";
  std::vector<std::string> want;
  constexpr int kConnections = 8, kPerConnection = 6;
  for (uint16_t c = 0; c < kConnections; ++c) {
    const uint16_t sport = 41000 + c;
    std::string stream;
    for (int i = 0; i < kPerConnection; ++i) {
      const std::string r = request(sport, i, host);
      stream += r;
      want.push_back(shadowed(r, host));
    }
    sendConnection(*source_, sport, 8000, 1, stream);
  }
  ASSERT_TRUE(server_.waitForRequests(want.size(), std::chrono::seconds(10)));
  p->stop();  // drains the pools: every response is counted

  std::sort(want.begin(), want.end());
  EXPECT_EQ(received(), want);
  const metrics::Snapshot s = p->counters();
  const double n = static_cast<double>(want.size());
  EXPECT_EQ(s.sum("shadowtap_requests_total", {{"rule", "1"}}), n);
  EXPECT_EQ(s.sum("shadowtap_mirror_requests_total", {{"rule", "1"}, {"outcome", "response_2xx"}}), n);
  EXPECT_EQ(s.sum("shadowtap_mirror_requests_total", {{"rule", "1"}}), n) << "no other outcome";
  EXPECT_EQ(s.sum("shadowtap_worker_requests_total"), n);
  // Both workers had connections (the ports' hash spreads the eight), and the
  // source's deliveries are the ring reader's records.
  EXPECT_EQ(s.labelValues("shadowtap_worker_requests_total", "worker").size(), 2u);
  for (const char* w : {"0", "1"}) {
    EXPECT_GT(s.sum("shadowtap_worker_requests_total", {{"worker", w}}), 0) << "worker " << w;
  }
  EXPECT_EQ(s.sum("shadowtap_capture_records_total"), static_cast<double>(source_->delivered()));
}

TEST_F(PipelineTest, AReloadAddsARuleAndItsRequestsAreMirroredWhileTheFirstRuleGoesOn) {
  Config config = parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--workers", "2",
                         "--metrics-address", "off", "--summary-interval", "0"});
  auto p = start(config);
  ASSERT_TRUE(p);
  sendConnection(*source_, 42000, 8000, 1, request(42000, 0, "a.example"));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10)));

  const Config next = parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--rule",
                             "port=9000,mirror=" + mirror_ + ",host=keep", "--workers", "2", "--metrics-address", "off",
                             "--summary-interval", "0"});
  p->setReloadSource([next](std::string*) { return std::optional<Config>(next); });
  p->reload();
  EXPECT_EQ(source_->ports(), (std::vector<uint16_t>{8000, 9000})) << "the source got the new rule set";
  // The kernel tags the new port's segments with the new rule's id (2).
  sendConnection(*source_, 42001, 9000, 2, request(42001, 1, "b.example"));
  sendConnection(*source_, 42002, 8000, 1, request(42002, 3, "a.example"));
  ASSERT_TRUE(server_.waitForRequests(3, std::chrono::seconds(10)));
  p->stop();

  std::vector<std::string> want = {shadowed(request(42000, 0, "a.example"), "a.example"),
                                   request(42001, 1, "b.example"),  // host=keep
                                   shadowed(request(42002, 3, "a.example"), "a.example")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(received(), want);
  const metrics::Snapshot s = p->counters();
  EXPECT_EQ(s.sum("shadowtap_requests_total", {{"rule", "1"}}), 2);
  EXPECT_EQ(s.sum("shadowtap_requests_total", {{"rule", "2"}}), 1);
  ASSERT_NE(s.find("shadowtap_requests_unknown_rule_total"), nullptr);
  EXPECT_EQ(s.sum("shadowtap_requests_unknown_rule_total"), 0) << "the kept rule's connection found its rule";
}

TEST_F(PipelineTest, ARequestOfARuleAReloadRemovedIsCountedAndNotMirrored) {
  const std::vector<std::string> both = {"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--rule",
                                         "port=9000,mirror=" + mirror_, "--metrics-address", "off",
                                         "--summary-interval", "0", "--workers", "1"};
  auto p = start(parse(both));
  ASSERT_TRUE(p);
  // A keep-alive connection to rule 2's port: its first request is mirrored.
  const std::string first = request(43000, 0, "c.example");
  const uint32_t isn = 777;
  source_->push(testing::syntheticSegment(43000, 9000, 2, isn, flow::kTcpSyn));
  source_->push(testing::syntheticSegment(43000, 9000, 2, isn + 1, flow::kTcpAck, first));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10)));

  const Config one = parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--metrics-address", "off",
                            "--summary-interval", "0", "--workers", "1"});
  p->setReloadSource([one](std::string*) { return std::optional<Config>(one); });
  p->reload();
  // Records the kernel copied before the reload still carry rule 2.
  const std::string second = request(43000, 1, "c.example");
  source_->push(testing::syntheticSegment(43000, 9000, 2, isn + 1 + static_cast<uint32_t>(first.size()),
                                          flow::kTcpAck, second));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (p->counters().sum("shadowtap_requests_unknown_rule_total") < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  p->stop();
  EXPECT_EQ(p->counters().sum("shadowtap_requests_unknown_rule_total"), 1);
  EXPECT_EQ(server_.requestCount(), 1u) << "the request of the removed rule is not mirrored";
}

// A reload that changes a rule (same port, new settings) gives it a new id;
// a keep-alive connection opened before it keeps the id it began with, and
// its later requests go on under the new settings instead of being lost as
// unknown_rule until the client reconnects. Twice: a successor's successor.
TEST_F(PipelineTest, AConnectionOpenAcrossReloadsThatChangeItsRuleGoesOnUnderTheNewSettings) {
  const auto rulesWith = [this](const std::string& rule2) {
    return parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--rule", rule2, "--metrics-address",
                  "off", "--summary-interval", "0", "--workers", "1"});
  };
  auto p = start(rulesWith("port=9000,mirror=" + mirror_));
  ASSERT_TRUE(p);
  const uint32_t isn = 555;
  uint32_t seq = isn + 1;
  const auto send = [&](uint32_t ruleId, int i) {
    const std::string r = request(43010, i, "c.example");
    source_->push(testing::syntheticSegment(43010, 9000, ruleId, seq, flow::kTcpAck, r));
    seq += static_cast<uint32_t>(r.size());
  };
  source_->push(testing::syntheticSegment(43010, 9000, 2, isn, flow::kTcpSyn));
  send(2, 0);
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10)));

  const auto reloadTo = [&](const Config& next) {
    p->setReloadSource([next](std::string*) { return std::optional<Config>(next); });
    p->reload();
  };
  reloadTo(rulesWith("port=9000,mirror=" + mirror_ + ",header=X-Reloaded:1"));  // rule 2 becomes rule 3
  send(3, 1);  // the kernel tags with the new id; the connection's stream keeps 2
  ASSERT_TRUE(server_.waitForRequests(2, std::chrono::seconds(10)));
  reloadTo(rulesWith("port=9000,mirror=" + mirror_ + ",header=X-Reloaded:2"));  // rule 3 becomes rule 4
  send(4, 2);
  ASSERT_TRUE(server_.waitForRequests(3, std::chrono::seconds(10)));
  p->stop();

  const auto conns = server_.requestsByConnection();
  std::vector<std::string> got;
  for (const auto& c : conns) {
    got.insert(got.end(), c.begin(), c.end());
  }
  ASSERT_EQ(got.size(), 3u);
  std::sort(got.begin(), got.end());  // by target: /items/43010/0, 1, 2
  EXPECT_EQ(got[0], shadowed(request(43010, 0, "c.example"), "c.example"));
  EXPECT_NE(got[1].find("\r\nX-Reloaded: 1\r\n"), std::string::npos) << got[1];
  EXPECT_NE(got[2].find("\r\nX-Reloaded: 2\r\n"), std::string::npos) << got[2];
  const metrics::Snapshot c = p->counters();
  EXPECT_EQ(c.sum("shadowtap_requests_unknown_rule_total"), 0);
  EXPECT_EQ(c.sum("shadowtap_requests_total", {{"rule", "2"}}), 1);
  EXPECT_EQ(c.sum("shadowtap_requests_total", {{"rule", "3"}}), 1) << "counted under the rule that sent it";
  EXPECT_EQ(c.sum("shadowtap_requests_total", {{"rule", "4"}}), 1);
}

// tls=true is the mirror's: compare mode's secondary (the primary's version,
// sent the same requests) stays cleartext with the first mirror's limits.
TEST_F(PipelineTest, TheSecondaryOfARuleWithATlsMirrorIsCleartext) {
  auto p = start(parse({"-i", "synthetic0", "--rule",
                        "port=8000,mirror=" + mirror_ + ",tls=true,tls-verify=false,compare=true,secondary=" + mirror_,
                        "--metrics-address", "off", "--summary-interval", "0", "--workers", "1"}));
  ASSERT_TRUE(p);
  const RuleRuntime& rt = *p->rules()->perWorker[0][0];
  ASSERT_NE(rt.secondary, nullptr);
  EXPECT_NE(rt.mirrors[0].replayer->options().tls, nullptr);
  EXPECT_EQ(rt.secondary->options().tls, nullptr);
  EXPECT_EQ(rt.secondary->options().maxConnections, rt.mirrors[0].replayer->options().maxConnections);
  p->stop();
}

// ... unless it has tls=true of its own: then its pools (HTTP/1 and, taking
// the HTTP/1 pool's settings, HTTP/2) go over TLS, SNI its own host.
TEST_F(PipelineTest, TheSecondaryHasItsOwnTlsKeys) {
  auto p = start(parse({"-i", "synthetic0", "--rule",
                        "port=8000,mirror=" + mirror_ + ",compare=true,secondary=localhost:" +
                            mirror_.substr(mirror_.rfind(':') + 1) + ";tls=true;tls-verify=false",
                        "--metrics-address", "off", "--summary-interval", "0", "--workers", "1"}));
  ASSERT_TRUE(p);
  const RuleRuntime& rt = *p->rules()->perWorker[0][0];
  ASSERT_NE(rt.secondary, nullptr);
  EXPECT_EQ(rt.mirrors[0].replayer->options().tls, nullptr) << "the secondary's keys are not the mirror's";
  ASSERT_NE(rt.secondary->options().tls, nullptr);
  EXPECT_EQ(rt.secondary->options().tls->serverName(), "localhost");
  EXPECT_FALSE(rt.secondary->options().tls->verify());
  p->stop();
}

// A reload that changes a compared rule (here its secondary's TLS keys, then
// a header) makes a new rule that goes on being compared, with the noise its
// predecessor learned, and with its new secondary; a compared rule a reload
// adds on new traffic is not (comparison is set up at start).
TEST_F(PipelineTest, AChangedComparedRuleGoesOnBeingComparedAfterAReload) {
  const std::string port = mirror_.substr(mirror_.rfind(':') + 1);
  const auto rulesWith = [&](const std::string& rule1, const std::string& extra) {
    std::vector<std::string> args = {"-i", "synthetic0", "--rule", rule1, "--metrics-address", "off",
                                     "--summary-interval", "0", "--workers", "2"};
    if (!extra.empty()) {
      args.insert(args.end(), {"--rule", extra});
    }
    return parse(args);
  };
  const std::string compared = "port=8000,mirror=" + mirror_ + ",compare=true,secondary=localhost:" + port;
  auto p = start(rulesWith(compared, ""));
  ASSERT_TRUE(p);
  const compare::CompareEngine* engine = p->compareEngine();
  ASSERT_NE(engine, nullptr);
  const auto runtime = [&](uint32_t id) { return p->rules()->find(1, id); };
  const auto reloadTo = [&](const Config& next) {
    p->setReloadSource([next](std::string*) { return std::optional<Config>(next); });
    p->reload();
  };
  reloadTo(rulesWith(compared + ";tls=true;tls-verify=false", ""));  // rule 1 becomes rule 2
  ASSERT_NE(runtime(2), nullptr);
  EXPECT_TRUE(runtime(2)->compared);
  EXPECT_TRUE(engine->compares(2));
  ASSERT_NE(runtime(2)->secondary, nullptr);
  EXPECT_NE(runtime(2)->secondary->options().tls, nullptr) << "the new secondary, over TLS";
  reloadTo(rulesWith(compared + ";tls=true;tls-verify=false,header=X-Reloaded:1",
                     "port=9000,mirror=" + mirror_ + ",compare=true"));  // rule 2 becomes 3; 4 is new
  ASSERT_NE(runtime(3), nullptr);
  EXPECT_TRUE(runtime(3)->compared) << "a successor's successor";
  ASSERT_NE(runtime(4), nullptr);
  EXPECT_FALSE(runtime(4)->compared) << "new traffic: mirrored, not compared";
  EXPECT_FALSE(engine->compares(4));
  p->stop();
}

// stop() is idempotent (the final summary and compare output are written
// once), and a pipeline destroyed after a reload removed a rule, without
// stop(), joins the draining pools instead of terminating the process.
TEST_F(PipelineTest, StopTwiceReportsOnceAndDestroyingAfterAReloadWithoutStopIsClean) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  {
    auto p = start(parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--metrics-address", "off",
                          "--summary-interval", "0", "--workers", "1"}));
    ASSERT_TRUE(p);
    p->stop();
    p->stop();
  }
  {
    auto p = start(parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--rule",
                          "port=9000,mirror=" + mirror_, "--metrics-address", "off", "--summary-interval", "0",
                          "--workers", "1"}));
    ASSERT_TRUE(p);
    const Config one = parse({"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_, "--metrics-address", "off",
                              "--summary-interval", "0", "--workers", "1"});
    p->setReloadSource([one](std::string*) { return std::optional<Config>(one); });
    p->reload();  // rule 2's pools drain on a thread of their own
  }  // no stop(): the destructor joins them
  spdlog::default_logger()->sinks().pop_back();
  const std::string text = log.str();
  size_t finals = 0;
  for (size_t at = text.find("final: requests:"); at != std::string::npos; at = text.find("final: requests:", at + 1)) {
    ++finals;
  }
  EXPECT_EQ(finals, 1u) << "one final summary for two stop() calls (none for the pipeline never stopped)";
}

// Two rules; a request of rule 2 (port 9000) was mirrored and answered.
class ReloadTest : public PipelineTest {
 protected:
  std::vector<std::string> args(bool withRule2) const {
    std::vector<std::string> a = {"-i", "synthetic0", "--rule", "port=8000,mirror=" + mirror_};
    if (withRule2) {
      a.insert(a.end(), {"--rule", "port=9000,mirror=" + mirror_});
    }
    a.insert(a.end(), {"--metrics-address", "off", "--summary-interval", "0", "--workers", "2"});
    return a;
  }
  // Reloads to the rules of `config`.
  static void reloadTo(Pipeline& p, const Config& config) {
    p.setReloadSource([config](std::string*) { return std::optional<Config>(config); });
    p.reload();
  }
  // The workers take a reload's rules at their next tick (every 100 ms).
  static void letWorkersTick() { std::this_thread::sleep_for(std::chrono::milliseconds(250)); }
  static size_t openDescriptors() {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                             std::filesystem::directory_iterator{}));
  }
};

TEST_F(ReloadTest, ARemovedRulesCountsStayExportedWhileItDrainsAndAfterItsRuntimesAreFreed) {
  auto p = start(parse(args(true)));
  ASSERT_TRUE(p);
  sendConnection(*source_, 43100, 9000, 2, request(43100, 0, "c.example"));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10)));
  const std::vector<std::pair<std::string, std::string>> rule2 = {{"rule", "2"}};
  for (int i = 0; i < 200 && p->counters().sum("shadowtap_mirror_requests_total", rule2) < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const metrics::Snapshot before = p->counters();
  ASSERT_EQ(before.sum("shadowtap_mirror_requests_total", {{"rule", "2"}, {"outcome", "response_2xx"}}), 1);

  reloadTo(*p, parse(args(false)));
  const metrics::Snapshot draining = p->counters();
  EXPECT_EQ(draining.sum("shadowtap_requests_total"), before.sum("shadowtap_requests_total"));
  EXPECT_EQ(draining.sum("shadowtap_mirror_requests_total", {{"rule", "2"}, {"outcome", "response_2xx"}}), 1)
      << "the removed rule's outcomes while it drains";
  EXPECT_EQ(draining.sum("shadowtap_rule_info", {{"rule", "2"}}), 0) << "no longer installed";

  letWorkersTick();
  reloadTo(*p, parse(args(false)));  // a reload lets go of what the last one removed
  {
    std::lock_guard<std::mutex> lock(p->rulesMutex());
    EXPECT_TRUE(p->retiredRules().empty()) << "the removed rule's runtimes are freed";
    EXPECT_EQ(p->removedRuleCounters().count(2), 1u);
  }
  p->stop();
  const metrics::Snapshot after = p->counters();
  EXPECT_EQ(after.sum("shadowtap_requests_total"), before.sum("shadowtap_requests_total"));
  EXPECT_EQ(after.sum("shadowtap_mirror_requests_total", {{"rule", "2"}, {"outcome", "response_2xx"}}), 1);
  EXPECT_EQ(after.sum("shadowtap_mirror_requests_total", rule2), 1) << "no other outcome for it";
  const metrics::Family* latency = after.find("shadowtap_mirror_latency_seconds");
  ASSERT_NE(latency, nullptr);
  double rule2Answers = 0;
  for (const metrics::Sample& s : latency->samples) {
    if (std::find(s.labels.begin(), s.labels.end(), std::pair<std::string, std::string>{"rule", "2"}) !=
        s.labels.end()) {
      rule2Answers += s.value;
    }
  }
  EXPECT_EQ(rule2Answers, 1) << "its latency histogram is kept too";
  const std::vector<std::string> summary = formatSummary(after);
  ASSERT_FALSE(summary.empty());
  EXPECT_EQ(summary.front().rfind("requests: 1 seen -> 1 to mirrors -> 1 answered; lost 0", 0), 0u) << summary.front();
}

TEST_F(ReloadTest, AConnectionOfAnAddedRuleThatBeginsAsTheKernelTakesTheRulesIsMirrored) {
  auto p = start(parse(args(false)));
  ASSERT_TRUE(p);
  const std::string r = request(43200, 0, "d.example");
  source_->onUpdateRules([&] {
    // The kernel tags the new port's connections with rule 2 from here on; the
    // worker frames this one before reload() returns.
    const size_t delivered = source_->delivered();
    sendConnection(*source_, 43200, 9000, 2, r);
    for (int i = 0; i < 200 && source_->delivered() < delivered + 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::string();
  });
  reloadTo(*p, parse(args(true)));
  source_->onUpdateRules(nullptr);
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10))) << "the request reached the mirror";
  p->stop();
  EXPECT_EQ(received(), std::vector<std::string>{shadowed(r, "d.example")});
  const metrics::Snapshot s = p->counters();
  EXPECT_EQ(s.sum("shadowtap_requests_unknown_rule_total"), 0);
  EXPECT_EQ(s.sum("shadowtap_requests_total", {{"rule", "2"}}), 1);
}

TEST_F(ReloadTest, AReloadTheKernelRefusesKeepsTheRulesAndLosesNothing) {
  auto p = start(parse(args(true)));
  ASSERT_TRUE(p);
  source_->onUpdateRules([] { return std::string("the rules map is full"); });
  reloadTo(*p, parse(args(false)));  // would remove rule 2
  source_->onUpdateRules(nullptr);
  EXPECT_EQ(p->rules()->rules(), 2u);
  letWorkersTick();
  sendConnection(*source_, 43300, 9000, 2, request(43300, 0, "e.example"));
  sendConnection(*source_, 43301, 8000, 1, request(43301, 1, "e.example"));
  ASSERT_TRUE(server_.waitForRequests(2, std::chrono::seconds(10))) << "both rules still mirror";
  p->stop();
  const metrics::Snapshot s = p->counters();
  EXPECT_EQ(s.sum("shadowtap_requests_unknown_rule_total"), 0);
  EXPECT_EQ(s.sum("shadowtap_mirror_requests_total", {{"outcome", "response_2xx"}}), 2);
}

TEST_F(ReloadTest, ARuleWhosePoolsCannotStartIsRefusedWithTheReload) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check probes memory through a pipe(): with no descriptor left
  // it reports every polymorphic call as one on an "invalid vptr".
  GTEST_SKIP() << "runs out of file descriptors, which the sanitizers' own checks need; runs in the plain build";
#endif
  auto p = start(parse(args(false)));
  ASSERT_TRUE(p);
  // No descriptor left for the new rule's pools (epoll, eventfd) during the reload.
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest = dup(0);
  ASSERT_GE(lowest, 0);
  close(lowest);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(lowest);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  reloadTo(*p, parse(args(true)));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(p->rules()->rules(), 1u) << "the reload was refused";
  EXPECT_EQ(source_->ports(), std::vector<uint16_t>{}) << "the kernel never got the rule";
  sendConnection(*source_, 43400, 8000, 1, request(43400, 0, "f.example"));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10))) << "rule 1 still mirrors";
  p->stop();
  EXPECT_EQ(p->counters().sum("shadowtap_mirror_requests_total", {{"outcome", "response_2xx"}}), 1);
}

TEST_F(ReloadTest, ReloadsThatAddAndRemoveARuleDoNotKeepItsDescriptors) {
  auto p = start(parse(args(false)));
  ASSERT_TRUE(p);
  const Config one = parse(args(false));
  const Config two = parse(args(true));
  const auto cycle = [&] {
    reloadTo(*p, two);
    reloadTo(*p, one);
    letWorkersTick();
  };
  for (int i = 0; i < 3; ++i) {
    cycle();
  }
  const size_t early = openDescriptors();
  constexpr int kCycles = 20;
  for (int i = 0; i < kCycles; ++i) {
    cycle();
  }
  // Each removed rule's pools held an epoll fd and an eventfd per worker: 80 here if kept.
  EXPECT_LE(openDescriptors(), early + 8) << "descriptors grow with every reload";
  {
    std::lock_guard<std::mutex> lock(p->rulesMutex());
    EXPECT_LE(p->retiredRules().size(), 2u) << "only the last removal's runtimes (one per worker) wait";
    EXPECT_EQ(p->removedRuleCounters().size(), static_cast<size_t>(kCycles + 3 - 1));
  }
  p->stop();
}

TEST_F(ReloadTest, ARuleAReloadAddsWithCompareIsMirroredAndNotKeptForComparing) {
  std::vector<std::string> a = args(false);
  a[3] += ",compare=true";  // rule 1 compares: the engine is set up at start
  auto p = start(parse(a));
  ASSERT_TRUE(p);
  std::vector<std::string> b = args(true);
  b[3] += ",compare=true";
  b[5] += ",compare=true";
  reloadTo(*p, parse(b));
  ASSERT_EQ(p->rules()->rules(), 2u);
  for (uint32_t w = 0; w < 2; ++w) {
    EXPECT_TRUE(p->rules()->find(w, 1)->compared);
    EXPECT_FALSE(p->rules()->find(w, 2)->compared) << "no comparator for a rule added by a reload";
  }
  sendConnection(*source_, 43500, 9000, 2, request(43500, 0, "g.example"));
  ASSERT_TRUE(server_.waitForRequests(1, std::chrono::seconds(10)));
  p->stop();
  EXPECT_EQ(p->counters().sum("shadowtap_mirror_requests_total", {{"rule", "2"}, {"outcome", "response_2xx"}}), 1);
}

}  // namespace
}  // namespace shadowtap
