// replay::Ring (--mirror-io uring): completions reach their ops, and a wait
// for a batch of completions (kernels with IORING_FEAT_MIN_TIMEOUT) reaps a
// burst in one turn yet never holds a lone completion until the loop's timeout.
#include "replay/ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace shadowtap::replay {
namespace {

struct RecvOp final : RingOp {
  char buf[64];
  int result = 0;
  int completions = 0;
  void complete(int res, uint64_t) override {
    result = res;
    ++completions;
  }
};

class RingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ring_ = Ring::open(64, &why);
    if (!ring_) {
      if (const char* ci = std::getenv("CI"); ci != nullptr && std::string(ci) == "true") {
        FAIL() << "io_uring refused under CI: " << why;
      }
      GTEST_SKIP() << "io_uring refused here: " << why;
    }
    ASSERT_EQ(ring_->enable(), 0);
    for (auto& pair : pairs_) {
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair.data()), 0);
    }
  }
  void TearDown() override {
    ring_.reset();  // cancels what is armed before the sockets close
    for (auto& pair : pairs_) {
      ::close(pair[0]);
      ::close(pair[1]);
    }
  }
  void armAll() {
    for (size_t i = 0; i < kPairs; ++i) {
      io_uring_sqe* sqe = ring_->prepare(ops_[i]);
      io_uring_prep_recv(sqe, pairs_[i][0], ops_[i].buf, sizeof(ops_[i].buf), 0);
    }
  }
  void answer(size_t i) { ASSERT_EQ(::write(pairs_[i][1], "ok", 2), 2); }
  size_t reap() {
    return ring_->reap(0, [](void*) {});
  }

  static constexpr size_t kPairs = 4;
  std::unique_ptr<Ring> ring_;
  std::array<std::array<int, 2>, kPairs> pairs_{};
  std::array<RecvOp, kPairs> ops_;
};

using Clock = std::chrono::steady_clock;

TEST_F(RingTest, ABatchedWaitReapsABurstOfCompletionsInOneTurn) {
  armAll();
  ASSERT_EQ(ring_->submitAndWait(0), 0);  // armed, nothing to read yet
  for (size_t i = 0; i < kPairs; ++i) {
    answer(i);
  }
  ASSERT_EQ(ring_->submitAndWait(5000, kPairs), 0);
  EXPECT_EQ(reap(), kPairs);
  for (const RecvOp& op : ops_) {
    EXPECT_EQ(op.completions, 1);
    EXPECT_EQ(op.result, 2);
    EXPECT_EQ(std::string(op.buf, 2), "ok");
  }
  EXPECT_EQ(ring_->inFlight(), 0u);
}

TEST_F(RingTest, ABatchedWaitDoesNotHoldALoneCompletionUntilTheTimeout) {
  armAll();
  ASSERT_EQ(ring_->submitAndWait(0), 0);
  answer(2);
  const auto start = Clock::now();
  ASSERT_EQ(ring_->submitAndWait(5000, kPairs), 0);  // expects 4, only 1 comes
  const auto waited = Clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(2)) << "the lone completion waited for the loop's timeout";
  if (ring_->batchesWaits()) {
    // The kernel gave the other three kBatchWaitUs to come before returning.
    EXPECT_GE(waited, std::chrono::microseconds(Ring::kBatchWaitUs / 2));
  }
  EXPECT_EQ(reap(), 1u);
  EXPECT_EQ(ops_[2].completions, 1);
  EXPECT_EQ(ops_[0].completions + ops_[1].completions + ops_[3].completions, 0);
  EXPECT_EQ(ring_->inFlight(), kPairs - 1);
}

TEST_F(RingTest, ABatchedWaitWithNothingToReapEndsAtItsTimeout) {
  armAll();
  const auto start = Clock::now();
  ASSERT_EQ(ring_->submitAndWait(50, kPairs), 0);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(reap(), 0u);
  EXPECT_GE(waited, std::chrono::milliseconds(40));
  EXPECT_LT(waited, std::chrono::seconds(2));
  answer(0);  // the armed receives still work after a timed-out wait
  ASSERT_EQ(ring_->submitAndWait(5000), 0);
  EXPECT_EQ(reap(), 1u);
  EXPECT_EQ(ops_[0].result, 2);
}

TEST_F(RingTest, SendsInFlightCountsTheSendsAPoolWaitsForNotTheReceives) {
  // A pool waits for its requests' answers and for the sends not yet taken
  // (MirrorPool::waitRing): only ops marked isSend count, until they complete.
  armAll();
  struct SendOp final : RingOp {
    int result = 0;
    void complete(int res, uint64_t) override { result = res; }
  };
  std::array<SendOp, kPairs> sends;
  for (size_t i = 0; i < kPairs; ++i) {
    sends[i].isSend = true;
    io_uring_sqe* sqe = ring_->prepare(sends[i]);
    io_uring_prep_send(sqe, pairs_[i][1], "ping", 4, MSG_NOSIGNAL);
  }
  EXPECT_EQ(ring_->sendsInFlight(), kPairs);
  EXPECT_EQ(ring_->inFlight(), 2 * kPairs);
  // Each send reaches the peer, whose armed receive completes too.
  ASSERT_EQ(ring_->submitAndWait(5000, 2 * kPairs), 0);
  size_t reaped = reap();
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (reaped < 2 * kPairs && Clock::now() < deadline) {
    ASSERT_EQ(ring_->submitAndWait(100, 2 * kPairs - reaped), 0);
    reaped += reap();
  }
  EXPECT_EQ(reaped, 2 * kPairs);
  EXPECT_EQ(ring_->sendsInFlight(), 0u);
  EXPECT_EQ(ring_->inFlight(), 0u);
  for (size_t i = 0; i < kPairs; ++i) {
    EXPECT_EQ(sends[i].result, 4);
    EXPECT_EQ(std::string(ops_[i].buf, 4), "ping");
  }
}

}  // namespace
}  // namespace shadowtap::replay
