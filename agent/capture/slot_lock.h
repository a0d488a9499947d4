#pragma once

#include <cstdint>
#include <string>

namespace shadowtap::capture {

// Which running shadowtap owns a tc filter slot (interface, hook, handle,
// priority) or an interface's XDP hook. cls_bpf filters and XDP programs
// attached through netlink outlive their process, so one of ours found on an
// interface is either a leftover of a killed run (to be removed) or the
// live one of another instance on the same host (a DaemonSet pod during a
// surge update, or someone's `--dry-run` next to it), which must be left alone.
// Every instance holds an flock(2) on one file per slot it attached, in a
// directory the instances of a host share (default /run/shadowtap; the
// DaemonSet mounts it from the host): the kernel releases the lock when the
// process dies however it dies, so "lock free" means "leftover".
class SlotLock {
 public:
  enum class Result {
    kAcquired,     // the slot is ours now (free, or its filter is a leftover)
    kHeld,         // another live instance holds it
    kUnavailable,  // no usable lock directory: ownership cannot be told (*why says why)
  };

  SlotLock() = default;
  SlotLock(const SlotLock&) = delete;
  SlotLock& operator=(const SlotLock&) = delete;
  SlotLock(SlotLock&& other) noexcept;
  SlotLock& operator=(SlotLock&& other) noexcept;
  ~SlotLock();  // release()

  // Tries to take the slot's lock without waiting. `dir` empty: kUnavailable.
  // Creates `dir` (mode 0700) when missing. `slot` names the slot within this
  // network namespace (tcSlot, xdpSlot).
  static Result tryAcquire(const std::string& dir, const std::string& slot, SlotLock* out, std::string* why);
  // A cls_bpf filter slot, and an interface's XDP hook.
  static std::string tcSlot(int ifindex, bool egress, uint32_t handle, uint32_t priority);
  static std::string xdpSlot(int ifindex);

  // Removes the lock file and drops the lock (call after the filter is gone).
  void release();
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace shadowtap::capture
