#include "http/host_rewrite.h"

#include <cstring>
#include <utility>

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

namespace {

// Where the suffix goes for a host[:port] at [offset, offset + length) of `bytes`.
size_t insertPoint(std::string_view bytes, size_t offset, size_t length) {
  const std::string_view host = bytes.substr(offset, length);
  const size_t port = hostPortStart(host);
  return offset + (port == std::string_view::npos ? host.size() : port);
}

// Where the suffix goes, in increasing order (the request line's authority
// precedes the headers); returns how many points (0-2).
size_t rewritePoints(const model::Request& r, size_t points[2]) {
  const std::string_view bytes(r.bytes);
  size_t n = 0;
  if (r.targetHostLength != 0 && r.targetHostOffset + r.targetHostLength <= bytes.size()) {
    points[n++] = insertPoint(bytes, r.targetHostOffset, r.targetHostLength);
  }
  if (r.hostLength != 0 && r.hostOffset + r.hostLength <= bytes.size()) {
    const size_t p = insertPoint(bytes, r.hostOffset, r.hostLength);
    if (n == 0 || p > points[0]) {
      points[n++] = p;
    }
  }
  return n;
}

}  // namespace

std::string rewriteRequestHost(const model::Request& r, std::string_view suffix) {
  size_t points[2];
  const size_t n = rewritePoints(r, points);
  if (n == 0) {
    return r.bytes;
  }
  const std::string_view bytes(r.bytes);
  std::string out;
  out.reserve(bytes.size() + n * suffix.size());
  size_t from = 0;
  for (size_t i = 0; i < n; ++i) {
    out.append(bytes.substr(from, points[i] - from));
    out.append(suffix);
    from = points[i];
  }
  out.append(bytes.substr(from));
  return out;
}

void rewriteHostInPlace(model::Request& r, std::string_view suffix) {
  size_t points[2];
  const size_t n = suffix.empty() ? 0 : rewritePoints(r, points);
  if (n == 0) {
    return;
  }
  std::string& out = r.bytes;
  const size_t k = suffix.size();
  const size_t old = out.size();
  out.resize(old + n * k);
  char* p = out.data();
  // From the back: the part after point i moves by (i + 1) suffixes, then the
  // suffix goes in front of it; the body moves once.
  for (size_t i = n; i-- > 0;) {
    const size_t from = points[i];
    const size_t to = i + 1 < n ? points[i + 1] : old;
    std::memmove(p + from + (i + 1) * k, p + from, to - from);
    std::memcpy(p + from + i * k, suffix.data(), k);
  }
}

std::string takeRewrittenRequest(model::Request&& r, std::string_view suffix) {
  rewriteHostInPlace(r, suffix);
  return std::exchange(r.bytes, std::string());
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
