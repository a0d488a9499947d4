#include "http/host_rewrite.h"

namespace shadowtap::http {

size_t hostPortStart(std::string_view host) {
  const size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) {
    return std::string_view::npos;
  }
  const size_t bracket = host.rfind(']');
  if (bracket == std::string_view::npos || bracket < colon) {
    return colon;
  }
  return std::string_view::npos;
}

std::string appendShadowSuffix(std::string_view host, std::string_view suffix) {
  const size_t port = hostPortStart(host);
  const size_t split = port == std::string_view::npos ? host.size() : port;
  std::string out;
  out.reserve(host.size() + suffix.size());
  out.append(host.substr(0, split));
  out.append(suffix);
  out.append(host.substr(split));
  return out;
}

std::string rewriteRequestHost(const Request& r, std::string_view suffix) {
  if (r.hostLength == 0 || r.hostOffset + r.hostLength > r.bytes.size()) {
    return r.bytes;
  }
  const std::string_view bytes(r.bytes);
  const std::string_view host = bytes.substr(r.hostOffset, r.hostLength);
  const size_t port = hostPortStart(host);
  // Absolute index in `bytes` where the suffix goes.
  const size_t insertAt = r.hostOffset + (port == std::string_view::npos ? host.size() : port);
  std::string out;
  out.reserve(bytes.size() + suffix.size());
  out.append(bytes.substr(0, insertAt));
  out.append(suffix);
  out.append(bytes.substr(insertAt));
  return out;
}

bool hostHasSuffix(std::string_view host, std::string_view suffix) {
  if (suffix.empty()) {
    return false;
  }
  const size_t port = hostPortStart(host);
  const std::string_view name = port == std::string_view::npos ? host : host.substr(0, port);
  if (name.size() < suffix.size()) {
    return false;
  }
  const std::string_view tail = name.substr(name.size() - suffix.size());
  for (size_t i = 0; i < tail.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c + ('a' - 'A')) : c; };
    if (lower(tail[i]) != lower(suffix[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace shadowtap::http
