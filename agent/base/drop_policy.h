#pragma once

namespace shadowtap::base {

// What a full queue gives up: the item that just arrived (newest) or the one
// that has waited longest (oldest).
enum class DropPolicy { kNewest, kOldest };

}  // namespace shadowtap::base
