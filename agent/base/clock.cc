#include "base/clock.h"

#include <time.h>

namespace shadowtap::base {

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

const Clock& MonotonicClock::instance() {
  static const MonotonicClock clock;
  return clock;
}

}  // namespace shadowtap::base
