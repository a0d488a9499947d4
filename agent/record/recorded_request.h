#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "model/request.h"
#include "record/record_options.h"

namespace shadowtap::record {

// One request as the recordings store it (HAR entry, JSON line), and as
// `shadowtap replay` reads it back. Request line and headers are kept as
// fields, so a rebuilt request is "NAME: value" with one space after each
// colon and CRLF line ends; everything else (order, case, duplicates, the
// body as framed) comes back byte for byte.
struct RecordedRequest {
  int64_t unixNs = 0;  // wall-clock time of the request's first byte
  std::string flow;    // "198.18.0.1:40000->198.18.0.2:8000"; requests of one flow keep their order
  uint32_t ruleId = 0;
  std::string method;
  std::string target;                // request-target as sent
  std::string httpVersion = "HTTP/1.1";
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values without surrounding OWS
  // The body as the application sees it (chunks joined). Empty and
  // bodyKept=false when bodies are not recorded.
  std::string body;
  bool bodyKept = true;
  uint64_t bodyLength = 0;
  std::string bodySha256;  // hex of the application body
  // The body as framed on the wire when it differs from `body` (chunked:
  // chunk sizes, extensions, trailers); empty otherwise.
  std::string wireBody;
  size_t headSize = 0;  // bytes of request line + headers + blank line, as captured (0: HTTP/2)

  // HTTP/2 (httpVersion == kHttp2Version): `headers` holds every field in
  // wire order, pseudo-headers (":method", ":path", ...) included, and
  // method/target repeat :method/:path. The trailing HEADERS fields follow
  // here; the never-index flags (RFC 7541 6.2.3) as indices into headers and
  // trailers. Empty for HTTP/1 (whose trailers stay in wireBody).
  std::vector<std::pair<std::string, std::string>> trailers;
  std::vector<uint32_t> neverIndexHeaders;
  std::vector<uint32_t> neverIndexTrailers;

  bool isHttp2() const;
  bool operator==(const RecordedRequest&) const = default;
};

// How recordings name HTTP/2.
inline constexpr std::string_view kHttp2Version = "HTTP/2";
// True for the spellings of HTTP/2 in recordings (ours and browsers'):
// "HTTP/2", "HTTP/2.0", "h2", "h2c", any case.
bool isHttp2Version(std::string_view version);

// Splits a framed request (model::Request from the framer) into fields.
// nullopt when the head does not split into "NAME:value" CRLF lines or a
// chunked body does not decode (never for the framer's output).
std::optional<RecordedRequest> splitRequest(const model::Request& r, int64_t realtimeOffsetNs, bool keepBodies);

// How many of r's method, target, header and trailer names and values are not
// UTF-8 (the body is not looked at: it is kept as base64 when not text).
uint64_t fieldsNotUtf8(const RecordedRequest& r);

// Replaces sensitive values with kRedactedMarker: the values of the headers
// (and HTTP/2 trailers) named in kDefaultRedactedHeaders and `extraHeaders`
// (any case) and of the query parameters named in `queryParams` (in the
// target, and in an HTTP/2 request's :path field). Returns how many values
// were replaced.
class Redactor {
 public:
  Redactor(bool enabled, const std::vector<std::string>& extraHeaders, const std::vector<std::string>& queryParams);
  size_t apply(RecordedRequest& r) const;
  // The target with the values of the configured query parameters replaced.
  std::string redactTarget(std::string_view target, size_t* replaced) const;
  bool headerRedacted(std::string_view name) const;

 private:
  bool enabled_;
  std::vector<std::string> headers_;  // lower case
  std::vector<std::string> query_;
};

// Why `r` cannot be put on the wire as recorded; empty when it can. A CR, LF
// or NUL in the method, target, version or a header or trailer name or value
// would end a line early and smuggle another header or a second request onto
// the mirror's connection; a space or control byte in the request line, or a
// field name that is not a token (a colon or space in it: "X-A: b" as a name
// is the header X-A to the mirror), would make the mirror read other fields
// than the ones recorded. A reader must reject such a record. HTTP/2 records
// may name pseudo-headers (":path").
std::string unsendableReason(const RecordedRequest& r);

// The request bytes rebuilt from the fields (see unsendableReason): request line, headers, blank
// line, then wireBody if set, else body. Host (and the authority of an
// absolute-form target) get `suffix` as in live mirroring (empty: unchanged).
std::string buildRequestBytes(const RecordedRequest& r, std::string_view suffix);

}  // namespace shadowtap::record
