#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowtap::http {

// A rule's header switches on an HTTP/1 request's wire bytes: remove every
// header line named in `drop` (with its obs-fold continuation lines), then add
// `add`, in order, just before the blank line that ends the head, using the
// request's own line ending. Every other byte (request line, other headers,
// their order and case, the body) is unchanged. Pure; safe to share.
class HeaderEdit {
 public:
  HeaderEdit() = default;
  // `drop`: names in lower case.
  HeaderEdit(std::vector<std::string> drop, std::vector<std::pair<std::string, std::string>> add)
      : drop_(std::move(drop)), add_(std::move(add)) {}

  // True when apply() would change anything.
  bool changesHeaders() const { return !drop_.empty() || !add_.empty(); }

  // `bytes` (a complete request) edited; bytes without a complete head are
  // returned unchanged.
  std::string apply(std::string bytes) const;

 private:
  std::vector<std::string> drop_;  // lower case
  std::vector<std::pair<std::string, std::string>> add_;
};

}  // namespace shadowtap::http
