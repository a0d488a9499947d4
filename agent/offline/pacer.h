#pragma once

#include <cstdint>

namespace shadowtap::offline {

// Time source of the offline replay, injected so pacing is tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t nowNs() = 0;  // monotonic
  virtual void sleepUntilNs(uint64_t ns) = 0;
};

class SteadyClock final : public Clock {
 public:
  uint64_t nowNs() override;
  void sleepUntilNs(uint64_t ns) override;
};

// When each recorded request is due. With speed > 0 the gaps between the
// recorded times are divided by speed (2 = twice as fast), measured from the
// first request of the pass; with speed 0 every request is due at once.
// maxRps > 0 spaces requests at least 1/maxRps apart on top of that (it
// delays, never drops). A recorded time earlier than the pass's first (files
// out of order) is due at once. A recorded gap longer than kMaxGapNs between a
// request and the latest one before it is played as kMaxGapNs: a recording
// with one absurd time (a clock set to 2200) would otherwise wait for years.
class Pacer {
 public:
  static constexpr uint64_t kMaxGapNs = 3600ULL * 1'000'000'000ULL;

  Pacer(double speed, uint32_t maxRps) : speed_(speed), maxRps_(maxRps) {}

  // Starts a pass (the first, or the next --loop) at `nowNs`.
  void startPass(uint64_t nowNs);
  // The monotonic time at which the request recorded at `recordedUnixNs` may go.
  uint64_t due(int64_t recordedUnixNs);
  // The request was sent at `nowNs` (for the max-rps spacing).
  void sent(uint64_t nowNs);

 private:
  // Recorded time since the pass's first request, less the gaps' excess over kMaxGapNs.
  uint64_t offsetOf(int64_t recordedUnixNs);

  double speed_;
  uint32_t maxRps_;
  uint64_t passStartNs_ = 0;
  bool haveFirst_ = false;
  int64_t firstRecordedNs_ = 0;
  int64_t latestRecordedNs_ = 0;
  uint64_t skippedNs_ = 0;  // this pass's gaps beyond kMaxGapNs, summed
  bool haveLast_ = false;
  uint64_t lastSentNs_ = 0;
};

}  // namespace shadowtap::offline
