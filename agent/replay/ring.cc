#include "replay/ring.h"

#include <errno.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace shadowtap::replay {
namespace {

// Completions of cancel requests carry no op.
constexpr uint64_t kNoOp = 0;
// Linux 6.12 (uapi names newer than Debian 12's headers): the wait's
// min_wait_usec, in what older headers call io_uring_getevents_arg.pad.
constexpr unsigned kFeatMinTimeout = 1U << 15;
struct GetEventsArg {
  uint64_t sigmask;
  uint32_t sigmaskSize;
  uint32_t minWaitUsec;
  uint64_t ts;
};
static_assert(sizeof(GetEventsArg) == sizeof(io_uring_getevents_arg));

}  // namespace

std::unique_ptr<Ring> Ring::open(unsigned entries, std::string* error) {
  std::unique_ptr<Ring> ring(new Ring());
  ring->ring_ = std::make_unique<io_uring>();
  // Completions are run when the loop asks for them (6.1+: no interrupting
  // task work); 5.19 and 6.0 fall back to cooperative task work. Older
  // kernels are refused: the receives use IORING_RECVSEND_POLL_FIRST and the
  // destructor IORING_ASYNC_CANCEL_ANY, both 5.19.
  const unsigned flagSets[] = {
      IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_R_DISABLED | IORING_SETUP_COOP_TASKRUN,
  };
  int err = -EINVAL;
  for (unsigned flags : flagSets) {
    io_uring_params params{};
    params.flags = flags;
    params.cq_entries = entries * 2;
    params.flags |= IORING_SETUP_CQSIZE;
    err = io_uring_queue_init_params(entries, ring->ring_.get(), &params);
    if (err != -EINVAL) {
      ring->minWait_ = (params.features & kFeatMinTimeout) != 0;
      break;
    }
  }
  if (err < 0) {
    if (error != nullptr) {
      *error = std::strerror(-err);
      if (err == -EPERM) {
        *error += " (kernel.io_uring_disabled, or a seccomp profile blocks io_uring)";
      } else if (err == -ENOSYS) {
        *error += " (the kernel has no io_uring)";
      } else if (err == -EINVAL) {
        *error += " (the kernel is older than 5.19)";
      }
    }
    return nullptr;
  }
  return ring;
}

int Ring::enable() {
  // liburing 2.3 (Debian 12) declares io_uring_enable_rings() but does not export it.
  const long r = ::syscall(__NR_io_uring_register, ring_->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  return r < 0 ? -errno : 0;
}

Ring::~Ring() {
  if (!ring_) {
    return;
  }
  if (inFlight_ > 0) {
    // Everything still in the kernel is cancelled, and waited for: an op's
    // buffer is freed only once the kernel is done with it.
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) {
      io_uring_submit(ring_.get());
      sqe = io_uring_get_sqe(ring_.get());
    }
    if (sqe != nullptr) {
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data64(sqe, kNoOp);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (inFlight_ > 0 && std::chrono::steady_clock::now() < deadline) {
      submitAndWait(100);
      reap(0, [](void*) {});
    }
  }
  freeDead();
  if (inFlight_ == 0) {
    for (RingOp* op : orphans_) {
      delete op;
    }
  }
  // else: leaked on purpose rather than freed under the kernel's feet.
  io_uring_queue_exit(ring_.get());
}

io_uring_sqe* Ring::prepare(RingOp& op) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  // The submission queue was just emptied, so an entry is free.
  io_uring_sqe_set_data(sqe, &op);
  op.pending_ = true;
  ++inFlight_;
  sendsInFlight_ += op.isSend ? 1 : 0;
  return sqe;
}

void Ring::cancel(RingOp& op) {
  if (!op.pending_) {
    return;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  io_uring_prep_cancel(sqe, &op, 0);
  io_uring_sqe_set_data64(sqe, kNoOp);
}

void Ring::orphan(RingOp* op) {
  if (op == nullptr) {
    return;
  }
  if (!op->pending_) {
    dead_.push_back(op);
    return;
  }
  cancel(*op);
  op->orphan_ = true;
  orphans_.insert(op);
}

int Ring::enterBatch(int timeoutMs, unsigned expected) {
  // What io_uring_submit() does first: publish the prepared entries.
  io_uring_sq& sq = ring_->sq;
  const unsigned tail = sq.sqe_tail;
  if (sq.sqe_head != tail) {
    sq.sqe_head = tail;
    __atomic_store_n(sq.ktail, tail, __ATOMIC_RELEASE);
  }
  const unsigned toSubmit = tail - __atomic_load_n(sq.khead, __ATOMIC_ACQUIRE);
  __kernel_timespec ts{};
  GetEventsArg arg{};
  arg.minWaitUsec = kBatchWaitUs;
  if (timeoutMs >= 0) {
    ts.tv_sec = timeoutMs / 1000;
    ts.tv_nsec = static_cast<long long>(timeoutMs % 1000) * 1'000'000;
    arg.ts = reinterpret_cast<uint64_t>(&ts);
  }
  const long r = ::syscall(__NR_io_uring_enter, ring_->ring_fd, toSubmit, expected,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
  return r < 0 ? -errno : 0;
}

int Ring::submitAndWait(int timeoutMs, unsigned expected) {
  io_uring_cqe* cqe = nullptr;
  int r;
  if (timeoutMs != 0 && expected > 1 && minWait_) {
    r = enterBatch(timeoutMs, expected);
  } else if (timeoutMs < 0) {
    r = io_uring_submit_and_wait(ring_.get(), 1);
  } else if (timeoutMs == 0) {
    r = io_uring_submit(ring_.get());
    if (r >= 0) {
      // DEFER_TASKRUN: completions are posted only when asked for.
      io_uring_get_events(ring_.get());
    }
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeoutMs / 1000;
    ts.tv_nsec = static_cast<long long>(timeoutMs % 1000) * 1'000'000;
    r = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
  }
  if (r == -ETIME || r == -EINTR || r == -EAGAIN || r == -EBUSY) {
    return 0;
  }
  return r < 0 ? r : 0;
}

void Ring::freeDead() {
  for (RingOp* op : dead_) {
    delete op;
  }
  dead_.clear();
}

RingOp* Ring::next() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(ring_.get(), &cqe) != 0 || cqe == nullptr) {
      return nullptr;
    }
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    lastRes_ = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    if (data == kNoOp) {
      continue;
    }
    auto* op = reinterpret_cast<RingOp*>(static_cast<uintptr_t>(data));
    op->pending_ = false;
    --inFlight_;
    sendsInFlight_ -= op->isSend ? 1 : 0;
    return op;
  }
}

}  // namespace shadowtap::replay
