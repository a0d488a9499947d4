#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/flow_key.h"

namespace shadowtap::http {

// Capacity the framer leaves after a request's bytes, so the Host rewrite
// (takeRewrittenRequest) can insert the suffix in place without reallocating.
inline constexpr size_t kRewriteSlack = 64;

// One complete HTTP/1.x request exactly as it crossed the wire, plus the few
// fields later stages need. `bytes` is byte-identical to the captured request
// (request line, headers in order and case, body as framed, chunked or not).
// Every offset below indexes `bytes`.
struct Request {
  model::FlowKey flow;
  uint32_t ruleId = 0;
  uint64_t tsNs = 0;  // capture time of the request's first byte (CLOCK_MONOTONIC)
  std::string bytes;
  // Position of the (single) Host header's value within `bytes`, without
  // surrounding whitespace. hostLength == 0 when the request has no Host.
  size_t hostOffset = 0;
  size_t hostLength = 0;
  std::string method;  // "GET", "POST", ...
  // The request-target as sent: "/a?b", "*", "http://h:80/x".
  size_t targetOffset = 0;
  size_t targetLength = 0;
  // Absolute-form targets only: the host[:port] of the target's authority
  // (userinfo excluded), which gets the shadow suffix like Host. Length 0 otherwise.
  size_t targetHostOffset = 0;
  size_t targetHostLength = 0;
  // First byte after the header section's blank line; bytes.size() - bodyOffset
  // is the body as framed on the wire (chunk framing and trailers included).
  size_t bodyOffset = 0;
  // Body length as the application sees it: Content-Length, or the sum of the
  // chunk sizes.
  uint64_t bodyLength = 0;
  // llhttp took it for a protocol upgrade (Connection: upgrade + Upgrade): the
  // framer gives the rest of the stream up after it.
  bool upgrade = false;
  // Position of bytes[0] in the stream of delivered bytes (gaps are not counted).
  uint64_t streamOffset = 0;

  std::string_view host() const { return std::string_view(bytes).substr(hostOffset, hostLength); }
  std::string_view target() const {
    return std::string_view(bytes).substr(targetOffset, targetLength);
  }
  std::string_view targetHost() const {
    return std::string_view(bytes).substr(targetHostOffset, targetHostLength);
  }
};

// Where complete requests go (the rewrite + replay queue in the agent, a
// collector in tests). Called on the capture thread; must not block.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void onRequest(Request&& request) = 0;
};

}  // namespace shadowtap::http
