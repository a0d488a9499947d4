#include "http/chunked_body.h"

#include <algorithm>
#include <cassert>

#include "base/strings.h"

namespace shadowtap::http {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

bool ChunkedBodyChecker::feed(std::string_view piece) {
  size_t i = 0;
  while (i < piece.size()) {
    const char c = piece[i];
    switch (state_) {
      case State::kSize:
        if (const int v = hexValue(c); v >= 0) {
          if (size_ > (UINT64_MAX >> 4)) {
            return fail();
          }
          size_ = (size_ << 4) | static_cast<uint64_t>(v);
          ++digits_;
          break;
        }
        if (digits_ == 0) {
          return fail();
        }
        state_ = State::kExtension;
        continue;  // the byte after the digits belongs to the extension (or is the CR)
      case State::kExtension:
        if (c == '\n') {
          return fail();
        }
        state_ = c == '\r' ? State::kSizeLf : state_;
        break;
      case State::kSizeLf:
        if (c != '\n') {
          return fail();
        }
        left_ = size_;
        state_ = size_ == 0 ? State::kTrailer : State::kData;
        size_ = 0;
        digits_ = 0;
        lineBytes_ = 0;
        break;
      case State::kData: {
        const uint64_t take = std::min<uint64_t>(left_, piece.size() - i);
        left_ -= take;
        i += take;
        if (left_ == 0) {
          state_ = State::kDataCr;
        }
        continue;
      }
      case State::kDataCr:
      case State::kDataLf:
        if (c != (state_ == State::kDataCr ? '\r' : '\n')) {
          return fail();
        }
        state_ = state_ == State::kDataCr ? State::kDataLf : State::kSize;
        break;
      case State::kTrailer:
        if (c == '\n') {
          return fail();
        }
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else {
          ++lineBytes_;
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') {
          return fail();
        }
        state_ = lineBytes_ == 0 ? State::kDone : State::kTrailer;
        lineBytes_ = 0;
        break;
      case State::kDone:  // nothing may follow the blank line that ends the body
      case State::kFailed:
        return fail();
    }
    ++i;
  }
  return state_ != State::kFailed;
}

bool isWellFormedChunkedBody(std::string_view body) {
  ChunkedBodyChecker checker;
  return checker.feed(body) && checker.complete();
}

std::optional<DecodedChunked> decodeChunkedBody(std::string_view body) {
  if (!isWellFormedChunkedBody(body)) {
    return std::nullopt;
  }
  // From here on the checker's guarantees hold: every line ends in CRLF, a
  // size line starts with hex digits whose value fits in 64 bits (the chunk
  // extension, if any, follows them), each chunk's data is followed by CRLF
  // and lies inside `body`, and the body ends with the empty line after the
  // trailers.
  DecodedChunked out;
  size_t i = 0;
  while (true) {
    const size_t eol = body.find("\r\n", i);
    assert(eol != std::string_view::npos);
    uint64_t size = 0;
    for (; i < eol && hexValue(body[i]) >= 0; ++i) {
      size = (size << 4) | static_cast<uint64_t>(hexValue(body[i]));
    }
    i = eol + 2;
    if (size == 0) {
      break;
    }
    out.data.append(body.substr(i, size));
    i += size + 2;
  }
  for (size_t eol = body.find("\r\n", i); eol != i; i = eol + 2, eol = body.find("\r\n", i)) {
    assert(eol != std::string_view::npos);
    const std::string_view line = body.substr(i, eol - i);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      out.trailers.push_back({std::string(line.substr(0, colon)), std::string(base::trimOws(line.substr(colon + 1)))});
    }
  }
  return out;
}

bool endsInChunked(std::string_view transferEncodingValue) {
  const size_t comma = transferEncodingValue.rfind(',');
  const std::string_view last =
      comma == std::string_view::npos ? transferEncodingValue : transferEncodingValue.substr(comma + 1);
  return base::equalsIgnoreCase(base::trimOws(last), "chunked");
}

}  // namespace shadowtap::http
