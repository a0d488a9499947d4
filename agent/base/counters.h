#pragma once

#include <atomic>
#include <cstdint>

namespace shadowtap::base {

// Stage counters are relaxed atomics: written by one thread (or a few), read by
// the metrics scrape and the summary, which need no ordering with anything.
inline void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }
inline void bump(std::atomic<int64_t>& gauge, int64_t n) { gauge.fetch_add(n, std::memory_order_relaxed); }
inline void subtract(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_sub(n, std::memory_order_relaxed); }
template <typename T>
T load(const std::atomic<T>& value) {
  return value.load(std::memory_order_relaxed);
}

}  // namespace shadowtap::base
