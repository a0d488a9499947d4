#pragma once

#include <cstdint>
#include <string>

namespace shadowtap::capture {

// One cls_bpf filter of ours on an interface's clsact ingress hook.
// Attaching creates clsact when missing (an existing one is fine) and replaces a
// stale filter of ours at the same handle/priority (left by a killed run); a
// foreign filter there is never touched. Destruction removes only this filter,
// never the qdisc or anyone else's filters.
class TcFilter {
 public:
  TcFilter() = default;
  TcFilter(const TcFilter&) = delete;
  TcFilter& operator=(const TcFilter&) = delete;
  TcFilter(TcFilter&& other) noexcept;
  TcFilter& operator=(TcFilter&& other) noexcept;
  ~TcFilter();

  // Returns an empty string on success, otherwise what is wrong and what to do.
  [[nodiscard]] std::string attach(int ifindex, const std::string& ifname, int progFd,
                                   uint32_t handle, uint32_t priority, bool* replacedStale);
  void detach();

  bool attached() const { return ifindex_ != 0; }
  int ifindex() const { return ifindex_; }
  const std::string& ifname() const { return ifname_; }

 private:
  int ifindex_ = 0;
  std::string ifname_;
  uint32_t handle_ = 0;
  uint32_t priority_ = 0;
};

}  // namespace shadowtap::capture
