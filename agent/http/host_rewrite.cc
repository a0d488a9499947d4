#include "http/host_rewrite.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

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

std::string destinationAuthority(const model::FlowKey& key) {
  char addr[INET6_ADDRSTRLEN] = {};
  std::string out;
  if (key.family == 6) {
    inet_ntop(AF_INET6, key.daddr.data(), addr, sizeof(addr));
    out.append("[").append(addr).append("]");
  } else {
    inet_ntop(AF_INET, key.daddr.data(), addr, sizeof(addr));
    out.append(addr);
  }
  if (key.dport != 80) {
    out.append(":").append(std::to_string(key.dport));
  }
  return out;
}

namespace {

// Where the suffix goes for a host[:port] at [offset, offset + length) of `bytes`.
size_t insertPoint(std::string_view bytes, size_t offset, size_t length) {
  const std::string_view host = bytes.substr(offset, length);
  const size_t port = hostPortStart(host);
  return offset + (port == std::string_view::npos ? host.size() : port);
}

// One insertion into the request's bytes.
struct Edit {
  size_t at = 0;
  std::string_view text;
};

// The insertions, in increasing order (the request line's authority precedes
// the headers): the suffix after the target's host (absolute form) and after
// the Host value's host, or, without Host (HTTP/1.0), a whole Host line after
// the request line, made in `hostLine`. Returns how many (0-2).
size_t rewriteEdits(const model::Request& r, std::string_view suffix, std::string& hostLine, Edit edits[2]) {
  const std::string_view bytes(r.bytes);
  size_t n = 0;
  const bool targetHost = r.targetHostLength != 0 && r.targetHostOffset + r.targetHostLength <= bytes.size();
  if (targetHost && !suffix.empty()) {
    edits[n++] = {insertPoint(bytes, r.targetHostOffset, r.targetHostLength), suffix};
  }
  if (r.hostLength != 0 && r.hostOffset + r.hostLength <= bytes.size()) {
    const size_t p = insertPoint(bytes, r.hostOffset, r.hostLength);
    if (!suffix.empty() && (n == 0 || p > edits[0].at)) {
      edits[n++] = {p, suffix};
    }
    return n;
  }
  // No Host: only an HTTP/1.0 request gets here (the framer refuses the others).
  // (Port 0: where it was sent is not known, e.g. rebuilt from an old record.)
  const size_t lineEnd = bytes.find('\n', r.targetOffset + r.targetLength);
  if (lineEnd == std::string_view::npos || r.targetOffset + r.targetLength > bytes.size() ||
      (!targetHost && r.flow.dport == 0)) {
    return n;
  }
  hostLine = "Host: ";
  hostLine += appendShadowSuffix(targetHost ? r.targetHost() : std::string_view(destinationAuthority(r.flow)),
                                 suffix);
  hostLine += "\r\n";
  edits[n++] = {lineEnd + 1, hostLine};
  return n;
}

}  // namespace

std::string rewriteRequestHost(const model::Request& r, std::string_view suffix) {
  Edit edits[2];
  std::string hostLine;
  const size_t n = rewriteEdits(r, suffix, hostLine, edits);
  if (n == 0) {
    return r.bytes;
  }
  const std::string_view bytes(r.bytes);
  std::string out;
  out.reserve(bytes.size() + edits[0].text.size() + (n > 1 ? edits[1].text.size() : 0));
  size_t from = 0;
  for (size_t i = 0; i < n; ++i) {
    out.append(bytes.substr(from, edits[i].at - from));
    out.append(edits[i].text);
    from = edits[i].at;
  }
  out.append(bytes.substr(from));
  return out;
}

void rewriteHostInPlace(model::Request& r, std::string_view suffix) {
  Edit edits[2];
  std::string hostLine;
  const size_t n = rewriteEdits(r, suffix, hostLine, edits);
  if (n == 0) {
    return;
  }
  std::string& out = r.bytes;
  const size_t old = out.size();
  size_t grow[2] = {0, 0};  // how far the part after edit i moves
  for (size_t i = 0; i < n; ++i) {
    grow[i] = (i > 0 ? grow[i - 1] : 0) + edits[i].text.size();
  }
  out.resize(old + grow[n - 1]);
  char* p = out.data();
  // From the back: the part after edit i moves by the texts up to i, then the
  // text goes in front of it; the body moves once.
  for (size_t i = n; i-- > 0;) {
    const size_t from = edits[i].at;
    const size_t to = i + 1 < n ? edits[i + 1].at : old;
    std::memmove(p + from + grow[i], p + from, to - from);
    std::memcpy(p + from + grow[i] - edits[i].text.size(), edits[i].text.data(), edits[i].text.size());
  }
}

std::string takeRewrittenRequest(model::Request&& r, std::string_view suffix) {
  rewriteHostInPlace(r, suffix);
  return std::exchange(r.bytes, std::string());
}

namespace {

bool sameIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c + ('a' - 'A')) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view hostPart(std::string_view host) {
  const size_t port = hostPortStart(host);
  return port == std::string_view::npos ? host : host.substr(0, port);
}

}  // namespace

std::string literalHost(std::string_view literal, std::string_view host) {
  if (hostPortStart(literal) != std::string_view::npos) {
    return std::string(literal);
  }
  const size_t port = hostPortStart(host);
  return std::string(literal) + std::string(port == std::string_view::npos ? "" : host.substr(port));
}

bool hostIsLiteral(std::string_view host, std::string_view literal) {
  if (!sameIgnoringCase(hostPart(host), hostPart(literal))) {
    return false;
  }
  return hostPortStart(literal) == std::string_view::npos || host.substr(hostPart(host).size()) ==
                                                                   literal.substr(hostPart(literal).size());
}

std::string replaceRequestHost(const model::Request& r, std::string_view literal) {
  const std::string_view bytes(r.bytes);
  struct Span {
    size_t at, length;
    std::string text;
  };
  std::vector<Span> spans;
  if (r.targetHostLength != 0 && r.targetHostOffset + r.targetHostLength <= bytes.size()) {
    spans.push_back({r.targetHostOffset, r.targetHostLength, literalHost(literal, r.targetHost())});
  }
  if (r.hostLength != 0 && r.hostOffset + r.hostLength <= bytes.size()) {
    spans.push_back({r.hostOffset, r.hostLength, literalHost(literal, r.authority())});
  } else if (const size_t lineEnd = bytes.find('\n', r.targetOffset + r.targetLength);
             lineEnd != std::string_view::npos && r.targetOffset + r.targetLength <= bytes.size()) {
    // HTTP/1.0 without Host: name the literal, with the port the request went to.
    const std::string to = r.targetHostLength != 0 ? std::string(r.targetHost()) : destinationAuthority(r.flow);
    spans.push_back({lineEnd + 1, 0, "Host: " + literalHost(literal, to) + "\r\n"});
  }
  std::string out;
  out.reserve(bytes.size() + 64);
  size_t from = 0;
  for (const Span& s : spans) {
    out.append(bytes.substr(from, s.at - from)).append(s.text);
    from = s.at + s.length;
  }
  out.append(bytes.substr(from));
  return out;
}

std::optional<std::string_view> findHeader(std::string_view bytes, size_t bodyOffset, std::string_view name) {
  const std::string_view head = bytes.substr(0, std::min(bodyOffset, bytes.size()));
  size_t start = head.find('\n');
  while (start != std::string_view::npos && start + 1 < head.size()) {
    ++start;
    const size_t end = head.find('\n', start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && sameIgnoringCase(line.substr(0, colon), name)) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) {
        value.remove_suffix(1);
      }
      return value;
    }
    start = end;
  }
  return std::nullopt;
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
