#include "replay/request_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace shadowtap::replay {
namespace {

model::Request request(uint32_t id, size_t size) {
  model::Request r;
  r.ruleId = id;
  r.bytes.assign(size, 'x');
  return r;
}

bool push(RequestQueue& q, model::Request& r) { return q.tryPush(r, queuedBytes(r)); }

bool pop(RequestQueue& q, model::Request& out) {
  size_t bytes = 0;
  const bool ok = q.tryPop(out, bytes);
  if (ok) {
    EXPECT_EQ(bytes, queuedBytes(out));
  }
  return ok;
}

TEST(RequestQueue, FifoAndCountLimit) {
  RequestQueue q(3, 1 << 20);  // not a power of two: the limit is still exactly 3
  for (uint32_t i = 0; i < 3; ++i) {
    model::Request r = request(i, 10);
    ASSERT_TRUE(push(q, r));
  }
  model::Request extra = request(99, 10);
  EXPECT_FALSE(push(q, extra));
  EXPECT_EQ(extra.ruleId, 99u);  // a rejected request is left with the caller
  EXPECT_EQ(extra.bytes.size(), 10u);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 30u);
  model::Request out;
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(q.ready());
    ASSERT_TRUE(pop(q, out));
    EXPECT_EQ(out.ruleId, i);
  }
  EXPECT_FALSE(q.ready());
  EXPECT_FALSE(pop(q, out));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(RequestQueue, ByteLimit) {
  RequestQueue q(100, 100);
  model::Request a = request(1, 60);
  model::Request b = request(2, 60);
  model::Request c = request(3, 40);
  ASSERT_TRUE(push(q, a));
  EXPECT_FALSE(push(q, b));
  EXPECT_TRUE(push(q, c));
  EXPECT_EQ(q.bytes(), 100u);
  model::Request out;
  ASSERT_TRUE(pop(q, out));
  EXPECT_TRUE(push(q, b));
}

TEST(RequestQueue, Http2RequestsCountFieldsBodyAndTrailers) {
  model::Request r;
  r.headers = {{":method", "POST", false}, {"x-a", "12345", false}};
  r.body = std::string(100, 'b');
  r.trailers = {{"grpc-status", "0", false}};
  r.finishHttp2();
  EXPECT_EQ(queuedBytes(r), 7 + 4 + 3 + 5 + 100 + 11 + 1u);
  model::Request h1 = request(1, 77);
  EXPECT_EQ(queuedBytes(h1), 77u);
}

TEST(RequestQueue, WrapsAroundManyTimes) {
  RequestQueue q(4, 1 << 20);
  model::Request out;
  for (uint32_t i = 0; i < 1000; ++i) {
    model::Request r = request(i, i % 7);
    ASSERT_TRUE(push(q, r));
    ASSERT_TRUE(pop(q, out));
    EXPECT_EQ(out.ruleId, i);
    EXPECT_EQ(out.bytes.size(), i % 7);
  }
}

// Several producers against one consumer: every request accepted comes out
// exactly once and each producer's requests come out in its order.
TEST(RequestQueue, ManyProducersOneConsumer) {
  constexpr uint32_t kProducers = 4;
  constexpr uint32_t kPerProducer = 20000;
  RequestQueue q(64, 1 << 20);
  std::atomic<uint32_t> accepted{0};
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        model::Request r;
        r.ruleId = p;
        r.tsNs = i;
        r.bytes = "b";
        while (!push(q, r)) {
          std::this_thread::yield();
        }
        accepted.fetch_add(1);
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 0);
  uint32_t popped = 0;
  model::Request out;
  while (popped < kProducers * kPerProducer) {
    if (pop(q, out)) {
      ASSERT_LT(out.ruleId, kProducers);
      ASSERT_EQ(out.tsNs, next[out.ruleId]) << "producer " << out.ruleId;
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
  EXPECT_FALSE(pop(q, out));
  EXPECT_EQ(q.bytes(), 0u);
}

// Producers that also take the oldest out when the queue is full (drop policy
// oldest) against the loop's consumer: every request pushed comes out exactly
// once, through one consumer or the other, and the bounds hold throughout.
TEST(RequestQueue, ProducersTakingTheOldestOutWhileTheConsumerPops) {
  constexpr uint32_t kProducers = 3;
  constexpr uint32_t kPerProducer = 20000;
  RequestQueue q(16, 1 << 20);
  std::atomic<uint64_t> pushed{0};
  std::atomic<uint64_t> evicted{0};
  std::atomic<uint64_t> consumed{0};
  std::atomic<bool> producing{true};
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        model::Request r = request(p, 1 + i % 5);
        size_t bytes = queuedBytes(r);
        for (;;) {
          if (q.tryPush(r, bytes)) {
            pushed.fetch_add(1);
            break;
          }
          model::Request old;
          size_t oldBytes = 0;
          if (q.tryPop(old, oldBytes)) {
            evicted.fetch_add(1);
          }
        }
        // size() is the admission counter: a producer being refused adds one for a moment.
        EXPECT_LE(q.size(), 16u + kProducers);
      }
    });
  }
  std::thread consumer([&] {
    model::Request out;
    size_t bytes = 0;
    while (producing.load() || q.size() > 0) {
      if (q.tryPop(out, bytes)) {
        consumed.fetch_add(1);
      }
    }
  });
  for (auto& t : producers) {
    t.join();
  }
  producing = false;
  consumer.join();
  EXPECT_EQ(pushed.load(), kProducers * kPerProducer);
  EXPECT_EQ(evicted.load() + consumed.load(), pushed.load());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace shadowtap::replay
