// RingReader::consume() over a real ring buffer, its records written by the
// capture program run through bpf_prog_test_run_opts (root; skip without it,
// fail under CI=true). libbpf's ring_buffer__consume alone reads until the ring
// is empty, however long the producer keeps it from being so; consume() must
// return after its budget, and what it left must keep the ring fd readable for
// the worker's level-triggered epoll.

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "base/fd.h"
#include "capture/ring_reader.h"
#include "capture_fixture.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint16_t kPort = 8080;
constexpr uint32_t kRuleId = 7;
constexpr int kBudget = capture::RingReader::kConsumeBudget;
const Ip4Addr kClient{198, 18, 0, 1};
const Ip4Addr kServer{198, 19, 0, 80};
const Bytes kRequest = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n'};

// Counts segments and, `refills` times, answers one with one more packet through
// the program: the producer stays a record ahead, so the ring is never empty.
class RefillingSink final : public capture::SegmentSink {
 public:
  RefillingSink(CaptureFixture& fixture, Bytes frame, int refills)
      : fixture_(fixture), frame_(std::move(frame)), refills_(refills) {}

  void onSegment(const flow::Segment& segment) override {
    ++segments;
    EXPECT_EQ(segment.ruleId, kRuleId);
    if (refills_ > 0) {
      --refills_;
      fixture_.runUnchanged(frame_);
    }
  }

  int segments = 0;

 private:
  CaptureFixture& fixture_;
  Bytes frame_;
  int refills_;
};

class RingReaderTest : public CaptureFixture {
 protected:
  void SetUp() override {
    CaptureFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    setRule(kPort, kRuleId, ST_SAMPLE_SCALE);
    const int ringFd = bpf_map__fd(skel_->maps.st_events);
    std::string error;
    reader_ = capture::RingReader::open(ringFd, capture::PollPacing{false, 2000, 50000}, stats_, &error);
    ASSERT_NE(reader_, nullptr) << error;
    // As the worker waits: level-triggered, on the ring fd.
    epoll_ = base::Fd(epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = ringFd;
    ASSERT_EQ(epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ringFd, &ev), 0) << std::strerror(errno);
  }

  void TearDown() override {
    reader_.reset();  // before the ring's map goes with the skeleton
    CaptureFixture::TearDown();
  }

  bool ringReadable() {
    epoll_event ev{};
    return epoll_wait(epoll_.get(), &ev, 1, 0) == 1;
  }

  static Bytes frame() {
    return ethernet(kEthIpv4, ipv4(kProtoTcp, kClient, kServer,
                                   tcp(40000, kPort, 100, 5000, ST_TCP_ACK | ST_TCP_PSH, kRequest)));
  }

  capture::CaptureStats stats_;
  std::unique_ptr<capture::RingReader> reader_;
  base::Fd epoll_;
};

TEST_F(RingReaderTest, ConsumeReturnsAfterItsBudgetWhileRecordsKeepComing) {
  const int total = 3 * kBudget + 11;
  RefillingSink sink(*this, frame(), total - 1);
  runUnchanged(frame());
  ASSERT_TRUE(ringReadable());

  EXPECT_EQ(reader_->consume(sink), kBudget) << "one consume() must stop at its budget";
  EXPECT_EQ(sink.segments, kBudget);
  EXPECT_TRUE(ringReadable()) << "the records left must wake the worker again";

  int calls = 1;
  for (int n = 1; n > 0 && calls < 100; ++calls) {
    n = reader_->consume(sink);
    EXPECT_LE(n, kBudget);
  }
  EXPECT_EQ(sink.segments, total) << "every record delivered, none twice";
  EXPECT_EQ(stats_.records.load(), static_cast<uint64_t>(total));
  EXPECT_EQ(stats_.badRecords.load(), 0u);
  EXPECT_EQ(counters()[ST_CNT_RINGBUF_FULL], 0u);
  EXPECT_EQ(calls, 5) << "three full budgets, the 11 left, then one read that found the ring empty";
  EXPECT_FALSE(ringReadable());
}

TEST_F(RingReaderTest, FewerRecordsThanTheBudgetAreAllReadAtOnce) {
  RefillingSink sink(*this, frame(), 0);
  for (int i = 0; i < 5; ++i) {
    runUnchanged(frame());
  }
  EXPECT_EQ(reader_->consume(sink), 5);
  EXPECT_EQ(sink.segments, 5);
  EXPECT_FALSE(ringReadable());
  EXPECT_EQ(reader_->consume(sink), 0);
}

}  // namespace
}  // namespace shadowtap::bpftest
