#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "replay/replay_job.h"

namespace shadowtap::replay {

// Bounded queue between the capture side and the replay loop: any number of
// producers, one consumer. Lock-free (a ring of sequenced cells), so a producer
// never waits on the consumer; when the job count or the byte total would pass
// its limit, tryPush fails at once and the caller keeps the job.
class JobQueue {
 public:
  JobQueue(size_t capacity, size_t maxBytes);
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Producers. On false the job is left untouched in `job`.
  bool tryPush(ReplayJob& job);

  // Consumer only. False when no job is ready.
  bool tryPop(ReplayJob& out);

  // Consumer only: the next job is fully pushed and tryPop will return it.
  bool ready() const {
    return cells_[dequeuePos_ & mask_].seq.load(std::memory_order_acquire) == dequeuePos_ + 1;
  }

  // Approximate while producers run; exact when they are quiet.
  size_t size() const { return count_.load(std::memory_order_acquire); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t capacity() const { return capacity_; }

 private:
  struct Cell {
    std::atomic<size_t> seq{0};
    ReplayJob job;
  };

  const size_t capacity_;
  const size_t maxBytes_;
  size_t mask_ = 0;
  std::unique_ptr<Cell[]> cells_;
  // Admission counters; they keep the ring from ever being overrun.
  alignas(64) std::atomic<size_t> count_{0};
  std::atomic<size_t> bytes_{0};
  alignas(64) std::atomic<size_t> enqueuePos_{0};
  alignas(64) size_t dequeuePos_ = 0;
};

}  // namespace shadowtap::replay
