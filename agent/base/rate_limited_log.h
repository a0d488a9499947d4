#pragma once

#include <chrono>
#include <cstdint>

namespace shadowtap::base {

// Lets the first event through, then at most one per interval; counts what it
// held back so the next line can say how many were suppressed. Single-threaded.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
      : interval_(interval) {}

  // True when this event should be logged; `suppressed` is then the number of
  // events held back since the last logged one.
  bool allow(std::chrono::steady_clock::time_point now, uint64_t& suppressed) {
    if (logged_ && now - last_ < interval_) {
      ++held_;
      return false;
    }
    logged_ = true;
    last_ = now;
    suppressed = held_;
    held_ = 0;
    return true;
  }

 private:
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_ = false;
  uint64_t held_ = 0;
};

}  // namespace shadowtap::base
