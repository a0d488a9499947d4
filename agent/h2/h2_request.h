#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/flow_key.h"
#include "model/header_field.h"

namespace shadowtap::h2 {

using model::HeaderField;

// One client stream of an HTTP/2 connection: its request HEADERS (with any
// CONTINUATION), the DATA payloads joined (padding removed), and the trailing
// HEADERS if any, all in wire order.
struct H2Request {
  model::FlowKey flow;
  uint32_t ruleId = 0;
  int32_t streamId = 0;
  uint64_t tsNs = 0;  // capture time of the chunk that carried the stream's first HEADERS byte
  std::vector<HeaderField> headers;
  std::string body;
  std::vector<HeaderField> trailers;
  // Compare mode: the exchange this request's responses belong to (0: none).
  // Set by the pipeline; a mirror client given a request with an exchange id
  // reports its response (or its absence) for that exchange.
  uint64_t exchangeId = 0;

  // First value of `name` in headers, or "" (absent and empty are the same here).
  std::string_view header(std::string_view name) const;
  std::string_view method() const { return header(":method"); }
  std::string_view path() const { return header(":path"); }
  // ":authority", else "host": the value the shadow suffix goes into.
  std::string_view authority() const;
};

// Where decoded HTTP/2 requests go. Called on the capture thread; must not block.
class H2RequestSink {
 public:
  virtual ~H2RequestSink() = default;
  virtual void onRequest(H2Request&& request) = 0;
};

}  // namespace shadowtap::h2
