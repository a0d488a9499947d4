#include "capture/slot_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shadowtap::capture {

SlotLock::SlotLock(SlotLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

SlotLock& SlotLock::operator=(SlotLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

SlotLock::~SlotLock() { release(); }

std::string SlotLock::tcSlot(int ifindex, bool egress, uint32_t handle, uint32_t priority) {
  return fmt::format("tc-{}-{}-{:x}-{}", ifindex, egress ? "egress" : "ingress", handle, priority);
}

std::string SlotLock::xdpSlot(int ifindex) { return fmt::format("xdp-{}", ifindex); }

SlotLock::Result SlotLock::tryAcquire(const std::string& dir, const std::string& slot, SlotLock* out,
                                      std::string* why) {
  if (dir.empty()) {
    *why = "no --state-dir";
    return Result::kUnavailable;
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *why = "cannot create " + dir + ": " + std::strerror(errno);
    return Result::kUnavailable;
  }
  // Interface indexes are per network namespace: the namespace's inode is part of the name.
  struct stat ns {};
  const unsigned long long netns = stat("/proc/self/ns/net", &ns) == 0 ? static_cast<unsigned long long>(ns.st_ino) : 0;
  std::string path = fmt::format("{}/{}-{}.lock", dir, netns, slot);
  // The holder unlinks its file when it releases (see release()). A file
  // opened just before that is locked only once it is unlinked, so a lock is
  // ours only if the path still names the file we locked; else try again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      *why = "cannot open " + path + ": " + std::strerror(errno);
      return Result::kUnavailable;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      close(fd);
      if (err == EWOULDBLOCK) {
        return Result::kHeld;
      }
      *why = "cannot lock " + path + ": " + std::strerror(err);
      return Result::kUnavailable;
    }
    struct stat locked {};
    struct stat named {};
    if (fstat(fd, &locked) == 0 && stat(path.c_str(), &named) == 0 && locked.st_dev == named.st_dev &&
        locked.st_ino == named.st_ino) {
      out->release();
      out->fd_ = fd;
      out->path_ = std::move(path);
      return Result::kAcquired;
    }
    close(fd);  // released and unlinked under us: the slot changed hands, look again
  }
  *why = "the lock file " + path + " keeps changing";
  return Result::kUnavailable;
}

void SlotLock::release() {
  if (fd_ < 0) {
    return;
  }
  // Unlink while still holding the lock: only the holder ever unlinks, so the
  // path names our file here. An instance that opened it just before gets the
  // lock of an unlinked file once we close, sees that and looks again.
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
  path_.clear();
}

}  // namespace shadowtap::capture
