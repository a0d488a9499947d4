#include "http/request_line.h"

#include <algorithm>
#include <array>

#include <llhttp.h>

namespace shadowtap::http {
namespace {

// llhttp's HTTP (not RTSP) method table: the same set llhttp accepts when it
// parses the line we hand it after a match.
constexpr std::array kMethods = {
#define ST_METHOD_NAME(num, name, string) std::string_view(#string),
    HTTP_METHOD_MAP(ST_METHOD_NAME)
#undef ST_METHOD_NAME
};

bool isMethodPrefix(std::string_view token) {
  return std::any_of(kMethods.begin(), kMethods.end(),
                     [token](std::string_view m) { return m.substr(0, token.size()) == token; });
}

}  // namespace

bool isKnownMethod(std::string_view token) {
  return std::find(kMethods.begin(), kMethods.end(), token) != kMethods.end();
}

LineMatch matchRequestLine(std::string_view data, size_t maxLineBytes) {
  const size_t n = std::min(data.size(), maxLineBytes);
  // Running out of bytes is only "need more" while the line may still fit.
  const LineMatch outOfData = data.size() < maxLineBytes ? LineMatch::kNeedMore : LineMatch::kNoMatch;

  size_t i = 0;
  while (i < n && ((data[i] >= 'A' && data[i] <= 'Z') || data[i] == '-')) {
    ++i;
  }
  const std::string_view method = data.substr(0, i);
  if (i == n) {
    return isMethodPrefix(method) ? outOfData : LineMatch::kNoMatch;
  }
  if (data[i] != ' ' || !isKnownMethod(method)) {
    return LineMatch::kNoMatch;
  }
  ++i;

  const size_t targetStart = i;
  while (i < n) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c <= 0x20 || c == 0x7f) {
      break;
    }
    ++i;
  }
  if (i == n) {
    return outOfData;
  }
  if (i == targetStart || data[i] != ' ') {
    return LineMatch::kNoMatch;
  }
  ++i;

  static constexpr std::string_view kVersion = "HTTP/1.?\r\n";
  for (size_t k = 0; k < kVersion.size(); ++k, ++i) {
    if (i == n) {
      return outOfData;
    }
    const char want = kVersion[k];
    const bool ok = want == '?' ? (data[i] == '0' || data[i] == '1') : data[i] == want;
    if (!ok) {
      return LineMatch::kNoMatch;
    }
  }
  return LineMatch::kMatch;
}

}  // namespace shadowtap::http
