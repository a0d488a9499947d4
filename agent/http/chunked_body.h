#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

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

}  // namespace shadowtap::http
