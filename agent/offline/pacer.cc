#include "offline/pacer.h"

#include <time.h>

#include <algorithm>
#include <cerrno>

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
}

uint64_t Pacer::due(int64_t recordedUnixNs) {
  uint64_t at = passStartNs_;
  if (speed_ > 0) {
    if (!haveFirst_) {
      haveFirst_ = true;
      firstRecordedNs_ = recordedUnixNs;
    }
    const int64_t offset = std::max<int64_t>(0, recordedUnixNs - firstRecordedNs_);
    at += static_cast<uint64_t>(static_cast<double>(offset) / speed_);
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
