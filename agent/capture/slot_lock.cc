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

SlotLock::Result SlotLock::tryAcquire(const std::string& dir, int ifindex, bool egress, uint32_t handle,
                                      uint32_t priority, SlotLock* out, std::string* why) {
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
  std::string path = fmt::format("{}/tc-{}-{}-{}-{:x}-{}.lock", dir, netns, ifindex, egress ? "egress" : "ingress",
                                 handle, priority);
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
  out->release();
  out->fd_ = fd;
  out->path_ = std::move(path);
  return Result::kAcquired;
}

void SlotLock::release() {
  if (fd_ < 0) {
    return;
  }
  // Unlink while still holding the lock: an instance that opened the file just
  // before gets the lock on an unlinked file once we close, and by then our
  // filter is gone, so the slot is free for it anyway.
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
  path_.clear();
}

}  // namespace shadowtap::capture
