#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/header_field.h"

namespace shadowtap::http {

// Checks a chunked body as its bytes arrive, in pieces cut anywhere: exactly
// 1*HEXDIG [chunk-ext] CRLF data CRLF ... "0" [chunk-ext] CRLF *(trailer CRLF) CRLF,
// every line ended by CRLF and holding no other CR. llhttp frames the body
// first; outside strict mode it takes CR followed by any byte as a line end in
// chunk framing, which a strict server would frame differently. Data bytes are
// skipped, not scanned: the cost is per line byte, not per body byte.
class ChunkedBodyChecker {
 public:
  // False once the bytes so far cannot begin a well-formed body (and from then on).
  bool feed(std::string_view piece);
  // The body ended exactly at the last byte fed.
  bool complete() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }

 private:
  enum class State : uint8_t { kSize, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailer, kTrailerLf, kDone, kFailed };
  bool fail() {
    state_ = State::kFailed;
    return false;
  }

  State state_ = State::kSize;
  uint64_t size_ = 0;
  uint32_t digits_ = 0;
  uint64_t left_ = 0;       // data bytes of the current chunk still to come
  uint64_t lineBytes_ = 0;  // of the current trailer line, before its CR
};

// True when `body` is exactly a well-formed chunked body (ChunkedBodyChecker).
bool isWellFormedChunkedBody(std::string_view body);

// A whole chunked body decoded.
struct DecodedChunked {
  std::string data;  // the chunks' data, joined
  // The trailer fields in order: names as sent, values without the OWS around
  // them. A trailer line without a colon is no field and is left out.
  std::vector<model::HeaderField> trailers;
};

// Decodes `body` when isWellFormedChunkedBody(body), nullopt otherwise. It
// runs that check first, so the decoder and the framer cannot disagree on
// which bodies are chunked bodies.
std::optional<DecodedChunked> decodeChunkedBody(std::string_view body);

// True when the last coding in a Transfer-Encoding value (the last
// comma-separated element, without the spaces and tabs around it) is
// "chunked", any case: the body is then framed by chunks (RFC 9112 6.3).
bool endsInChunked(std::string_view transferEncodingValue);

}  // namespace shadowtap::http
