#pragma once

#include <atomic>
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

// A clock that moves only when told to. A test thread may move it while the
// code under test reads it on threads of its own (a pool's loop); what those
// threads do with the new time they find out on their next look.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(uint64_t startNs = 1'000'000'000) : now_(startNs) {}
  uint64_t nowNs() const override { return now_.load(std::memory_order_acquire); }
  void advance(uint64_t ns) { now_.fetch_add(ns, std::memory_order_acq_rel); }
  void set(uint64_t ns) { now_.store(ns, std::memory_order_release); }

 private:
  std::atomic<uint64_t> now_;
};

}  // namespace shadowtap::base
