#pragma once

#include <cstdint>
#include <string>

namespace shadowtap::capture {

// Which running shadowtap owns a tc filter slot (interface, hook, handle,
// priority). cls_bpf filters outlive their process, so a filter of ours found
// on an interface is either a leftover of a killed run (to be removed) or the
// live filter of another instance on the same host (a DaemonSet pod during a
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
  // Creates `dir` (mode 0700) when missing.
  static Result tryAcquire(const std::string& dir, int ifindex, bool egress, uint32_t handle, uint32_t priority,
                           SlotLock* out, std::string* why);

  // Removes the lock file and drops the lock (call after the filter is gone).
  void release();
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace shadowtap::capture
