#pragma once

#include <cstdint>
#include <string>

#include "flow/flow_key.h"

namespace shadowtap::http {

// One complete HTTP/1.x request exactly as it crossed the wire, plus the few
// fields later stages need. `bytes` is byte-identical to the captured request
// (request line, headers in order and case, body as framed, chunked or not).
struct Request {
  flow::FlowKey flow;
  uint32_t ruleId = 0;
  uint64_t tsNs = 0;  // capture time of the request's first byte
  std::string bytes;
  // Position of the (single) Host header's value within `bytes`, without
  // surrounding whitespace. hostLength == 0 when the request has no Host.
  size_t hostOffset = 0;
  size_t hostLength = 0;
  std::string method;  // "GET", "POST", ...

  std::string_view host() const { return std::string_view(bytes).substr(hostOffset, hostLength); }
};

// Where complete requests go (the rewrite + replay queue in the agent, a
// collector in tests). Called on the capture thread; must not block.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void onRequest(Request&& request) = 0;
};

}  // namespace shadowtap::http
