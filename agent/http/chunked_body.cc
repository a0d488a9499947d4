#include "http/chunked_body.h"

#include <algorithm>

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

}  // namespace shadowtap::http
