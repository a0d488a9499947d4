#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/rule.h"

namespace shadowtap::rules {

// A rule's safety switches applied to one request: the method allow-list and
// the header removals/additions. Pure; safe to share between threads.
class RequestTransform {
 public:
  explicit RequestTransform(const Rule& rule);

  // True when the method may be mirrored (always, without an allow-list).
  bool allows(std::string_view method) const;

  // True when apply() would change anything.
  bool changesHeaders() const { return !drop_.empty() || !add_.empty(); }

  // `bytes` (a complete request, Host already rewritten) with every header line
  // named in drop-header removed (with its obs-fold continuation lines) and the
  // added headers inserted, in order, just before the blank line that ends the
  // head, using the request's own line ending. Every other byte (request line,
  // other headers, their order and case, the body) is unchanged. Bytes without
  // a complete head are returned unchanged.
  std::string apply(std::string bytes) const;

 private:
  std::vector<std::string> methods_;
  std::vector<std::string> drop_;  // lower case
  std::vector<std::pair<std::string, std::string>> add_;
};

}  // namespace shadowtap::rules
