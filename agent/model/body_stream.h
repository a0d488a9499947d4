#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace shadowtap::model {

// The rest of a streamed request's body (docs/mirroring.md#large-requests):
// the HTTP/1 framer appends the bytes as reassembly releases them, one mirror
// connection takes them and sends them on. One producer (the capture thread)
// and one consumer (the mirror pool's loop thread); every call is safe from
// either.
//
// Memory is bounded by the window: bytes appended and not yet released by the
// consumer (sent to the mirror) never exceed it. An append that would pass it
// ends the stream as kOverflow instead: the mirror is a window behind the
// capture, and the capture is never held up for it.
//
// The stream ends exactly once: kComplete (the body's last byte is in), or an
// abort the consumer must not hide (the mirror must never see a truncated
// request that looks complete): kGap, kIncomplete, kOverflow. cancel() is the
// consumer giving up; appends are refused from then on.
class BodyStream {
 public:
  enum class End : uint8_t {
    kOpen,        // not ended yet
    kComplete,    // every byte of the body was appended
    kGap,         // the capture lost bytes inside the body
    kIncomplete,  // the client's stream ended, or its framing was refused, before the body was complete
    kOverflow,    // the consumer fell a window behind
  };

  explicit BodyStream(size_t window) : window_(window) {}
  BodyStream(const BodyStream&) = delete;
  BodyStream& operator=(const BodyStream&) = delete;

  // --- producer
  // False when the bytes are not taken: the stream has ended (kOverflow now if
  // they would pass the window) or the consumer cancelled.
  bool append(const char* data, size_t n);
  // Ends the stream (kComplete or an abort); a second end is ignored.
  void finish(End how);
  // The consumer cancelled (or never will read: see the framer's use).
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // --- consumer
  // Called, from the producer's thread, when bytes or the end arrive after a
  // take() found nothing; cleared by cancel() and setListener({}). Must not
  // call back into the stream.
  void setListener(std::function<void()> listener);
  // Swaps out what was appended since the last take (`into` is cleared first;
  // its capacity is reused). Returns its size; 0 arms the listener.
  size_t take(std::string& into);
  // `n` taken bytes reached the mirror: they leave the window.
  void release(size_t n);
  // kComplete once take() has taken every byte; an abort as soon as it happens
  // (the bytes still buffered are not to be sent); else kOpen.
  End end() const;
  // The consumer gives up: the producer's appends fail from now on, the listener is dropped.
  void cancel();

  // Bytes in the window (appended, not released).
  size_t held() const { return held_.load(std::memory_order_relaxed); }
  size_t window() const { return window_; }
  // Bytes appended in all.
  uint64_t appended() const { return appended_.load(std::memory_order_relaxed); }

 private:
  void notifyLocked();

  const size_t window_;
  mutable std::mutex mu_;
  std::string buf_;  // appended, not yet taken
  End end_ = End::kOpen;
  bool waiting_ = false;  // the consumer found nothing: tell it about the next bytes
  std::function<void()> listener_;
  std::atomic<bool> cancelled_{false};
  std::atomic<size_t> held_{0};
  std::atomic<uint64_t> appended_{0};
};

const char* describe(BodyStream::End end);

}  // namespace shadowtap::model
