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

const char* knownMethodName(std::string_view token) {
  static constexpr const char* kNames[] = {
#define ST_METHOD_LITERAL(num, name, string) #string,
      HTTP_METHOD_MAP(ST_METHOD_LITERAL)
#undef ST_METHOD_LITERAL
      "PRI",
  };
  for (const char* name : kNames) {
    if (token == name) {
      return name;
    }
  }
  return nullptr;
}

LineMatch matchRequestLine(std::string_view data, size_t maxLineBytes) {
  const size_t n = std::min(data.size(), maxLineBytes);
  // Running out of bytes is only "need more" while the line may still fit.
  const LineMatch outOfData = data.size() < maxLineBytes ? LineMatch::kNeedMore : LineMatch::kTooLong;

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

TargetHost findTargetHost(std::string_view target) {
  TargetHost th;
  if (target.empty() || target[0] == '/' || target == "*") {
    return th;
  }
  th.absoluteForm = true;
  const size_t scheme = target.find("://");
  if (scheme == std::string_view::npos || scheme == 0) {
    return th;
  }
  const size_t start = scheme + 3;
  size_t end = target.find_first_of("/?#", start);
  if (end == std::string_view::npos) {
    end = target.size();
  }
  const std::string_view authority = target.substr(start, end - start);
  const size_t at = authority.rfind('@');
  const size_t hostStart = at == std::string_view::npos ? 0 : at + 1;
  th.userinfo = at != std::string_view::npos;
  // An authority with only a port (":80") names no host either.
  if (hostStart >= authority.size() || authority[hostStart] == ':') {
    return th;
  }
  th.offset = start + hostStart;
  th.length = authority.size() - hostStart;
  return th;
}

}  // namespace shadowtap::http
