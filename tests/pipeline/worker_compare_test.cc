// Compare mode in a Worker driven from synthetic segments: the primary's
// HTTP/1 responses (egress capture) are paired with the requests by order, so
// a request the capture lost must stop the pairing of its connection instead
// of shifting every later response onto the wrong request.
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/counters.h"
#include "base/strings.h"
#include "compare/comparator.h"
#include "compare/compare_engine.h"
#include "compare/compare_metrics.h"
#include "compare/pool_observer.h"
#include "metrics/registry.h"
#include "model/response.h"
#include "pipeline_metrics.h"
#include "replay/mirror_pool.h"
#include "rule_runtime.h"
#include "synthetic_segment.h"
#include "worker.h"

namespace shadowtap {
namespace {

constexpr uint16_t kClientPort = 40000;
constexpr uint32_t kClientIsn = 999;
constexpr uint32_t kServerIsn = 5000;

std::string getRequest(const std::string& path) { return "GET /" + path + " HTTP/1.1\r\nHost: shop\r\n\r\n"; }

std::string jsonBody(const std::string& path) { return "{\"path\":\"" + path + "\"}"; }

std::string primaryResponse(const std::string& path) {
  const std::string body = jsonBody(path);
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

model::Response mirrorResponse(const std::string& path) {
  model::Response r;
  r.status = 200;
  r.body = jsonBody(path);
  r.headers = {{"Content-Type", "application/json"}, {"Content-Length", std::to_string(r.body.size())}};
  r.bodyLength = r.body.size();
  r.bodyHash = base::fnv1a64(r.body);
  return r;
}

// A server-to-client segment of the test connection (compare mode's egress capture).
flow::Segment responseSegment(uint32_t seq, uint8_t flags, std::string_view payload = {}) {
  flow::Segment s = testing::syntheticSegment(kClientPort, 8000, 1, seq, flags, payload);
  std::swap(s.key.saddr, s.key.daddr);
  std::swap(s.key.sport, s.key.dport);
  s.fromServer = true;
  return s;
}

// One compared rule whose mirror pool is never started: the mirror's responses
// are given to the engine by the test, by exchange id.
class WorkerCompareTest : public ::testing::Test {
 protected:
  WorkerCompareTest() {
    std::string error;
    auto rule = rules::parseRule("port=8000,mirror=127.0.0.1:9,compare=true", rules::RuleDefaults{}, true, &error);
    EXPECT_TRUE(rule) << error;
    runtime_ = std::make_shared<RuleRuntime>(*rule, 1, 0);
    runtime_->compared = true;
    replay::MirrorPoolOptions o;
    o.target = "127.0.0.1:9";
    runtime_->mirrors[0].replayer = std::make_unique<replay::MirrorPool>(o);
    auto set = std::make_shared<RuleSet>();
    set->generation = 1;
    set->perWorker.resize(1);
    set->perWorker[0].push_back(runtime_);
    snapshot_.publish(set);
    std::vector<std::unique_ptr<compare::Comparator>> comparators;
    comparators.push_back(compare::Comparator::create({}, &error));
    engine_ = std::make_unique<compare::CompareEngine>(compare::EngineOptions{}, std::move(comparators), nullptr);
    shared_.rules = &snapshot_;
    shared_.rulesMutex = &mutex_;
    shared_.localEndpoints = &local_;
    shared_.engine = engine_.get();
  }

  // Keep-alive GETs /a, /b, /c in one segment each, the one at `lost` never
  // captured; the hole is given up; then the server's three responses, each
  // with the body of its request's path. The mirror answers the compared
  // exchanges (ids from 1, in order) with the body of their request.
  void run(size_t lost) {
    Worker w(0, shared_);
    w.onSegment(testing::syntheticSegment(kClientPort, 8000, 1, kClientIsn, flow::kTcpSyn));
    w.onSegment(responseSegment(kServerIsn, flow::kTcpSyn | flow::kTcpAck));
    const std::vector<std::string> paths = {"a", "b", "c"};
    uint32_t seq = kClientIsn + 1;
    std::vector<std::string> sent;
    for (size_t i = 0; i < paths.size(); ++i) {
      const std::string req = getRequest(paths[i]);
      if (i != lost) {
        w.onSegment(testing::syntheticSegment(kClientPort, 8000, 1, seq, flow::kTcpAck, req));
        sent.push_back(paths[i]);
      }
      seq += static_cast<uint32_t>(req.size());
    }
    w.tick(3'000'000'000ULL);  // past the reassembly timeout: the hole is given up
    ASSERT_EQ(base::load(w.flows().stats().gaps), lost < paths.size() ? 1u : 0u);
    const std::string responses = primaryResponse("a") + primaryResponse("b") + primaryResponse("c");
    w.onSegment(responseSegment(kServerIsn + 1, flow::kTcpAck, responses));
    for (size_t i = 0; i < sent.size(); ++i) {
      engine_->onResponse(i + 1, compare::Part::kMirror, mirrorResponse(sent[i]));
    }
    const compare::ResponsePairing* pairing = w.responsePairing();
    ASSERT_NE(pairing, nullptr);
    brokenStreams_ = base::load(pairing->stats().brokenStreams);
    metrics::Registry registry;
    registry.add([pairing](base::StatsSink& out) { compare::exportPairing(*pairing, out); });
    pairingMetrics_ = registry.collect();
    w.shutdownFlows();
  }

  // The rule's outcomes: equal, different.
  std::pair<uint64_t, uint64_t> outcomes() const {
    std::pair<uint64_t, uint64_t> n;
    engine_->stats().forEachRule([&](uint32_t, const compare::CompareCounters& c) {
      n.first += base::load(c.equal);
      n.second += base::load(c.different);
    });
    return n;
  }

  replay::LocalEndpoints local_;
  RuleSnapshot snapshot_;
  std::mutex mutex_;
  WorkerShared shared_;
  std::shared_ptr<RuleRuntime> runtime_;
  std::unique_ptr<compare::CompareEngine> engine_;
  uint64_t brokenStreams_ = 0;
  metrics::Snapshot pairingMetrics_;  // the worker's pairing, as a scrape shows it
};

TEST_F(WorkerCompareTest, ALostRequestStopsPairingInsteadOfShiftingTheResponses) {
  run(1);  // /b lost: /c must not get /b's response
  EXPECT_EQ(brokenStreams_, 1u);
  EXPECT_EQ(outcomes().second, 0u) << "no response compared with another request's";
  const compare::CompareStats& s = engine_->stats();
  EXPECT_EQ(base::load(s.exchanges), 2u);
  EXPECT_EQ(base::load(s.noPrimary), 2u) << "both exchanges of the connection end uncompared";
  EXPECT_EQ(base::load(s.compared), 0u);
  // What a scrape shows: the broken stream, and every exchange begun accounted for.
  metrics::Registry registry;
  registry.add([this](base::StatsSink& out) { compare::exportStats(*engine_, nullptr, nullptr, 0, out); });
  const metrics::Snapshot m = registry.collect();
  EXPECT_EQ(pairingMetrics_.sum("shadowtap_compare_pairing_broken_streams_total"), 1);
  EXPECT_EQ(m.sum("shadowtap_compare_exchanges_begun_total"),
            m.sum("shadowtap_compare_exchanges_total") + m.sum("shadowtap_compare_exchanges_uncompared_total") +
                m.sum("shadowtap_compare_exchanges_pending") + m.sum("shadowtap_compare_exchanges_queued"));
  EXPECT_EQ(m.sum("shadowtap_compare_late_responses_total"), 0);
  for (const char* name : {"shadowtap_compare_exchanges_queued", "shadowtap_compare_late_responses_total",
                           "shadowtap_compare_held_bytes", "shadowtap_compare_responses_over_memory_total"}) {
    EXPECT_NE(m.find(name), nullptr) << name << " is exported";
  }
  EXPECT_EQ(m.sum("shadowtap_compare_held_bytes"), 0) << "every ended exchange gave its responses back";
}

TEST_F(WorkerCompareTest, ALostFirstRequestStopsPairingToo) {
  run(0);  // the first data segment after the SYN lost: /b must not get /a's response
  EXPECT_EQ(brokenStreams_, 1u);
  EXPECT_EQ(outcomes().second, 0u) << "no response compared with another request's";
  const compare::CompareStats& s = engine_->stats();
  EXPECT_EQ(base::load(s.exchanges), 2u);
  EXPECT_EQ(base::load(s.noPrimary), 2u);
  EXPECT_EQ(base::load(s.compared), 0u);
}

TEST_F(WorkerCompareTest, AnUnbrokenStreamIsPairedInOrder) {
  run(3);  // nothing lost
  EXPECT_EQ(brokenStreams_, 0u);
  EXPECT_EQ(outcomes(), std::make_pair(uint64_t{3}, uint64_t{0}));
  EXPECT_EQ(base::load(engine_->stats().compared), 3u);
}

// A rule with a secondary whose pool drops everything (stopped): each
// exchange is compared without the secondary's response, and a scrape shows
// it twice over, as dropped for the secondary and as compared without it.
TEST_F(WorkerCompareTest, ASecondaryThatGetsNothingIsCountedAsSuch) {
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=127.0.0.1:9,compare=true,secondary=127.0.0.1:10",
                               rules::RuleDefaults{}, true, &error);
  ASSERT_TRUE(rule) << error;
  auto rt = std::make_shared<RuleRuntime>(*rule, 1, 0);
  rt->compared = true;
  replay::MirrorPoolOptions o;
  o.target = "127.0.0.1:9";
  rt->mirrors[0].replayer = std::make_unique<replay::MirrorPool>(o);
  compare::PoolObserver observer(*engine_, compare::Part::kSecondary);
  o.target = "127.0.0.1:10";
  o.observer = &observer;
  rt->secondary = std::make_unique<replay::MirrorPool>(o);
  rt->secondary->stop(std::chrono::milliseconds(0));  // takes nothing more: every submit is dropped
  auto set = std::make_shared<RuleSet>();
  set->generation = 2;
  set->perWorker.resize(1);
  set->perWorker[0].push_back(rt);
  snapshot_.publish(set);
  runtime_ = rt;
  run(3);
  const compare::CompareStats& s = engine_->stats();
  EXPECT_EQ(base::load(s.compared), 3u) << "compared without the secondary";
  EXPECT_EQ(base::load(s.noSecondary), 3u);
  metrics::Registry registry;
  registry.add([this](base::StatsSink& out) { compare::exportStats(*engine_, nullptr, nullptr, 0, out); });
  registry.add([rt](base::StatsSink& out) { exportRuleCounters(*rt, out); });
  const metrics::Snapshot m = registry.collect();
  EXPECT_EQ(m.sum("shadowtap_compare_exchanges_without_secondary_total"), 3);
  EXPECT_EQ(m.sum("shadowtap_compare_secondary_requests_total", {{"outcome", "dropped"}, {"protocol", "http1"}}), 3);
  EXPECT_EQ(m.sum("shadowtap_compare_secondary_requests_total", {{"outcome", "response"}}), 0);
  EXPECT_EQ(m.sum("shadowtap_mirror_requests_total", {{"outcome", "dropped_shutdown"}}), 0)
      << "the secondary's drops are not the mirror's";
}

}  // namespace
}  // namespace shadowtap
