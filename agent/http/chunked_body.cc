#include "http/chunked_body.h"

#include <cstdint>

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

// Length of the line at `i` up to its LF (exclusive), or npos. The line must end
// in CRLF and contain no other CR.
size_t crlfLine(std::string_view s, size_t i) {
  const size_t lf = s.find('\n', i);
  if (lf == std::string_view::npos || lf == i || s[lf - 1] != '\r') {
    return std::string_view::npos;
  }
  const size_t cr = s.find('\r', i);
  if (cr != lf - 1) {
    return std::string_view::npos;
  }
  return lf - i;
}

}  // namespace

bool isWellFormedChunkedBody(std::string_view body) {
  size_t i = 0;
  for (;;) {
    const size_t line = crlfLine(body, i);
    if (line == std::string_view::npos) {
      return false;
    }
    uint64_t size = 0;
    size_t digits = 0;
    for (size_t k = i; k < i + line - 1; ++k) {
      const int v = hexValue(body[k]);
      if (v < 0) {
        break;
      }
      if (size > (UINT64_MAX >> 4)) {
        return false;
      }
      size = (size << 4) | static_cast<uint64_t>(v);
      ++digits;
    }
    if (digits == 0) {
      return false;
    }
    i += line + 1;
    if (size == 0) {
      break;
    }
    if (size > body.size() - i || body.size() - i - size < 2) {
      return false;
    }
    i += size;
    if (body[i] != '\r' || body[i + 1] != '\n') {
      return false;
    }
    i += 2;
  }
  // Trailer lines, then the empty line that ends the body.
  for (;;) {
    const size_t line = crlfLine(body, i);
    if (line == std::string_view::npos) {
      return false;
    }
    i += line + 1;
    if (line == 1) {
      return i == body.size();
    }
  }
}

}  // namespace shadowtap::http
