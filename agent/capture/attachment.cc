#include "capture/attachment.h"

#include <fmt/format.h>

namespace shadowtap::capture {

std::string Attachment::attach(AttachMode mode, Hook hook, int ifindex, const std::string& ifname,
                               const AttachSettings& settings) {
  detach();
  hook_ = hook;
  tcPriority_ = settings.tcPriority;
  const bool egress = hook == Hook::kEgress;
  const int progFd = egress ? settings.egressProgFd : settings.ingressProgFd;
  std::string why;
  switch (mode) {
    case AttachMode::kTc: {
      bool replaced = false;
      why = how_.emplace<TcFilter>().attach(ifindex, ifname, progFd, settings.tcHandle, settings.tcPriority,
                                            &replaced, egress, settings.stateDir);
      break;
    }
    case AttachMode::kTcx:
      why = how_.emplace<TcxLink>().attach(ifindex, ifname, progFd, egress);
      break;
    case AttachMode::kXdp:
      why = egress ? "internal error: XDP has no egress hook"
                   : how_.emplace<XdpAttachment>().attach(ifindex, ifname, settings.xdp, settings.stateDir);
      break;
    case AttachMode::kAuto:
      why = "internal error: attach mode not resolved";
      break;
  }
  if (!why.empty()) {
    detach();
  }
  return why;
}

void Attachment::release() {
  if (auto* tc = std::get_if<TcFilter>(&how_)) {
    tc->release();
  } else if (auto* xdp = std::get_if<XdpAttachment>(&how_)) {
    xdp->release();
  }
  // A tcx link of a removed device is already detached; closing its fd is all.
  how_ = std::monostate{};
}

bool Attachment::xdpWithoutDispatcher() const {
  const auto* xdp = std::get_if<XdpAttachment>(&how_);
  return xdp != nullptr && !xdp->usesDispatcher();
}

std::string Attachment::describe() const {
  if (hook_ == Hook::kEgress) {
    return fmt::format("{} egress: responses of rules with compare",
                       std::holds_alternative<TcxLink>(how_) ? "tcx" : "tc");
  }
  if (const auto* tc = std::get_if<TcFilter>(&how_)) {
    return fmt::format("tc ingress, cls_bpf handle 0x{:x} priority {}", tc->handle(), tcPriority_);
  }
  if (std::holds_alternative<TcxLink>(how_)) {
    return "tcx ingress link, appended after the programs already there";
  }
  if (const auto* xdp = std::get_if<XdpAttachment>(&how_)) {
    return xdp->usesDispatcher()
               ? fmt::format("XDP through libxdp's dispatcher, {} mode", xdp->modeName())
               : fmt::format("XDP, {} mode, alone: without libxdp's dispatcher", xdp->modeName());
  }
  return "not attached";
}

int removeLeftovers(int ifindex, const std::string& ifname, bool xdp, const std::string& stateDir,
                    std::string* error) {
  // A killed tc-mode run leaves its cls_bpf filter, and a killed compare run its
  // egress twin, whether or not we compare now.
  int removed = removeStaleFilters(ifindex, ifname, error, false, stateDir);
  if (!error->empty()) {
    return removed;
  }
  removed += removeStaleFilters(ifindex, ifname, error, true, stateDir);
  if (!error->empty() || !xdp) {
    return removed;
  }
  return removed + removeStaleXdpPrograms(ifindex, ifname, error, stateDir);
}

}  // namespace shadowtap::capture
