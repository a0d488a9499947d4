#include "compare/endpoint.h"

namespace shadowtap::compare {
namespace {

bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool isNumber(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace

bool isUuid(std::string_view s) {
  // 8-4-4-4-12 hex digits.
  if (s.size() != 36) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') {
        return false;
      }
    } else if (!isHex(s[i])) {
      return false;
    }
  }
  return true;
}

std::string endpointOf(std::string_view method, std::string_view target) {
  std::string_view path = target;
  // Absolute form: "http://host:port/path?q".
  if (const size_t scheme = path.find("://"); scheme != std::string_view::npos && path.substr(0, scheme).find('/') == std::string_view::npos) {
    const size_t slash = path.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  if (const size_t q = path.find_first_of("?#"); q != std::string_view::npos) {
    path = path.substr(0, q);
  }
  if (path.empty()) {
    path = "/";
  }
  std::string out(method);
  out += ' ';
  const size_t limit = out.size() + kMaxEndpointPath;
  size_t i = 0;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    const std::string_view segment = path.substr(i, slash - i);
    if (isNumber(segment)) {
      out += "{n}";
    } else if (isUuid(segment)) {
      out += "{uuid}";
    } else {
      out += segment;
    }
    if (slash < path.size()) {
      out += '/';
    }
    if (out.size() > limit) {
      out.resize(limit);
      out += "...";
      break;
    }
    i = slash + 1;
  }
  return out;
}

}  // namespace shadowtap::compare
