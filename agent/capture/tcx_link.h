#pragma once

#include <string>

namespace shadowtap::capture {

// Whether this kernel has tcx (6.6+): asks for a tcx link on a device that
// cannot exist, which an old kernel rejects as an unknown attach type (EINVAL)
// and a new one as a missing device (ENODEV). Nothing gets attached. *why says
// what the answer rests on, for the log.
bool tcxSupported(int progFd, std::string* why);

// Our program on an interface's tcx ingress (or egress) hook, as a BPF link appended after
// the programs already there. The link lives as long as its fd: when the process
// dies, however it dies, the kernel detaches it, so a crash leaves nothing behind.
class TcxLink {
 public:
  TcxLink() = default;
  TcxLink(const TcxLink&) = delete;
  TcxLink& operator=(const TcxLink&) = delete;
  TcxLink(TcxLink&& other) noexcept;
  TcxLink& operator=(TcxLink&& other) noexcept;
  ~TcxLink();

  // Empty on success, otherwise what is wrong and what to do. `egress`: the tcx
  // egress hook instead (compare mode's response capture).
  [[nodiscard]] std::string attach(int ifindex, const std::string& ifname, int progFd, bool egress = false);
  void detach();
  bool attached() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace shadowtap::capture
