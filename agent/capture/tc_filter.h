#pragma once

#include <cstdint>
#include <string>

#include "capture/slot_lock.h"

namespace shadowtap::capture {

// One cls_bpf filter of ours on an interface's clsact ingress hook (or egress
// hook: compare mode's response capture).
// Attaching creates clsact when missing (an existing one is fine) and replaces a
// stale filter of ours at the same handle/priority (left by a killed run); a
// foreign filter there is never touched. Destruction removes only this filter,
// never the qdisc or anyone else's filters.
// With a state directory, the slot is locked for as long as the filter lives
// (see SlotLock): a slot another running instance holds is skipped for the
// next handle, so two instances on one interface each keep their own filter.
class TcFilter {
 public:
  TcFilter() = default;
  TcFilter(const TcFilter&) = delete;
  TcFilter& operator=(const TcFilter&) = delete;
  TcFilter(TcFilter&& other) noexcept;
  TcFilter& operator=(TcFilter&& other) noexcept;
  ~TcFilter();

  // Returns an empty string on success, otherwise what is wrong and what to do.
  // `handle` is the first handle tried; handle() tells the one attached.
  [[nodiscard]] std::string attach(int ifindex, const std::string& ifname, int progFd,
                                   uint32_t handle, uint32_t priority, bool* replacedStale, bool egress = false,
                                   const std::string& stateDir = "");
  void detach();
  // Forgets the filter without talking to the kernel: its interface is gone and
  // took the filter with it (the ifindex may already name a new interface).
  void release() { ifindex_ = 0; }

  bool attached() const { return ifindex_ != 0; }
  int ifindex() const { return ifindex_; }
  uint32_t handle() const { return handle_; }
  // Handles tried from the configured one: instances on one interface at once.
  static constexpr uint32_t kMaxInstances = 8;
  const std::string& ifname() const { return ifname_; }

 private:
  int ifindex_ = 0;
  std::string ifname_;
  uint32_t handle_ = 0;
  uint32_t priority_ = 0;
  bool egress_ = false;
  SlotLock lock_;

  std::string attachAt(int ifindex, const std::string& ifname, int progFd, uint32_t handle, uint32_t priority,
                       bool* replacedStale, bool egress);
};

// Removes every cls_bpf filter on ifindex's clsact ingress hook whose program is
// ours (named ST_PROG_TC_NAME), at any priority and handle: what a SIGKILLed tc-mode
// run leaves behind. `egress`: the egress hook and ST_PROG_TC_EGRESS_NAME instead.
// Filters of anyone else are never touched, nor those whose slot another running
// shadowtap holds (with a `stateDir`, see SlotLock). Returns how many were
// removed; sets *error (and stops) when the hook cannot be listed or a filter
// cannot be removed.
int removeStaleFilters(int ifindex, const std::string& ifname, std::string* error, bool egress = false,
                       const std::string& stateDir = "");

}  // namespace shadowtap::capture
