#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace shadowtap::replay {

// GCRA (generic cell rate algorithm) over a caller's clock: admits `perSecond`
// requests per second on average, in bursts of up to a tenth of a second's
// worth (at least one). Lock-free; any thread. 0 per second: admits everything.
class RateLimiter {
 public:
  explicit RateLimiter(uint32_t perSecond) {
    if (perSecond > 0) {
      intervalNs_ = 1'000'000'000LL / perSecond;
      const int64_t burst = std::max<int64_t>(1, perSecond / 10);
      burstNs_ = (burst - 1) * intervalNs_;
    }
  }

  bool limited() const { return intervalNs_ > 0; }

  bool admit(uint64_t nowNs) {
    if (intervalNs_ == 0) {
      return true;
    }
    const auto now = static_cast<int64_t>(nowNs);
    int64_t tat = tatNs_.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t base = std::max(tat, now);
      if (base - now > burstNs_) {
        return false;
      }
      if (tatNs_.compare_exchange_weak(tat, base + intervalNs_, std::memory_order_relaxed)) {
        return true;
      }
    }
  }

 private:
  int64_t intervalNs_ = 0;
  int64_t burstNs_ = 0;
  // The theoretical arrival time of the next request.
  std::atomic<int64_t> tatNs_{0};
};

}  // namespace shadowtap::replay
