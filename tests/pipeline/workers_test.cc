// Workers (#16): the split of per-rule limits, the shared max-rps, the rules
// snapshot, and a worker driven from synthetic segments picking up reloads.
#include <gtest/gtest.h>

#include <sys/eventfd.h>

#include <atomic>
#include <numeric>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/counters.h"
#include "base/fd.h"
#include "capture/ring_reader.h"
#include "replay/mirror_pool.h"
#include "rule_runtime.h"
#include "synthetic_segment.h"
#include "worker.h"
#include "worker_share.h"

namespace shadowtap {
namespace {

TEST(WorkerShare, SharesAddUpToTheTotalAndDifferByAtMostOne) {
  for (uint64_t total : {0, 1, 2, 3, 7, 16, 100, 4096, 67108864}) {
    for (uint32_t n : {1u, 2u, 3u, 4u, 7u, 64u}) {
      uint64_t sum = 0, lo = UINT64_MAX, hi = 0;
      for (uint32_t w = 0; w < n; ++w) {
        const uint64_t s = workerShare(total, n, w, 0);
        sum += s;
        lo = std::min(lo, s);
        hi = std::max(hi, s);
      }
      EXPECT_EQ(sum, total) << total << " over " << n;
      EXPECT_LE(hi - lo, 1u) << total << " over " << n;
    }
  }
}

TEST(WorkerShare, EveryWorkerGetsAtLeastTheFloor) {
  // connections=3 over 4 workers: 1, 1, 1, 1 (one more than asked, never a worker without).
  for (uint32_t w = 0; w < 4; ++w) {
    EXPECT_EQ(workerShare(3, 4, w), 1u);
  }
  EXPECT_EQ(workerShare(16, 4, 0), 4u);
  EXPECT_EQ(workerShare(17, 4, 0), 5u);
  EXPECT_EQ(workerShare(17, 4, 1), 4u);
  EXPECT_EQ(workerShare(5, 1, 0, 100), 5u) << "one worker: the limit as configured";
}

TEST(WorkerShare, AutoIsAQuarterOfTheCoresFromOneToFour) {
  EXPECT_EQ(autoWorkers(0), 1u);
  EXPECT_EQ(autoWorkers(1), 1u);
  EXPECT_EQ(autoWorkers(2), 1u);
  EXPECT_EQ(autoWorkers(7), 1u);
  EXPECT_EQ(autoWorkers(8), 2u);
  EXPECT_EQ(autoWorkers(12), 3u);
  EXPECT_EQ(autoWorkers(16), 4u);
  EXPECT_EQ(autoWorkers(128), 4u);
}

TEST(WorkerShare, AutoRunsAtMostOneWorkerPerCpuOfTheLimit) {
  EXPECT_EQ(autoWorkers(16, 1.0), 1u) << "the DaemonSet's limits.cpu: 1 on a 16-core node";
  EXPECT_EQ(autoWorkers(16, 0.5), 1u) << "at least one";
  EXPECT_EQ(autoWorkers(16, 2.5), 2u);
  EXPECT_EQ(autoWorkers(16, 8.0), 4u) << "a generous limit leaves a quarter of the cores";
  EXPECT_EQ(autoWorkers(8, 3.0), 2u);
  EXPECT_EQ(autoWorkers(128, 1e9), 4u);
  EXPECT_EQ(autoWorkers(16, std::nullopt), 4u) << "no limit";
}

TEST(WorkerShare, PoolOptionsSplitQueuesAndConnectionsAndShareTheRate) {
  replay::MirrorPoolOptions o;
  o.minConnections = 16;
  o.maxConnections = 16;
  o.queueCapacity = 4096;
  o.queueBytes = 64 << 20;
  o.maxRps = 1000;
  replay::MirrorPoolOptions one = o;
  splitPoolOptions(one, 1, 0, nullptr);
  EXPECT_EQ(one.maxConnections, 16u);
  EXPECT_EQ(one.queueCapacity, 4096u);
  EXPECT_EQ(one.queueBytes, size_t(64) << 20);
  EXPECT_EQ(one.sharedRate, nullptr);

  auto rate = std::make_shared<replay::RateLimiter>(1000);
  size_t conns = 0, queue = 0, bytes = 0;
  for (uint32_t w = 0; w < 3; ++w) {
    replay::MirrorPoolOptions mine = o;
    splitPoolOptions(mine, 3, w, rate);
    conns += mine.maxConnections;
    queue += mine.queueCapacity;
    bytes += mine.queueBytes;
    EXPECT_EQ(mine.maxRps, 1000u) << "max-rps stays the rule's: the limiter is shared";
    EXPECT_EQ(mine.sharedRate, rate);
  }
  EXPECT_EQ(conns, 16u);
  EXPECT_EQ(queue, 4096u);
  EXPECT_EQ(bytes, size_t(64) << 20);
}

TEST(WorkerShare, FlowLimitsSplitTheTotalsNotThePerConnectionOnes) {
  flow::FlowLimits l;
  l.maxFlows = 65536;
  l.maxTotalBufferBytes = 256 << 20;
  l.maxFlowBufferBytes = 4 << 20;
  const flow::FlowLimits a = splitFlowLimits(l, 4, 0);
  EXPECT_EQ(a.maxFlows, 16384u);
  EXPECT_EQ(a.maxTotalBufferBytes, size_t(64) << 20);
  EXPECT_EQ(a.maxFlowBufferBytes, size_t(4) << 20);
  l.maxTotalBufferBytes = 8 << 20;
  EXPECT_EQ(splitFlowLimits(l, 4, 3).maxTotalBufferBytes, size_t(4) << 20) << "at least one connection's buffer";
}

model::Request request(uint32_t i) {
  model::Request r;
  r.bytes = "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
  return r;
}

// Two workers' pools of one rule, one shared limiter: the rule admits its
// max-rps in total, however the requests spread over the workers.
TEST(WorkerShare, MaxRpsIsTheRulesTotalOverEveryWorkersPool) {
  base::FakeClock clock;
  auto rate = std::make_shared<replay::RateLimiter>(1000);  // bursts of 100
  std::vector<std::unique_ptr<replay::MirrorPool>> pools;
  for (uint32_t w = 0; w < 2; ++w) {
    replay::MirrorPoolOptions o;
    o.target = "mirror:80";
    o.clock = &clock;
    o.maxRps = 1000;
    splitPoolOptions(o, 2, w, rate);
    pools.push_back(std::make_unique<replay::MirrorPool>(o));
  }
  uint64_t admitted = 0;
  // One second in 10 ms steps, 40 requests offered per step (4,000/s), all on worker 0's pool.
  for (int step = 0; step < 100; ++step) {
    for (int i = 0; i < 40; ++i) {
      admitted += pools[0]->submit(request(i)) ? 1 : 0;
    }
    clock.advance(10'000'000);
  }
  EXPECT_NEAR(static_cast<double>(admitted), 1100.0, 15.0) << "one worker alone gets the whole rule's rate";
  // Now spread over both pools: still the rule's rate in total.
  uint64_t both = 0;
  for (int step = 0; step < 100; ++step) {
    for (int i = 0; i < 40; ++i) {
      both += pools[i % 2]->submit(request(i)) ? 1 : 0;
    }
    clock.advance(10'000'000);
  }
  EXPECT_NEAR(static_cast<double>(both), 1000.0, 15.0);
  EXPECT_GT(base::load(pools[1]->stats().droppedRateLimit), 0u);
}

std::shared_ptr<RuleSet> ruleSet(uint64_t generation, uint32_t workers, const std::vector<uint16_t>& ports) {
  auto set = std::make_shared<RuleSet>();
  set->generation = generation;
  set->perWorker.resize(workers);
  uint32_t id = 0;
  for (uint16_t port : ports) {
    ++id;
    if (port == 0) {  // removed by a reload
      for (uint32_t w = 0; w < workers; ++w) {
        set->perWorker[w].push_back(nullptr);
      }
      continue;
    }
    std::string error;
    auto rule = rules::parseRule("port=" + std::to_string(port), rules::RuleDefaults{}, true, &error);
    EXPECT_TRUE(rule) << error;
    for (uint32_t w = 0; w < workers; ++w) {
      set->perWorker[w].push_back(std::make_shared<RuleRuntime>(*rule, id, w));
    }
  }
  return set;
}

TEST(RuleSnapshot, ReadersSeeWholeSetsInOrderWhileReloadsPublish) {
  RuleSnapshot snapshot;
  snapshot.publish(ruleSet(1, 2, {8000}));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> ok{true};
  std::thread reader([&] {
    uint64_t seen = 0;
    std::shared_ptr<const RuleSet> held;
    while (!done.load()) {
      if (snapshot.generation() != seen) {
        held = snapshot.load();
        // A set is whole: every worker has a runtime of every rule, in order.
        ok = ok && held->generation >= seen && held->perWorker.size() == 2 &&
             held->perWorker[1].size() == held->rules() && held->find(1, 1) != nullptr;
        seen = held->generation;
      }
      reads.fetch_add(1);
    }
  });
  std::weak_ptr<const RuleSet> first = snapshot.load();
  while (reads.load() == 0) {
    std::this_thread::yield();  // the reader runs before the first reload
  }
  for (uint64_t g = 2; g <= 300; ++g) {
    std::vector<uint16_t> ports(1 + g % 5, 8000);
    snapshot.publish(ruleSet(g, 2, ports));
    std::this_thread::yield();
  }
  done = true;
  reader.join();
  EXPECT_TRUE(ok.load());
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(snapshot.generation(), 300u);
  EXPECT_EQ(snapshot.load()->rules(), 1u + 300 % 5);
  EXPECT_TRUE(first.expired()) << "a set nobody holds any more is freed";
}

// A worker driven without its thread: requests of a rule a reload has added
// are routed by the new set at once; a removed rule's are counted as unknown.
class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() {
    snapshot_.publish(ruleSet(1, 2, {8000}));
    shared_.workers = 2;
    shared_.rules = &snapshot_;
    shared_.rulesMutex = &mutex_;
    shared_.localEndpoints = &local_;
  }

  // One connection with one GET, from SYN to FIN, for rule `ruleId`.
  void connection(Worker& w, uint16_t sport, uint32_t ruleId) {
    const std::string req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    w.onSegment(testing::syntheticSegment(sport, 8000, ruleId, 999, flow::kTcpSyn));
    w.onSegment(testing::syntheticSegment(sport, 8000, ruleId, 1000, flow::kTcpAck, req));
    w.onSegment(testing::syntheticSegment(sport, 8000, ruleId, 1000 + static_cast<uint32_t>(req.size()),
                                          flow::kTcpFin | flow::kTcpAck));
  }


  RuleSnapshot snapshot_;
  std::mutex mutex_;
  replay::LocalEndpoints local_;
  WorkerShared shared_;
};

TEST_F(WorkerTest, PicksUpAReloadsRulesWithoutAnyLock) {
  Worker w(1, shared_);
  connection(w, 40000, 1);
  std::shared_ptr<const RuleSet> first = snapshot_.load();
  EXPECT_EQ(base::load(first->find(1, 1)->stats.requests), 1u);
  EXPECT_EQ(base::load(first->find(1, 1)->stats.recordOnly), 1u);
  EXPECT_EQ(base::load(first->find(0, 1)->stats.requests), 0u) << "worker 1 counts in its own runtimes only";

  // Reload: rule 1 kept (the same runtimes), rule 2 added.
  auto second = ruleSet(2, 2, {8000, 8001});
  second->perWorker[0][0] = first->perWorker[0][0];
  second->perWorker[1][0] = first->perWorker[1][0];
  snapshot_.publish(second);
  connection(w, 40001, 2);
  EXPECT_EQ(base::load(second->find(1, 2)->stats.requests), 1u) << "the new rule's first request is routed";
  connection(w, 40002, 1);
  EXPECT_EQ(base::load(first->find(1, 1)->stats.requests), 2u) << "a kept rule keeps its runtime and counters";

  // Reload: rule 1 removed.
  auto third = ruleSet(3, 2, {0, 8001});
  third->perWorker[0][1] = second->perWorker[0][1];
  third->perWorker[1][1] = second->perWorker[1][1];
  snapshot_.publish(third);
  w.tick(base::monotonicNs());  // the next tick (every 100 ms) or batch takes the new set
  connection(w, 40003, 2);
  connection(w, 40004, 1);
  EXPECT_EQ(base::load(w.stats().unknownRule), 1u);
  EXPECT_EQ(base::load(w.stats().requests), 5u);
  EXPECT_EQ(base::load(w.stats().segments), 15u);
}

// A ring left full at stop: the feed gives at most a ring's budget a call, as
// the ring reader does, and never becomes readable, so only the stop drains it.
class FullRingAtStop final : public capture::WorkerFeed {
 public:
  explicit FullRingAtStop(size_t requests) {
    segments_.push_back(testing::syntheticSegment(40100, 8000, 1, 999, flow::kTcpSyn));
    for (size_t i = 0; i < requests; ++i) {
      segments_.push_back(testing::syntheticSegment(40100, 8000, 1, 1000 + static_cast<uint32_t>(i * kReq.size()),
                                                    flow::kTcpAck, kReq));
    }
  }
  std::vector<int> readableFds() const override { return {never_.get()}; }
  int consume(capture::SegmentSink& sink) override {
    int n = 0;
    for (; next_ < segments_.size() && n < capture::RingReader::kConsumeBudget; ++next_, ++n) {
      sink.onSegment(segments_[next_]);
    }
    ++calls_;
    return n;
  }
  size_t left() const { return segments_.size() - next_; }
  int calls() const { return calls_; }

  static constexpr std::string_view kReq = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

 private:
  base::Fd never_{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::vector<flow::Segment> segments_;
  size_t next_ = 0;
  int calls_ = 0;
};

TEST_F(WorkerTest, StopReadsEverythingLeftInTheRingBeyondOneBudget) {
  constexpr size_t kRequests = 3 * capture::RingReader::kConsumeBudget + 17;
  FullRingAtStop feed(kRequests);
  Worker w(0, shared_);
  ASSERT_TRUE(w.start(feed));
  w.stop();
  EXPECT_EQ(feed.left(), 0u) << "nothing left unread in the ring";
  EXPECT_GE(feed.calls(), 5) << "four budgets' worth, then an empty read";
  EXPECT_EQ(base::load(w.stats().segments), kRequests + 1);
  EXPECT_EQ(base::load(w.stats().requests), kRequests) << "every request framed";
  EXPECT_EQ(base::load(snapshot_.load()->find(0, 1)->stats.requests), kRequests);
}

}  // namespace
}  // namespace shadowtap
