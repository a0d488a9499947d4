#pragma once

#include <cstddef>
#include <string_view>

namespace shadowtap::http {

enum class LineMatch {
  kMatch,     // `data` starts with a complete request line
  kNoMatch,   // it cannot be one, whatever follows
  kNeedMore,  // a prefix of one; decide when more bytes arrive
  kTooLong,   // a prefix of one, but already maxLineBytes long: no match
};

// Used only to resynchronise a stream joined mid-way (or after a gap) before
// llhttp takes over: does `data` begin with `METHOD SP target SP HTTP/1.[01] CRLF`,
// METHOD one of llhttp's HTTP methods (PRI excluded), target visible ASCII?
// A line longer than `maxLineBytes` (CRLF included) never matches (kTooLong),
// so a caller waiting on kNeedMore holds fewer than `maxLineBytes` bytes.
LineMatch matchRequestLine(std::string_view data, size_t maxLineBytes);

// True when `token` is exactly one of the methods matchRequestLine accepts.
bool isKnownMethod(std::string_view token);

// A byte of a method the framer accepts: A-Z, '-' and '_'. Every common server
// takes these; nginx refuses any other byte (lower case, digits and the other
// token characters) with 400, so a method using them is not mirrored.
inline bool isMethodChar(char c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

// llhttp's own spelling (a string literal) of `token` when llhttp 8.1 frames it
// as an HTTP method (its HTTP method table, and PRI for the HTTP/2 preface);
// nullptr for any other method, such as QUERY or an RTSP-only one.
const char* knownMethodName(std::string_view token);

// Where the host[:port] of an absolute-form request-target is
// ("http://user@h:80/x" -> "h:80"), relative to the target.
struct TargetHost {
  bool absoluteForm = false;  // not origin-form ("/..."), not asterisk-form ("*")
  bool userinfo = false;      // "user@" before the host
  size_t offset = 0;
  size_t length = 0;  // 0: absolute-form without a usable authority
};
TargetHost findTargetHost(std::string_view target);

}  // namespace shadowtap::http
