#pragma once

namespace shadowtap::replay {

// Why a job ended without a response; one ReplayStats counter each.
enum class ReplayError {
  kNone,
  kConnect,
  kConnectTimeout,
  kReset,
  kResponseTimeout,
  kBadResponse,
  kResponseTooLarge,
};

}  // namespace shadowtap::replay
