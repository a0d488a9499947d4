#pragma once

#include <cstdint>

namespace shadowtap::base {

// CLOCK_MONOTONIC in nanoseconds: the one time base of the agent (capture
// timestamps, deadlines, rates).
uint64_t monotonicNs();

// Injectable time: stages that pace, time out or back off take a Clock, so
// their tests run on a FakeClock instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t nowNs() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  uint64_t nowNs() const override { return monotonicNs(); }
  // The process-wide instance, for stages given no clock.
  static const Clock& instance();
};

// A clock that moves only when told to. Not thread-safe against a concurrent
// advance(); tests advance it while the code under test is quiet.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(uint64_t startNs = 1'000'000'000) : now_(startNs) {}
  uint64_t nowNs() const override { return now_; }
  void advance(uint64_t ns) { now_ += ns; }
  void set(uint64_t ns) { now_ = ns; }

 private:
  uint64_t now_;
};

}  // namespace shadowtap::base
