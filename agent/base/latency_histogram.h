#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace shadowtap::base {

// Fixed-bucket histogram of durations, lock-free: one relaxed increment per
// observation. bucket[i] counts observations <= kBoundsUs[i] (not cumulative);
// the last bucket is +Inf.
struct LatencyHistogram {
  static constexpr std::array<uint64_t, 14> kBoundsUs = {500,     1000,    2500,    5000,     10000,
                                                         25000,   50000,   100000,  250000,   500000,
                                                         1000000, 2500000, 5000000, 10000000};
  std::array<std::atomic<uint64_t>, kBoundsUs.size() + 1> buckets{};
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sumUs{0};

  void observe(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) {
      ++i;
    }
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
    sumUs.fetch_add(us, std::memory_order_relaxed);
  }

  // Smallest bucket bound below which at least `q` (0-1) of the observations
  // fall; UINT64_MAX when in the +Inf bucket, 0 without observations.
  uint64_t quantileBoundUs(double q) const {
    uint64_t total = count.load(std::memory_order_relaxed);
    if (total == 0) {
      return 0;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i].load(std::memory_order_relaxed);
      if (static_cast<double>(seen) >= q * static_cast<double>(total)) {
        return i < kBoundsUs.size() ? kBoundsUs[i] : UINT64_MAX;
      }
    }
    return UINT64_MAX;
  }
};

}  // namespace shadowtap::base
