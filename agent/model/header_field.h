#pragma once

#include <string>

namespace shadowtap::model {

// One header field: HTTP/1 names keep their case, HTTP/2 names are lowercase;
// the value without surrounding whitespace.
struct HeaderField {
  std::string name;
  std::string value;
  // HTTP/2: sent as "literal never indexed" (RFC 7541 6.2.3), and must stay
  // that way when forwarded (e.g. an Authorization value a proxy marked
  // sensitive). Always false for HTTP/1.
  bool neverIndex = false;

  bool operator==(const HeaderField&) const = default;
};

}  // namespace shadowtap::model
