#include "replay/job_queue.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace shadowtap::replay {
namespace {

ReplayJob job(uint32_t id, size_t size) {
  ReplayJob j;
  j.ruleId = id;
  j.bytes.assign(size, 'x');
  return j;
}

TEST(JobQueue, FifoAndCountLimit) {
  JobQueue q(3, 1 << 20);  // not a power of two: the limit is still exactly 3
  for (uint32_t i = 0; i < 3; ++i) {
    ReplayJob j = job(i, 10);
    ASSERT_TRUE(q.tryPush(j));
  }
  ReplayJob extra = job(99, 10);
  EXPECT_FALSE(q.tryPush(extra));
  EXPECT_EQ(extra.ruleId, 99u);  // a rejected job is left with the caller
  EXPECT_EQ(extra.bytes.size(), 10u);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 30u);
  ReplayJob out;
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.tryPop(out));
    EXPECT_EQ(out.ruleId, i);
  }
  EXPECT_FALSE(q.tryPop(out));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(JobQueue, ByteLimit) {
  JobQueue q(100, 100);
  ReplayJob a = job(1, 60);
  ReplayJob b = job(2, 60);
  ReplayJob c = job(3, 40);
  ASSERT_TRUE(q.tryPush(a));
  EXPECT_FALSE(q.tryPush(b));
  EXPECT_TRUE(q.tryPush(c));
  EXPECT_EQ(q.bytes(), 100u);
  ReplayJob out;
  ASSERT_TRUE(q.tryPop(out));
  EXPECT_TRUE(q.tryPush(b));
}

TEST(JobQueue, WrapsAroundManyTimes) {
  JobQueue q(4, 1 << 20);
  ReplayJob out;
  for (uint32_t i = 0; i < 1000; ++i) {
    ReplayJob j = job(i, i % 7);
    ASSERT_TRUE(q.tryPush(j));
    ASSERT_TRUE(q.tryPop(out));
    EXPECT_EQ(out.ruleId, i);
    EXPECT_EQ(out.bytes.size(), i % 7);
  }
}

// Several producers against one consumer: every job accepted comes out exactly
// once and each producer's jobs come out in its order.
TEST(JobQueue, ManyProducersOneConsumer) {
  constexpr uint32_t kProducers = 4;
  constexpr uint32_t kPerProducer = 20000;
  JobQueue q(64, 1 << 20);
  std::atomic<uint32_t> accepted{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        ReplayJob j;
        j.ruleId = p;
        j.capturedNs = i;
        j.bytes = "b";
        while (!q.tryPush(j)) {
          std::this_thread::yield();
        }
        accepted.fetch_add(1);
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 0);
  uint32_t popped = 0;
  ReplayJob out;
  while (popped < kProducers * kPerProducer) {
    if (q.tryPop(out)) {
      ASSERT_LT(out.ruleId, kProducers);
      ASSERT_EQ(out.capturedNs, next[out.ruleId]) << "producer " << out.ruleId;
      ++next[out.ruleId];
      ++popped;
    } else {
      std::this_thread::yield();
    }
  }
  for (auto& t : producers) {
    t.join();
  }
  EXPECT_EQ(accepted.load(), kProducers * kPerProducer);
  EXPECT_FALSE(q.tryPop(out));
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
