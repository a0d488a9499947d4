#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/request.h"

namespace shadowtap::replay {

// Bytes a queued request holds, what a queue's byte limit counts: the wire
// bytes of an HTTP/1 request; the field names and values, body and trailer
// names and values of an HTTP/2 one.
size_t queuedBytes(const model::Request& request);

// The bounded queue between the submitting threads and a pool's loop: any
// number of producers and consumers (the loop takes requests; a producer under
// drop policy oldest takes the oldest out to make room). Lock-free, a ring of
// sequenced cells (Vyukov's bounded MPMC queue) behind two admission counters,
// so a producer never waits on the loop: when the request count or the byte
// total would pass its limit, tryPush fails at once and the caller keeps the
// request. Memory: the ring's cells (capacity rounded up to a power of two,
// sizeof(model::Request) each, allocated once) plus the requests in it, at most
// `capacity` of them holding at most `maxBytes` (queuedBytes) together.
class RequestQueue {
 public:
  RequestQueue(size_t capacity, size_t maxBytes);
  ~RequestQueue();
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // `bytes` is queuedBytes(request). On false the request is left untouched.
  bool tryPush(model::Request& request, size_t bytes);
  // False when no request is ready. `bytes` is what the request was pushed with.
  bool tryPop(model::Request& out, size_t& bytes);

  // The next request is fully pushed (a tryPop now would take it, unless
  // another consumer is quicker).
  bool ready() const;

  // Approximate while producers run; exact when they are quiet.
  size_t size() const { return count_.load(std::memory_order_acquire); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t capacity() const { return capacity_; }
  size_t maxBytes() const { return maxBytes_; }

 private:
  struct Cell {
    std::atomic<size_t> seq{0};
    size_t bytes = 0;
    model::Request request;
  };

  const size_t capacity_;
  const size_t maxBytes_;
  size_t mask_ = 0;
  std::unique_ptr<Cell[]> cells_;
  // Admission counters; a cell is released before count_ goes down, so they
  // keep the ring from being overrun.
  alignas(64) std::atomic<size_t> count_{0};
  std::atomic<size_t> bytes_{0};
  alignas(64) std::atomic<size_t> enqueuePos_{0};
  alignas(64) std::atomic<size_t> dequeuePos_{0};
};

}  // namespace shadowtap::replay
