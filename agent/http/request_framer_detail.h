#pragma once

// Private to RequestFramer's source files (request_framer*.cc): the helpers
// and constants they share. Not part of the http layer's interface.

#include <llhttp.h>

#include <cstdint>
#include <cstring>
#include <string_view>

#include "http/request_framer.h"

namespace shadowtap::http::framer_detail {

inline RequestFramer& framerOf(llhttp_t* parser) { return *static_cast<RequestFramer*>(parser->data); }

// Header names the framer looks for (bits of fieldMatch_).
inline constexpr uint8_t kFieldHost = 1;
inline constexpr uint8_t kFieldTransferEncoding = 2;
inline constexpr std::string_view kFieldNames[] = {"host", "transfer-encoding"};

// llhttp is given this method in place of one it does not know: every request
// method is framed the same way (Content-Length or chunked, else no body), and
// llhttp only treats CONNECT and PRI apart.
inline constexpr std::string_view kStandInMethod = "POST";

inline void initParser(llhttp_t& parser, const llhttp_settings_t& settings, void* data) {
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = data;
  // Lets a header line end in LF alone (as nginx and most servers do). It also
  // lets through what the framer then refuses itself: any control byte in a
  // value, a SP before a colon (refused as a SP in the name) and a SP before
  // the first header line.
  llhttp_set_lenient_headers(&parser, 1);
}

inline bool isControl(uint8_t c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// A control byte other than HT in `s`; eight bytes at a time, as header values
// are most of a request's head.
inline bool hasControl(const char* s, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    // A byte below 0x20, or equal to 0x7f (then 0 after the xor): look closer.
    const uint64_t below = (w - kOnes * 0x20) & ~w & kHighs;
    const uint64_t del = w ^ (kOnes * 0x7f);
    if ((below | ((del - kOnes) & ~del & kHighs)) != 0) {
      for (size_t k = i; k < i + 8; ++k) {
        if (isControl(static_cast<uint8_t>(s[k]))) {
          return true;
        }
      }
    }
  }
  for (; i < n; ++i) {
    if (isControl(static_cast<uint8_t>(s[i]))) {
      return true;
    }
  }
  return false;
}

// A CR not followed by LF (or at the very end).
inline bool hasBareCr(std::string_view s) {
  for (size_t i = s.find('\r'); i != std::string_view::npos; i = s.find('\r', i + 1)) {
    if (i + 1 == s.size() || s[i + 1] != '\n') {
      return true;
    }
  }
  return false;
}

// A LF not preceded by CR.
inline bool hasBareLf(std::string_view s) {
  for (size_t i = s.find('\n'); i != std::string_view::npos; i = s.find('\n', i + 1)) {
    if (i == 0 || s[i - 1] != '\r') {
      return true;
    }
  }
  return false;
}

}  // namespace shadowtap::http::framer_detail
