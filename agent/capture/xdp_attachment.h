#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "capture/slot_lock.h"

struct capture_xdp;
struct xdp_program;

namespace shadowtap::capture {

// The maps and settings every XDP attachment shares with the rest of the capture:
// one ring buffer, one set of counters and rules whatever the attach mode.
struct XdpShared {
  int rulesFd = -1;
  int prefixRulesFd = -1;
  int eventsFd = -1;
  int ringsFd = -1;
  int countersFd = -1;
  uint32_t hashSeed = 0;
  uint32_t workers = 1;
  uint64_t wakeupBytes = 0;
};

// st_capture_xdp on one interface, through libxdp's multi-program dispatcher so
// other XDP programs keep running. Each interface gets its own program instance
// (libxdp loads it as an extension of that interface's dispatcher) over the
// shared maps. skb (generic) mode on veth, where native XDP would make the
// kernel convert every skb; native elsewhere, falling back to skb mode when the
// driver has no XDP support.
class XdpAttachment {
 public:
  XdpAttachment() = default;
  XdpAttachment(const XdpAttachment&) = delete;
  XdpAttachment& operator=(const XdpAttachment&) = delete;
  XdpAttachment(XdpAttachment&& other) noexcept;
  XdpAttachment& operator=(XdpAttachment&& other) noexcept;
  ~XdpAttachment();

  // Empty on success, otherwise what is wrong and what to do. With a
  // `stateDir`, the interface's XDP hook is locked while attached (SlotLock),
  // and one locked by another running instance is refused.
  [[nodiscard]] std::string attach(int ifindex, const std::string& ifname, const XdpShared& shared,
                                   const std::string& stateDir = "");
  void detach();
  // Forgets the attachment without detaching: the interface is gone.
  void release();

  bool attached() const { return prog_ != nullptr; }
  const char* modeName() const;
  // False when libxdp fell back to attaching our program alone, without its
  // dispatcher: ours runs, but no other XDP program can join it on that
  // interface. withoutDispatcherReason() then says why, as far as we can tell.
  bool usesDispatcher() const { return dispatcher_; }
  const std::string& withoutDispatcherReason() const { return noDispatcherReason_; }

 private:
  void close();

  capture_xdp* skel_ = nullptr;
  xdp_program* prog_ = nullptr;
  int ifindex_ = 0;
  int mode_ = 0;  // enum xdp_attach_mode
  bool dispatcher_ = false;
  std::string noDispatcherReason_;
  SlotLock lock_;
};

// Detaches every program named ST_PROG_XDP_NAME from ifindex's libxdp dispatcher,
// or ours attached alone (without the dispatcher), left by a killed run, and lets
// libxdp clean its stale pins. Other programs stay, and so does ours while another
// running instance holds the interface's XDP lock (with a `stateDir`). Returns how
// many were removed; sets *error on failure.
int removeStaleXdpPrograms(int ifindex, const std::string& ifname, std::string* error,
                           const std::string& stateDir = "");

}  // namespace shadowtap::capture
