#include "record/recorded_request.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "base/strings.h"
#include "http/chunked_body.h"
#include "http/host_rewrite.h"
#include "http/request_line.h"
#include "record/codec.h"

namespace shadowtap::record {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The server side of a recorded flow ("198.18.0.1:40000->198.18.0.2:8000",
// "[..]:p->[2001:db8::2]:80"): what an HTTP/1.0 request without Host names in
// the Host the rewrite adds. Port 0 when the text names none.
model::FlowKey destinationOf(std::string_view flowText) {
  model::FlowKey k;
  const size_t arrow = flowText.find("->");
  const std::string_view d = arrow == std::string_view::npos ? std::string_view() : flowText.substr(arrow + 2);
  const size_t colon = d.rfind(':');
  if (colon == std::string_view::npos) {
    return k;
  }
  std::string addr(d.substr(0, colon));
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') {
    addr = addr.substr(1, addr.size() - 2);
  }
  uint16_t port = 0;
  const std::string_view p = d.substr(colon + 1);
  if (std::from_chars(p.data(), p.data() + p.size(), port).ec != std::errc()) {
    return k;
  }
  if (inet_pton(AF_INET, addr.c_str(), k.daddr.data()) == 1) {
    k.family = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), k.daddr.data()) == 1) {
    k.family = 6;
  } else {
    return k;
  }
  k.dport = port;
  return k;
}

}  // namespace

bool RecordedRequest::isHttp2() const { return httpVersion == kHttp2Version; }

bool isHttp2Version(std::string_view v) {
  return base::equalsIgnoreCase(v, "HTTP/2") || base::equalsIgnoreCase(v, "HTTP/2.0") || base::equalsIgnoreCase(v, "h2") ||
         base::equalsIgnoreCase(v, "h2c");
}

uint64_t fieldsNotUtf8(const RecordedRequest& r) {
  uint64_t n = !isValidUtf8(r.method) + !isValidUtf8(r.target);
  for (const auto* fields : {&r.headers, &r.trailers}) {
    for (const auto& [name, value] : *fields) {
      n += !isValidUtf8(name) + !isValidUtf8(value);
    }
  }
  return n;
}

std::optional<RecordedRequest> splitRequest(const model::Request& r, int64_t realtimeOffsetNs, bool keepBodies) {
  RecordedRequest out;
  out.unixNs = static_cast<int64_t>(r.tsNs) + realtimeOffsetNs;
  out.flow = r.flow.toString();
  out.ruleId = r.ruleId;
  const std::string_view bytes(r.bytes);
  if (r.bodyOffset < 4 || r.bodyOffset > bytes.size() || bytes.substr(r.bodyOffset - 4, 4) != "\r\n\r\n") {
    return std::nullopt;
  }
  out.headSize = r.bodyOffset;
  const std::string_view head = bytes.substr(0, r.bodyOffset - 2);  // every line keeps its CRLF
  size_t lineEnd = head.find("\r\n");
  const std::string_view requestLine = head.substr(0, lineEnd);
  const size_t sp1 = requestLine.find(' ');
  const size_t sp2 = requestLine.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    return std::nullopt;
  }
  out.method = std::string(requestLine.substr(0, sp1));
  out.target = std::string(requestLine.substr(sp1 + 1, sp2 - sp1 - 1));
  out.httpVersion = std::string(requestLine.substr(sp2 + 1));
  bool chunked = false;
  size_t pos = lineEnd + 2;
  while (pos < head.size()) {
    lineEnd = head.find("\r\n", pos);
    if (lineEnd == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view line = head.substr(pos, lineEnd - pos);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return std::nullopt;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = base::trimOws(line.substr(colon + 1));
    if (base::equalsIgnoreCase(name, "transfer-encoding")) {
      chunked = http::endsInChunked(value);
    }
    out.headers.emplace_back(std::string(name), std::string(value));
    pos = lineEnd + 2;
  }
  const std::string_view wire = bytes.substr(r.bodyOffset);
  std::string body;
  if (chunked) {
    auto decoded = http::decodeChunkedBody(wire);
    if (!decoded) {
      return std::nullopt;
    }
    body = std::move(decoded->data);
  } else {
    body = std::string(wire);
  }
  out.bodyLength = body.size();
  out.bodySha256 = sha256Hex(body);
  out.bodyKept = keepBodies;
  if (keepBodies) {
    if (chunked) {
      out.wireBody = std::string(wire);
    }
    out.body = std::move(body);
  }
  return out;
}

Redactor::Redactor(bool enabled, const std::vector<std::string>& extraHeaders,
                   const std::vector<std::string>& queryParams)
    : enabled_(enabled) {
  if (!enabled_) {
    return;
  }
  for (std::string_view h : kDefaultRedactedHeaders) {
    headers_.emplace_back(h);
  }
  for (const auto& h : extraHeaders) {
    headers_.push_back(lower(h));
  }
  query_ = queryParams;
}

bool Redactor::headerRedacted(std::string_view name) const {
  return std::any_of(headers_.begin(), headers_.end(), [&](const std::string& h) { return base::equalsIgnoreCase(h, name); });
}

std::string Redactor::redactTarget(std::string_view target, size_t* replaced) const {
  const size_t q = target.find('?');
  if (!enabled_ || query_.empty() || q == std::string_view::npos) {
    return std::string(target);
  }
  const size_t hash = target.find('#', q);
  const std::string_view query = target.substr(q + 1, hash == std::string_view::npos ? std::string_view::npos : hash - q - 1);
  std::string out(target.substr(0, q + 1));
  size_t i = 0;
  bool first = true;
  while (i <= query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) {
      amp = query.size();
    }
    const std::string_view pair = query.substr(i, amp - i);
    if (!first) {
      out += '&';
    }
    first = false;
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    if (eq != std::string_view::npos && std::find(query_.begin(), query_.end(), name) != query_.end()) {
      out.append(name);
      out += '=';
      out.append(kRedactedMarker);
      ++*replaced;
    } else {
      out.append(pair);
    }
    i = amp + 1;
  }
  if (hash != std::string_view::npos) {
    out.append(target.substr(hash));
  }
  return out;
}

size_t Redactor::apply(RecordedRequest& r) const {
  if (!enabled_) {
    return 0;
  }
  size_t replaced = 0;
  for (auto& [name, value] : r.headers) {
    if (headerRedacted(name)) {
      value = std::string(kRedactedMarker);
      ++replaced;
    } else if (name == ":path") {
      // HTTP/2: the query lives in :path; r.target repeats it (counted once).
      size_t ignored = 0;
      value = redactTarget(value, &ignored);
    }
  }
  for (auto& [name, value] : r.trailers) {
    if (headerRedacted(name)) {
      value = std::string(kRedactedMarker);
      ++replaced;
    }
  }
  r.target = redactTarget(r.target, &replaced);
  return replaced;
}

namespace {

// HTTP/1 only: why the body would not end where the head says it does (the
// bytes after that would reach the mirror as another request), judged as the
// framer judges a captured request; empty when it does. A body not recorded
// is not judged when replay skips the record for it (bodyLength > 0); one of
// length 0 goes out bodiless and is judged so.
std::string bodyFramingReason(const RecordedRequest& r) {
  if (r.isHttp2() || (!r.bodyKept && r.bodyLength > 0)) {
    return "";
  }
  std::optional<std::string_view> length;
  int encodings = 0;
  bool chunked = false;
  for (const auto& [name, value] : r.headers) {
    const std::string_view v = base::trimOws(value);
    if (base::equalsIgnoreCase(name, "content-length")) {
      if (length && *length != v) {
        return "two different Content-Length values";
      }
      length = v;
    } else if (base::equalsIgnoreCase(name, "transfer-encoding")) {
      ++encodings;
      chunked = http::endsInChunked(v);
    }
  }
  const std::string_view sent = r.wireBody.empty() ? std::string_view(r.body) : std::string_view(r.wireBody);
  if (encodings > 0) {
    if (length) {
      return "both Content-Length and Transfer-Encoding";
    }
    if (encodings > 1) {
      return "Transfer-Encoding given more than once";
    }
    if (base::equalsIgnoreCase(r.httpVersion, "HTTP/1.0")) {
      return "Transfer-Encoding in an HTTP/1.0 request";
    }
    if (!chunked) {
      return "Transfer-Encoding does not end with chunked";
    }
    return http::isWellFormedChunkedBody(sent) ? "" : "body is not one whole chunked body";
  }
  if (length) {
    uint64_t n = 0;
    const char* end = length->data() + length->size();
    const auto [ptr, ec] = std::from_chars(length->data(), end, n);
    if (ec != std::errc() || ptr != end || n != sent.size()) {
      return "body is not Content-Length (" + std::string(*length) + ") bytes long";
    }
  }
  return !length && !sent.empty() ? "body without Content-Length or Transfer-Encoding" : "";
}

}  // namespace

std::string unsendableReason(const RecordedRequest& r) {
  const auto breaksLine = [](std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos; };
  // A space or control byte would split the request line differently on the mirror.
  const auto splitsWord = [](std::string_view s) {
    return std::ranges::any_of(s, [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == '\x7f'; });
  };
  // HTTP/2's pseudo-header names (":path") are a token after the colon.
  const auto isName = [h2 = r.isHttp2()](std::string_view n) {
    return base::isToken(h2 && n.starts_with(':') ? n.substr(1) : n);
  };
  const char* kWhat = " contains CR, LF or NUL";
  for (const auto& [what, text] : {std::pair{"method", &r.method}, {"target", &r.target}, {"version", &r.httpVersion}}) {
    if (breaksLine(*text)) {
      return std::string(what) + kWhat;
    }
    if (splitsWord(*text)) {
      return std::string(what) + " contains a space or control character";
    }
  }
  if (!base::isToken(r.method)) {
    return "method is not a token (RFC 9110)";
  }
  for (const auto& [kind, fields] : {std::pair{"header", &r.headers}, {"trailer", &r.trailers}}) {
    for (size_t i = 0; i < fields->size(); ++i) {
      const auto& [name, value] = (*fields)[i];
      const std::string where = std::string(kind) + " " + std::to_string(i + 1);
      if (breaksLine(name) || breaksLine(value)) {
        return where + (breaksLine(name) ? " name" : " value") + kWhat;
      }
      if (!isName(name)) {
        return where + " name is not a token (RFC 9110)";
      }
    }
  }
  return bodyFramingReason(r);
}

std::string buildRequestBytes(const RecordedRequest& r, std::string_view suffix) {
  model::Request req;
  std::string& b = req.bytes;
  b.reserve(r.target.size() + 64 + r.headers.size() * 32 + std::max(r.body.size(), r.wireBody.size()));
  b += r.method;
  b += ' ';
  req.targetOffset = b.size();
  req.targetLength = r.target.size();
  b += r.target;
  b += ' ';
  b += r.httpVersion;
  b += "\r\n";
  for (const auto& [name, value] : r.headers) {
    b += name;
    b += value.empty() ? ":" : ": ";
    if (req.hostLength == 0 && base::equalsIgnoreCase(name, "host")) {
      req.hostOffset = b.size();
      req.hostLength = value.size();
    }
    b += value;
    b += "\r\n";
  }
  b += "\r\n";
  req.bodyOffset = b.size();
  b += r.wireBody.empty() ? r.body : r.wireBody;
  req.flow = destinationOf(r.flow);  // for an HTTP/1.0 request without Host
  const http::TargetHost th = http::findTargetHost(r.target);
  if (th.absoluteForm && th.length > 0) {
    req.targetHostOffset = req.targetOffset + th.offset;
    req.targetHostLength = th.length;
  }
  return http::rewriteRequestHost(req, suffix);
}

}  // namespace shadowtap::record
