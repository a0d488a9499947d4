#pragma once

#include <optional>
#include <string_view>

namespace shadowtap::capture {

enum class AttachMode {
  kAuto,  // tcx where the kernel has it, else tc (cls_bpf)
  kTc,    // clsact + cls_bpf, our own handle and priority
  kTcx,   // BPF link on the tcx ingress hook (kernel 6.6+)
  kXdp,   // XDP through libxdp's dispatcher
};

// The modes in use, kAuto resolved (resolveAttachModes): ingress as asked or
// chosen; egress (compare mode) the same, but tcx or tc in XDP mode, as XDP has
// no egress hook.
struct AttachModes {
  AttachMode ingress = AttachMode::kTc;
  AttachMode egress = AttachMode::kTc;
};

// "auto", "tc", "tcx", "xdp" <-> AttachMode. nullopt for anything else.
std::optional<AttachMode> parseAttachMode(std::string_view text);
const char* attachModeName(AttachMode mode);

}  // namespace shadowtap::capture
