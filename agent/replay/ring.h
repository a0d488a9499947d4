#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

struct io_uring;
struct io_uring_sqe;

namespace shadowtap::replay {

// How a mirror pool does its sockets' I/O (--mirror-io): kEpoll, one send(2)
// and one recv(2) per request after epoll_wait; kUring, io_uring, every send and
// receive of a loop turn submitted and waited for in one io_uring_enter; kAuto,
// io_uring where the kernel allows it (not disabled by sysctl or seccomp), else
// epoll. Only HTTP/1 cleartext pools use io_uring; h2c and TLS pools use epoll.
enum class MirrorIo { kAuto, kEpoll, kUring };

// One operation in a Ring (a send, a receive, a poll). Its completion arrives
// on the loop thread through Ring::reap(). An op whose owner goes away while
// it is in flight is orphan()ed: the ring then frees it when its completion
// arrives, so the kernel never writes into freed memory.
class RingOp {
 public:
  virtual ~RingOp() = default;
  // `res`: the operation's result (bytes, or -errno); `nowNs` on the pool's clock.
  virtual void complete(int res, uint64_t nowNs) = 0;
  // The pool's slot of the connection that owns the op (null: the pool's own).
  void* tag = nullptr;
  // A send: it completes as soon as the kernel takes the bytes, not when the
  // peer answers, so a loop waiting for its requests' answers counts on it
  // too (Ring::sendsInFlight).
  bool isSend = false;
  bool pending() const { return pending_; }

 private:
  friend class Ring;
  bool pending_ = false;
  bool orphan_ = false;
};

// One pool's io_uring (loop thread only): ops are prepared during a turn and
// submitted together with the wait for completions, one system call a turn.
class Ring {
 public:
  // Null and *error set when the kernel refuses io_uring (too old, disabled by
  // kernel.io_uring_disabled, blocked by a seccomp profile, no memory). The
  // ring starts disabled: the thread that calls enable() is its only user
  // (it submits, waits and frees it), so open() may run on another.
  static std::unique_ptr<Ring> open(unsigned entries, std::string* error);
  // On the loop thread, before anything else. Negative errno on failure.
  int enable();
  // Cancels what is in flight and waits (bounded) for it before freeing the ring.
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // A submission entry for `op` (submitting first when the queue is full);
  // the caller prepares it. `op` is pending until its completion is reaped.
  io_uring_sqe* prepare(RingOp& op);
  // Asks the kernel to cancel `op` (no-op if it is not pending).
  void cancel(RingOp& op);
  // The owner lets go of an op (takes ownership): a pending one is cancelled
  // and freed when its completion arrives, one not pending after this reap()
  // (it may be the op whose completion is running).
  void orphan(RingOp* op);

  // Submits what was prepared and waits until a completion arrives or
  // timeoutMs passes (-1: no limit, 0: no wait). Negative errno on failure
  // (a timeout or an interruption is not one).
  //
  // expected > 1 (completions the caller knows are coming: requests on the
  // wire) on kernels with IORING_FEAT_MIN_TIMEOUT (6.12+): waits for that
  // many, but no longer than kBatchWaitUs once one has arrived, so a burst of
  // responses costs the loop one wake-up rather than one each. Elsewhere, and
  // for expected <= 1, the wait ends at the first completion.
  int submitAndWait(int timeoutMs, unsigned expected = 1);
  // The longest a completion waits for the ones expected with it.
  static constexpr unsigned kBatchWaitUs = 200;
  // The kernel can wait for a batch (see submitAndWait).
  bool batchesWaits() const { return minWait_; }
  // Hands every waiting completion to its op (orphans are deleted); calls
  // touched(op.tag) after each op that has a tag. Returns how many.
  template <typename Touched>
  size_t reap(uint64_t nowNs, Touched&& touched) {
    size_t n = 0;
    while (RingOp* op = next()) {
      ++n;
      if (op->orphan_) {
        orphans_.erase(op);
        delete op;
        continue;
      }
      void* tag = op->tag;
      op->complete(lastRes_, nowNs);  // may orphan ops, this one included
      if (tag != nullptr) {
        touched(tag);
      }
    }
    freeDead();
    return n;
  }

  size_t inFlight() const { return inFlight_; }
  // Ops with isSend submitted and not yet completed.
  size_t sendsInFlight() const { return sendsInFlight_; }

 private:
  Ring() = default;
  // The next completion's op (its result in lastRes_), null when none waits;
  // skips the completions of cancel requests.
  RingOp* next();
  // Ops orphaned when not pending, freed once no completion runs.
  void freeDead();

  // submitAndWait with a batch: the submission and the batched wait in one
  // io_uring_enter (liburing 2.3 has no call for min_wait_usec).
  int enterBatch(int timeoutMs, unsigned expected);

  std::unique_ptr<io_uring> ring_;
  bool minWait_ = false;  // IORING_FEAT_MIN_TIMEOUT
  size_t inFlight_ = 0;
  size_t sendsInFlight_ = 0;
  int lastRes_ = 0;
  std::unordered_set<RingOp*> orphans_;
  std::vector<RingOp*> dead_;
};

}  // namespace shadowtap::replay
