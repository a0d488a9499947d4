#include "capture/tcx_link.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shadowtap::capture {
namespace {

// The uapi header of the build host (Linux 6.1) predates tcx; the value is ABI
// (enum bpf_attach_type, Linux 6.6). libbpf 1.1's bpf_link_create passes attach
// types it does not know straight to the kernel when no type-specific options are
// given, and appending after the existing programs needs none.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

}  // namespace

bool tcxSupported(int progFd, std::string* why) {
  int fd = bpf_link_create(progFd, 0, static_cast<bpf_attach_type>(kBpfTcxIngress), nullptr);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    close(fd);  // cannot happen (ifindex 0); do not leave it attached if it does
    *why = "the kernel accepted a tcx link";
    return true;
  }
  if (err == ENODEV) {
    *why = "the kernel has tcx links (6.6+)";
    return true;
  }
  *why = std::string("the kernel has no tcx (probe: ") + std::strerror(err) + ")";
  return false;
}

TcxLink::TcxLink(TcxLink&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

TcxLink& TcxLink::operator=(TcxLink&& other) noexcept {
  if (this != &other) {
    detach();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

TcxLink::~TcxLink() { detach(); }

std::string TcxLink::attach(int ifindex, const std::string& ifname, int progFd, bool egress) {
  int fd = bpf_link_create(progFd, ifindex, static_cast<bpf_attach_type>(egress ? kBpfTcxEgress : kBpfTcxIngress),
                           nullptr);
  if (fd < 0) {
    int err = errno;
    return std::string("cannot attach to the tcx ") + (egress ? "egress" : "ingress") + " hook of " + ifname + ": " + std::strerror(err) +
           (err == EINVAL ? " (kernel without tcx? use --attach tc)" : "");
  }
  fd_ = fd;
  return "";
}

void TcxLink::detach() {
  if (fd_ >= 0) {
    close(fd_);  // the link's last reference: the kernel detaches the program
    fd_ = -1;
  }
}

}  // namespace shadowtap::capture
