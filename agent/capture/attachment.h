#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "capture/attach_mode.h"
#include "capture/tc_filter.h"
#include "capture/tcx_link.h"
#include "capture/xdp_attachment.h"

namespace shadowtap::capture {

// The two places on an interface where a capture program runs: ingress sees
// the requests; egress, in compare mode only, the responses.
enum class Hook { kIngress, kEgress };

// What attaching needs from the loaded capture programs and the options.
struct AttachSettings {
  int ingressProgFd = -1;  // tc and tcx ingress
  int egressProgFd = -1;   // tc and tcx egress
  XdpShared xdp;           // XDP loads a program of its own over the shared maps
  uint32_t tcHandle = 0x5354;
  uint32_t tcPriority = 1;
  std::string stateDir;  // slot locks (SlotLock); empty: none
};

// One of our programs on one hook of one interface, however it is attached: a
// cls_bpf filter (kTc), a tcx link (kTcx) or an XDP program behind libxdp's
// dispatcher (kXdp, ingress only: XDP has no egress hook). Removed from the
// kernel when detached, reassigned or destroyed.
class Attachment {
 public:
  Attachment() = default;
  Attachment(Attachment&&) noexcept = default;
  Attachment& operator=(Attachment&&) noexcept = default;

  // Attaches; `mode` must be resolved (not kAuto). Empty on success, else what
  // is wrong and what to do; nothing stays attached then.
  [[nodiscard]] std::string attach(AttachMode mode, Hook hook, int ifindex, const std::string& ifname,
                                   const AttachSettings& settings);
  void detach() { how_ = std::monostate{}; }
  // Forgets the attachment without asking the kernel to remove it: the
  // interface is gone and took it along (its ifindex may name a new one now).
  void release();

  bool attached() const { return !std::holds_alternative<std::monostate>(how_); }
  // XDP mode: libxdp attached our program alone, without its dispatcher.
  bool xdpWithoutDispatcher() const;
  // How and where, for "attached to NAME (...)" in the log.
  std::string describe() const;

 private:
  std::variant<std::monostate, TcFilter, TcxLink, XdpAttachment> how_;
  Hook hook_ = Hook::kIngress;
  uint32_t tcPriority_ = 0;
};

// Removes what killed runs of ours left on an interface: our cls_bpf filters on
// both clsact hooks whatever the mode (a leftover would capture the interface
// twice), and in XDP mode our XDP programs. Leftovers another running instance
// holds (SlotLock) stay. Returns how many were removed; sets *error on failure.
int removeLeftovers(int ifindex, const std::string& ifname, bool xdp, const std::string& stateDir,
                    std::string* error);

}  // namespace shadowtap::capture
