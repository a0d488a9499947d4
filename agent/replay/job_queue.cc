#include "replay/job_queue.h"

#include <bit>
#include <cstdint>

namespace shadowtap::replay {

JobQueue::JobQueue(size_t capacity, size_t maxBytes)
    : capacity_(capacity == 0 ? 1 : capacity), maxBytes_(maxBytes) {
  size_t ring = std::bit_ceil(capacity_);
  mask_ = ring - 1;
  cells_ = std::make_unique<Cell[]>(ring);
  for (size_t i = 0; i < ring; ++i) {
    cells_[i].seq.store(i, std::memory_order_relaxed);
  }
}

JobQueue::~JobQueue() = default;

bool JobQueue::tryPush(ReplayJob& job) {
  const size_t size = job.bytes.size();
  if (count_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
    count_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (bytes_.fetch_add(size, std::memory_order_relaxed) + size > maxBytes_) {
    bytes_.fetch_sub(size, std::memory_order_relaxed);
    count_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }

  // Admission guarantees a free cell exists (the consumer releases a cell
  // before it lowers count_), so this loop only races other producers.
  size_t pos = enqueuePos_.load(std::memory_order_relaxed);
  Cell* cell = nullptr;
  for (;;) {
    cell = &cells_[pos & mask_];
    size_t seq = cell->seq.load(std::memory_order_acquire);
    auto diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
    if (diff == 0) {
      if (enqueuePos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        break;
      }
    } else {
      pos = enqueuePos_.load(std::memory_order_relaxed);
    }
  }
  cell->job = std::move(job);
  cell->seq.store(pos + 1, std::memory_order_release);
  return true;
}

bool JobQueue::tryPop(ReplayJob& out) {
  Cell& cell = cells_[dequeuePos_ & mask_];
  size_t seq = cell.seq.load(std::memory_order_acquire);
  if (seq != dequeuePos_ + 1) {
    return false;
  }
  out = std::move(cell.job);
  cell.job = ReplayJob{};
  cell.seq.store(dequeuePos_ + mask_ + 1, std::memory_order_release);
  ++dequeuePos_;
  bytes_.fetch_sub(out.bytes.size(), std::memory_order_relaxed);
  count_.fetch_sub(1, std::memory_order_release);
  return true;
}

}  // namespace shadowtap::replay
