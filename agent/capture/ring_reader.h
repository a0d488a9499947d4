#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "capture/capture_stats.h"
#include "capture/segment_sink.h"
#include "capture/segment_source.h"
#include "capture/tls_coverage.h"

struct ring_buffer;

namespace shadowtap::capture {

// How often the agent looks at the ring buffer when the kernel does not wake it
// on every record (adaptive wakeups): every pollIntervalUs while records flow,
// backing off (doubling) to idlePollIntervalUs while the ring is quiet.
struct PollPacing {
  bool adaptive = true;
  uint32_t pollIntervalUs = 2000;
  uint32_t idlePollIntervalUs = 50000;
};

// The poll interval after a consume() that read `consumed` records, the
// interval having been `currentUs`: the base interval (pollIntervalUs, at least
// 100 us) while records flow, else twice the current one up to the idle one.
uint32_t nextPollIntervalUs(int consumed, uint32_t currentUs, const PollPacing& pacing);

// The result of reading several rings in turn: `sofar` that of the rings read
// before, `ring` that of the next one. Records add up; an error is kept (the
// first one), not added to a later ring's records.
int addConsumed(int sofar, int ring);

// Reads the ring buffer shared by every capture program and hands each valid
// record to a SegmentSink as a Segment (decodeRecord); invalid ones are counted
// as badRecords and skipped. With adaptive wakeups, owns the poll timer too.
class RingReader final : public WorkerFeed {
 public:
  // The most records one consume() reads. libbpf's ring_buffer__consume reads
  // on while the kernel keeps writing, so under sustained overload a worker's
  // consume() never returned and its tick (flow expiry) and rule refresh
  // starved. 4096 records keep a batch large (a loop turn and a timer read per
  // 4096 records cost nothing measurable) and short: at a few microseconds a
  // record, about 10 ms, well within the worker's 100 ms tick; they are a third
  // of a 4 MiB ring of the smallest records (344 bytes each).
  static constexpr int kConsumeBudget = 4096;

  // `eventsFd`: the ring buffer map. nullptr and *error set on failure.
  // `tlsCoverage`: --tls, judge whether the TLS connections on the wire got
  // their plaintext (TlsCoverage, counted in stats.tlsCoverage).
  static std::unique_ptr<RingReader> open(int eventsFd, const PollPacing& pacing, CaptureStats& stats,
                                          std::string* error, bool tlsCoverage = false);
  ~RingReader() override;
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  // Readable when records wait, and when the poll timer fires (always readable
  // fds: both go into the capture's epoll set).
  int ringFd() const { return ringFd_; }
  int timerFd() const { return timer_.get(); }
  std::vector<int> readableFds() const override { return {ringFd_, timer_.get()}; }

  // Delivers the waiting records to `sink`, at most kConsumeBudget of them;
  // returns the number of records read (negative: the ring buffer's error).
  // Records left behind are read on the next turn: a level-triggered wait
  // (epoll without EPOLLET) returns at once for them when the kernel woke the
  // fd; records written without a wakeup (adaptive wakeups) wait at most for
  // the poll timer. Re-arms the poll timer.
  int consume(SegmentSink& sink) override;

 private:
  RingReader(int ringFd, const PollPacing& pacing, CaptureStats& stats);
  static int onRecord(void* ctx, void* data, size_t size);
  // One record: decoded, counted and handed to sink_ (a bad one only counted).
  void deliver(void* data, size_t size);
  void setTimer(uint32_t us);

  int ringFd_;
  PollPacing pacing_;
  CaptureStats& stats_;
  ring_buffer* ring_ = nullptr;
  base::Fd timer_;
  uint32_t intervalUs_ = 0;
  SegmentSink* sink_ = nullptr;  // during consume() only
  int taken_ = 0;                // records read by this consume()
  std::unique_ptr<TlsCoverage> coverage_;  // --tls only
  uint64_t lastJudgeNs_ = 0;
};

}  // namespace shadowtap::capture
