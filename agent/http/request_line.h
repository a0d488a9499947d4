#pragma once

#include <cstddef>
#include <string_view>

namespace shadowtap::http {

enum class LineMatch {
  kMatch,     // `data` starts with a complete request line
  kNoMatch,   // it cannot be one, whatever follows
  kNeedMore,  // a prefix of one; decide when more bytes arrive
};

// Used only to resynchronise a stream joined mid-way (or after a gap) before
// llhttp takes over: does `data` begin with `METHOD SP target SP HTTP/1.[01] CRLF`,
// METHOD one of llhttp's HTTP methods (PRI excluded), target visible ASCII?
// A line longer than `maxLineBytes` (CRLF included) never matches, so a caller
// waiting on kNeedMore holds fewer than `maxLineBytes` bytes.
LineMatch matchRequestLine(std::string_view data, size_t maxLineBytes);

// True when `token` is exactly one of the methods matchRequestLine accepts.
bool isKnownMethod(std::string_view token);

}  // namespace shadowtap::http
