#include "capture/attach_mode.h"

namespace shadowtap::capture {

std::optional<AttachMode> parseAttachMode(std::string_view text) {
  if (text == "auto") {
    return AttachMode::kAuto;
  }
  if (text == "tc") {
    return AttachMode::kTc;
  }
  if (text == "tcx") {
    return AttachMode::kTcx;
  }
  if (text == "xdp") {
    return AttachMode::kXdp;
  }
  return std::nullopt;
}

const char* attachModeName(AttachMode mode) {
  switch (mode) {
    case AttachMode::kAuto:
      return "auto";
    case AttachMode::kTc:
      return "tc";
    case AttachMode::kTcx:
      return "tcx";
    case AttachMode::kXdp:
      return "xdp";
  }
  return "?";
}

}  // namespace shadowtap::capture
