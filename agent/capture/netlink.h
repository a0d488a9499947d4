#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shadowtap::capture {

// One filter on an interface's clsact ingress hook, as rtnetlink dumps it.
struct IngressFilter {
  uint32_t priority = 0;
  uint32_t handle = 0;
  std::string kind;     // "bpf" for cls_bpf
  uint32_t progId = 0;  // cls_bpf only: the program's id (0 when not reported)
  std::string bpfName;  // cls_bpf only: "name:[id]" as libbpf and tc set it
};

// Lists every filter on ifindex's clsact ingress hook (egress hook when `egress`)
// with RTM_GETTFILTER (libbpf 1.1 can query one known slot but not list them). An
// interface without clsact has no filters: empty list, no error. On failure sets
// *error.
std::vector<IngressFilter> dumpIngressFilters(int ifindex, std::string* error, bool egress = false);

// A change of a network interface, from rtnetlink link notifications.
struct LinkEvent {
  enum class Kind { kPresent, kGone };
  Kind kind = Kind::kPresent;
  int ifindex = 0;
  std::string name;
  // The link-layer type (ARPHRD_*) the notification carries; -1 when not known
  // (a rescan's list has names only).
  int linkType = -1;
};

// A non-blocking rtnetlink socket subscribed to link notifications (RTMGRP_LINK):
// interfaces appearing, changing (renames) and disappearing.
class LinkWatcher {
 public:
  LinkWatcher() = default;
  ~LinkWatcher();
  LinkWatcher(const LinkWatcher&) = delete;
  LinkWatcher& operator=(const LinkWatcher&) = delete;

  // Empty on success, otherwise the reason.
  [[nodiscard]] std::string open();
  int fd() const { return fd_; }

  // Reads every waiting notification. *overflowed is set when the kernel dropped
  // notifications (ENOBUFS): the caller must rescan all interfaces.
  std::vector<LinkEvent> read(bool* overflowed);

 private:
  int fd_ = -1;
};

}  // namespace shadowtap::capture
