#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/header_field.h"

namespace shadowtap::model {

// One response (HTTP/1.x or HTTP/2) as the application sees it: status, headers in wire
// order, and the body with any chunk framing removed. The body is kept up to a
// limit; bodyLength and bodyHash always cover the whole body, so two bodies can
// be compared exactly even when neither was kept whole.
struct Response {
  int status = 0;
  std::vector<HeaderField> headers;
  bool headersTruncated = false;  // the header section was over its limit; the rest is missing
  std::string body;               // the first maxBodyBytes bytes of the body
  bool bodyTruncated = false;     // body.size() < bodyLength
  uint64_t bodyLength = 0;
  uint64_t bodyHash = 0;  // fnv1a64 of the whole body
  uint64_t tsNs = 0;      // capture (or receive) time of the first byte, CLOCK_MONOTONIC

  // Value of the first header named `name` (case-insensitive), empty if none.
  std::string_view header(std::string_view name) const;
  bool hasHeader(std::string_view name) const;
};

// Bytes an HTTP/2 header field kept in a Response is charged against
// ResponseLimits::maxHeaderBytes on top of its name and value, like an HPACK
// table entry (RFC 7541 4.1): one indexed byte on the wire can repeat a field,
// so empty fields must cost something. Primary and mirror count the same way.
inline constexpr size_t kH2FieldOverhead = 32;


}  // namespace shadowtap::model
