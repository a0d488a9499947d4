#include "capture/ring_reader.h"

#include <bpf/libbpf.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/counters.h"
#include "capture/record_decoder.h"

namespace shadowtap::capture {

uint32_t nextPollIntervalUs(int consumed, uint32_t currentUs, const PollPacing& pacing) {
  // Poll fast while records flow; back off (doubling) while the ring is quiet.
  // The kernel forces a wakeup anyway once its wakeup threshold is waiting.
  const uint32_t base = std::max<uint32_t>(pacing.pollIntervalUs, 100);
  const uint32_t idle = std::max(base, pacing.idlePollIntervalUs);
  return consumed > 0 ? base : std::min<uint32_t>(currentUs * 2, idle);
}

RingReader::RingReader(int ringFd, const PollPacing& pacing, CaptureStats& stats)
    : ringFd_(ringFd), pacing_(pacing), stats_(stats) {}

RingReader::~RingReader() {
  if (ring_) {
    ring_buffer__free(ring_);
  }
}

std::unique_ptr<RingReader> RingReader::open(int eventsFd, const PollPacing& pacing, CaptureStats& stats,
                                             std::string* error) {
  auto reader = std::unique_ptr<RingReader>(new RingReader(eventsFd, pacing, stats));
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
  const int n = ring_buffer__consume(ring_);
  sink_ = nullptr;
  if (n <= 0) {
    base::bump(stats_.emptyPolls);
  }
  if (pacing_.adaptive) {
    setTimer(nextPollIntervalUs(n, intervalUs_, pacing_));
  }
  return n;
}

int RingReader::onRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingReader*>(ctx);
  base::bump(self->stats_.records);
  flow::Segment seg;
  if (!decodeRecord(data, size, &seg)) {
    base::bump(self->stats_.badRecords);
    return 0;
  }
  if (seg.fromServer) {
    base::bump(self->stats_.fromServerRecords);
  }
  base::bump(self->stats_.payloadBytes, seg.payload.size());
  if (self->sink_) {
    self->sink_->onSegment(seg);
  }
  return 0;
}

}  // namespace shadowtap::capture
