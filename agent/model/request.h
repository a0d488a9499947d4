#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/body_stream.h"
#include "model/flow_key.h"
#include "model/header_field.h"

namespace shadowtap::model {

enum class Protocol : uint8_t { kHttp1, kHttp2 };

// One captured request, whatever its protocol: what every stage after decoding
// (router, mirror pool, recorder, dry-run printer, compare) consumes. The
// HTTP/1 framer and the HTTP/2 decoder produce it.
//
// An HTTP/1 request keeps its exact wire bytes (`bytes`: request line, header
// lines in order and case, body as framed, chunked or not), with the positions
// of the parts the router edits, so that what reaches the mirror is
// byte-identical except where a rule says otherwise. An HTTP/2 request is its
// stream's header fields in wire order (pseudo-headers first, lowercase names),
// DATA joined (padding removed), and trailers.
struct Request {
  Protocol protocol = Protocol::kHttp1;
  FlowKey flow;
  uint32_t ruleId = 0;
  uint64_t tsNs = 0;  // capture time of the request's first byte (CLOCK_MONOTONIC)
  std::string method;  // "GET", "POST", ... (HTTP/2: the :method value)
  // Body length as the application sees it: Content-Length or the sum of the
  // chunk sizes (HTTP/1), the DATA payload (HTTP/2).
  uint64_t bodyLength = 0;
  // Compare mode: the exchange this request's responses belong to (0: none).
  // Set by the pipeline; a mirror connection given a request with an exchange
  // id reports its response (or its absence) for that exchange.
  uint64_t exchangeId = 0;

  // --- HTTP/1 only: the wire bytes and positions within them.
  std::string bytes;
  // The (single) Host header's value, without surrounding whitespace;
  // hostLength == 0 when the request has no Host.
  size_t hostOffset = 0;
  size_t hostLength = 0;
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
  // llhttp took it for a protocol upgrade (Connection: upgrade + Upgrade): the
  // framer gives the rest of the stream up after it.
  bool upgrade = false;
  // Position of bytes[0] in the stream of delivered bytes (gaps are not counted).
  uint64_t streamOffset = 0;
  // Gaps (bytes never captured) in the stream before this request: the
  // requests lost in them make pairing responses by order impossible.
  uint32_t gapsBefore = 0;
  // A streamed request (larger than the framer's whole-request limit): `bytes`
  // holds its head and the body bytes framed so far, `body` the rest as it
  // arrives (bodyLength is the Content-Length, or 0 for a chunked body whose
  // size is not known yet). It has one consumer: whoever holds the request
  // last (a mirror connection); copies must not keep it (see isStreamed()).
  std::shared_ptr<BodyStream> bodyStream;

  // --- HTTP/2 only.
  int32_t streamId = 0;
  std::vector<HeaderField> headers;
  std::string body;
  std::vector<HeaderField> trailers;

  bool isHttp2() const { return protocol == Protocol::kHttp2; }
  bool isStreamed() const { return bodyStream != nullptr; }
  // HTTP/2 producers call this once the stream's fields, body and trailers are
  // in: it sets protocol, method (from :method) and bodyLength.
  void finishHttp2();
  // The host the shadow suffix goes into: Host (HTTP/1); :authority, else
  // host (HTTP/2). Empty when there is none.
  std::string_view authority() const;
  // The request-target (HTTP/1) or :path (HTTP/2).
  std::string_view target() const;
  // HTTP/1: the absolute-form target's host, if any.
  std::string_view targetHost() const {
    return std::string_view(bytes).substr(targetHostOffset, targetHostLength);
  }
  // HTTP/2: the first field named exactly `name` (lowercase), or "". HTTP/1
  // requests keep their fields in `bytes` and answer "".
  std::string_view header(std::string_view name) const;
  // Bytes the request stands for, independent of encoding: the wire bytes
  // (HTTP/1); field names and values as HTTP/1 would carry them plus the body
  // (HTTP/2). What size histograms and queue byte limits count.
  uint64_t size() const;
};

// Where decoded requests go. Called on the capture (worker) thread; must not block.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void onRequest(Request&& request) = 0;
};

}  // namespace shadowtap::model
