#include "capture/ring_reader.h"

#include <bpf/libbpf.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include <chrono>

#include "base/clock.h"
#include "base/counters.h"
#include "base/rate_limited_log.h"
#include "capture/record_decoder.h"

namespace shadowtap::capture {
namespace {

// What onRecord returns once consume()'s budget is spent. libbpf (1.1 as later
// ones) then stores the consumer position past that record, which the callback
// has handled, and ring_buffer__consume returns this value: the records after
// it stay in the ring for the next consume(). Not an error.
constexpr int kBudgetSpent = -EAGAIN;

// How often a ring's TLS coverage tracker judges its connections.
constexpr uint64_t kJudgeEveryNs = 500'000'000;

// A TLS connection on the wire whose plaintext never came: named in the log
// (at most one line per 10 s per ring thread; the metrics count every one).
void logTlsMissed(const model::FlowKey& key, TlsCoverage::Missed why) {
  thread_local base::RateLimitedLog limit;
  uint64_t suppressed = 0;
  if (!limit.allow(std::chrono::steady_clock::now(), suppressed)) {
    return;
  }
  if (why == TlsCoverage::Missed::kNoPlaintext) {
    spdlog::warn("--tls: TLS connection {} on the wire, but no plaintext from the probed libssl: the server uses "
                 "another TLS library (statically linked: Go's crypto/tls, BoringSSL in Envoy, Node's bundled "
                 "OpenSSL) or another libssl file (--tls-library) ({} more not logged)",
                 key.toString(), suppressed);
  } else {
    spdlog::warn("--tls: TLS connection {} on the wire was established before the probes were attached: its "
                 "plaintext is not read ({} more not logged)",
                 key.toString(), suppressed);
  }
}

}  // namespace

uint32_t nextPollIntervalUs(int consumed, uint32_t currentUs, const PollPacing& pacing) {
  // Poll fast while records flow; back off (doubling) while the ring is quiet.
  // The kernel forces a wakeup anyway once its wakeup threshold is waiting.
  const uint32_t base = std::max<uint32_t>(pacing.pollIntervalUs, 100);
  const uint32_t idle = std::max(base, pacing.idlePollIntervalUs);
  return consumed > 0 ? base : std::min<uint32_t>(currentUs * 2, idle);
}

int addConsumed(int sofar, int ring) {
  if (sofar < 0) {
    return sofar;
  }
  return ring < 0 ? ring : sofar + ring;
}

RingReader::RingReader(int ringFd, const PollPacing& pacing, CaptureStats& stats)
    : ringFd_(ringFd), pacing_(pacing), stats_(stats) {}

RingReader::~RingReader() {
  if (ring_) {
    ring_buffer__free(ring_);
  }
}

std::unique_ptr<RingReader> RingReader::open(int eventsFd, const PollPacing& pacing, CaptureStats& stats,
                                             std::string* error, bool tlsCoverage) {
  auto reader = std::unique_ptr<RingReader>(new RingReader(eventsFd, pacing, stats));
  if (tlsCoverage) {
    reader->coverage_ = std::make_unique<TlsCoverage>(stats.tlsCoverage, &logTlsMissed);
  }
  reader->ring_ = ring_buffer__new(eventsFd, &RingReader::onRecord, reader.get(), nullptr);
  if (!reader->ring_) {
    *error = std::string("cannot open the ring buffer: ") + std::strerror(errno);
    return nullptr;
  }
  reader->timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!reader->timer_.valid()) {
    *error = std::string("cannot set up the capture's event sources: ") + std::strerror(errno);
    return nullptr;
  }
  if (pacing.adaptive) {
    reader->setTimer(pacing.pollIntervalUs);
  }
  return reader;
}

void RingReader::setTimer(uint32_t us) {
  if (us == intervalUs_) {
    return;
  }
  intervalUs_ = us;
  itimerspec its{};
  its.it_interval.tv_sec = us / 1000000;
  its.it_interval.tv_nsec = static_cast<long>(us % 1000000) * 1000;
  its.it_value = its.it_interval;
  timerfd_settime(timer_.get(), 0, &its, nullptr);
}

int RingReader::consume(SegmentSink& sink) {
  base::bump(stats_.polls);
  uint64_t expirations = 0;
  [[maybe_unused]] ssize_t r = read(timer_.get(), &expirations, sizeof(expirations));
  sink_ = &sink;
  taken_ = 0;
  const int got = ring_buffer__consume(ring_);
  sink_ = nullptr;
  const int n = got == kBudgetSpent ? taken_ : got;
  if (coverage_) {
    const uint64_t now = base::monotonicNs();
    if (now - lastJudgeNs_ >= kJudgeEveryNs) {
      lastJudgeNs_ = now;
      coverage_->judge(now);
    }
  }
  if (n <= 0) {
    base::bump(stats_.emptyPolls);
  }
  if (pacing_.adaptive) {
    setTimer(nextPollIntervalUs(n, intervalUs_, pacing_));
  }
  return n;
}

void RingReader::deliver(void* data, size_t size) {
  base::bump(stats_.records);
  flow::Segment seg;
  if (!decodeRecord(data, size, &seg)) {
    base::bump(stats_.badRecords);
    return;
  }
  if (seg.fromServer) {
    base::bump(stats_.fromServerRecords);
  }
  base::bump(stats_.payloadBytes, seg.payload.size());
  if (coverage_) {
    coverage_->observe(seg);
  }
  if (sink_) {
    sink_->onSegment(seg);
  }
}

// Every record counts against the budget, a bad one too: it costs a read.
int RingReader::onRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingReader*>(ctx);
  self->deliver(data, size);
  return ++self->taken_ < kConsumeBudget ? 0 : kBudgetSpent;
}

}  // namespace shadowtap::capture
