#include "replay/request_queue.h"

#include <bit>
#include <cstdint>

namespace shadowtap::replay {
namespace {

size_t fieldsBytes(const std::vector<model::HeaderField>& fields) {
  size_t n = 0;
  for (const model::HeaderField& f : fields) {
    n += f.name.size() + f.value.size();
  }
  return n;
}

// A producer that finds its cell still held by a consumer of the previous lap
// (possible only while a drop-oldest producer and the loop both pop) spins at
// most this often, then gives up rather than wait.
constexpr int kMaxSpins = 1024;

}  // namespace

size_t queuedBytes(const model::Request& request) {
  if (!request.isHttp2()) {
    return request.bytes.size();
  }
  return fieldsBytes(request.headers) + request.body.size() + fieldsBytes(request.trailers);
}

RequestQueue::RequestQueue(size_t capacity, size_t maxBytes)
    : capacity_(capacity == 0 ? 1 : capacity), maxBytes_(maxBytes) {
  const size_t ring = std::bit_ceil(capacity_);
  mask_ = ring - 1;
  cells_ = std::make_unique<Cell[]>(ring);
  for (size_t i = 0; i < ring; ++i) {
    cells_[i].seq.store(i, std::memory_order_relaxed);
  }
}

RequestQueue::~RequestQueue() = default;

bool RequestQueue::tryPush(model::Request& request, size_t bytes) {
  if (count_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
    count_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes > maxBytes_) {
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    count_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  size_t pos = enqueuePos_.load(std::memory_order_relaxed);
  Cell* cell = nullptr;
  for (int spins = 0;;) {
    cell = &cells_[pos & mask_];
    const size_t seq = cell->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
    if (diff == 0) {
      if (enqueuePos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        break;
      }
    } else {
      if (diff < 0 && ++spins > kMaxSpins) {
        bytes_.fetch_sub(bytes, std::memory_order_relaxed);
        count_.fetch_sub(1, std::memory_order_relaxed);
        return false;
      }
      pos = enqueuePos_.load(std::memory_order_relaxed);
    }
  }
  cell->request = std::move(request);
  cell->bytes = bytes;
  cell->seq.store(pos + 1, std::memory_order_release);
  return true;
}

bool RequestQueue::tryPop(model::Request& out, size_t& bytes) {
  size_t pos = dequeuePos_.load(std::memory_order_relaxed);
  Cell* cell = nullptr;
  for (;;) {
    cell = &cells_[pos & mask_];
    const size_t seq = cell->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
    if (diff == 0) {
      if (dequeuePos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        break;
      }
    } else if (diff < 0) {
      return false;  // empty, or the next request is still being written
    } else {
      pos = dequeuePos_.load(std::memory_order_relaxed);
    }
  }
  out = std::move(cell->request);
  cell->request = model::Request{};
  bytes = cell->bytes;
  cell->seq.store(pos + mask_ + 1, std::memory_order_release);
  bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  count_.fetch_sub(1, std::memory_order_release);
  return true;
}

bool RequestQueue::ready() const {
  const size_t pos = dequeuePos_.load(std::memory_order_relaxed);
  return cells_[pos & mask_].seq.load(std::memory_order_acquire) == pos + 1;
}

}  // namespace shadowtap::replay
