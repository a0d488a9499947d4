#include "replay/open_files_limit.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cstring>

namespace shadowtap::replay {

uint64_t raiseOpenFilesLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("cannot read the open files limit: {}", std::strerror(errno));
    return 0;
  }
  if (lim.rlim_cur == lim.rlim_max) {
    return lim.rlim_cur;
  }
  const rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("cannot raise the open files limit from {} to {}: {}; mirror pools stop growing at it",
                 static_cast<uint64_t>(before), static_cast<uint64_t>(lim.rlim_max), std::strerror(errno));
    return before;
  }
  spdlog::info("open files limit raised from {} to {} (mirror connections)", static_cast<uint64_t>(before),
               static_cast<uint64_t>(lim.rlim_cur));
  return lim.rlim_cur;
}

}  // namespace shadowtap::replay
