#pragma once

#include <cstdint>

namespace shadowtap::replay {

// Raises the soft RLIMIT_NOFILE to the hard limit, once at start: a mirror
// pool may grow to --mirror-max-connections sockets per rule, and the usual
// soft limit (1024) would stop it long before. Returns the soft limit now in
// force (logged at info when raised, a warning when it cannot be). A pool that
// still runs out of descriptors holds its size (PoolSizer::noDescriptors).
uint64_t raiseOpenFilesLimit();

}  // namespace shadowtap::replay
