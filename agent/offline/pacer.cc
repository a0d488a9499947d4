#include "offline/pacer.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "base/clock.h"

namespace shadowtap::offline {

uint64_t SteadyClock::nowNs() { return base::monotonicNs(); }

void SteadyClock::sleepUntilNs(uint64_t ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000ULL);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    // A signal (SIGINT) wakes us; the caller checks its stop flag.
    break;
  }
}

void Pacer::startPass(uint64_t nowNs) {
  passStartNs_ = nowNs;
  haveFirst_ = false;
  skippedNs_ = 0;
}

uint64_t Pacer::offsetOf(int64_t recordedUnixNs) {
  if (!haveFirst_) {
    haveFirst_ = true;
    firstRecordedNs_ = recordedUnixNs;
    latestRecordedNs_ = recordedUnixNs;
  }
  if (recordedUnixNs > latestRecordedNs_) {
    // The difference of two int64 may not fit one: do it in uint64.
    const uint64_t gap = static_cast<uint64_t>(recordedUnixNs) - static_cast<uint64_t>(latestRecordedNs_);
    if (gap > kMaxGapNs) {
      skippedNs_ += gap - kMaxGapNs;
    }
    latestRecordedNs_ = recordedUnixNs;
  }
  if (recordedUnixNs <= firstRecordedNs_) {
    return 0;
  }
  const uint64_t offset = static_cast<uint64_t>(recordedUnixNs) - static_cast<uint64_t>(firstRecordedNs_);
  return offset - std::min(offset, skippedNs_);
}

uint64_t Pacer::due(int64_t recordedUnixNs) {
  uint64_t at = passStartNs_;
  if (speed_ > 0) {
    const uint64_t offset = offsetOf(recordedUnixNs);
    // A tiny --speed stretches the gap past what uint64 holds (converting
    // such a double is undefined): clamp to the end of time instead.
    const double gap = static_cast<double>(offset) / speed_;
    const uint64_t room = std::numeric_limits<uint64_t>::max() - at;
    at += gap >= static_cast<double>(room) ? room : static_cast<uint64_t>(gap);
  }
  if (maxRps_ > 0 && haveLast_) {
    at = std::max<uint64_t>(at, lastSentNs_ + 1000000000ULL / maxRps_);
  }
  return at;
}

void Pacer::sent(uint64_t nowNs) {
  haveLast_ = true;
  lastSentNs_ = nowNs;
}

}  // namespace shadowtap::offline
