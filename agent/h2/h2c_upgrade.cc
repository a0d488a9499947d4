#include "h2/h2c_upgrade.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "base/strings.h"
#include "http/chunked_body.h"

namespace shadowtap::h2 {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Comma-separated list elements, trimmed and lowercased, empty ones left out.
void splitTokens(std::string_view v, std::vector<std::string>& out) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view item = trim(v.substr(0, comma));
    if (!item.empty()) {
      out.push_back(lower(item));
    }
    if (comma == std::string_view::npos) {
      break;
    }
    v.remove_prefix(comma + 1);
  }
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Header lines of a header section (request line and blank line excluded).
using HeaderLines = std::vector<std::pair<std::string_view, std::string_view>>;

HeaderLines headerLines(std::string_view section) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  while (!section.empty()) {
    const size_t eol = section.find("\r\n");
    std::string_view line = section.substr(0, eol);
    section.remove_prefix(eol == std::string_view::npos ? section.size() : eol + 2);
    if (line.empty()) {
      break;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    out.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
  }
  return out;
}

}  // namespace

bool decodeBase64Url(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return false;
  }
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return false;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

namespace {

// The HTTP/2 request (stream 1) an h2c upgrade request stands for (RFC 7540
// 3.2): pseudo-headers from its line and Host, its fields without the
// connection-specific ones, its body de-chunked. False when the body is not.
bool toH2Request(const model::Request& r, const HeaderLines& fields, const std::vector<std::string>& connection,
                 bool chunked, model::Request& q) {
  const std::string_view bytes(r.bytes);
  q.flow = r.flow;
  q.ruleId = r.ruleId;
  q.streamId = 1;
  q.tsNs = r.tsNs;
  std::string_view target = r.target();
  if (target.starts_with("http://") || target.starts_with("https://")) {
    const size_t authStart = target.find("//") + 2;
    const size_t pathStart = target.find_first_of("/?", authStart);
    target = pathStart == std::string_view::npos ? std::string_view("/") : target.substr(pathStart);
  }
  std::string path(target);
  if (!path.empty() && path.front() == '?') {
    path.insert(path.begin(), '/');
  }
  q.headers.push_back({":method", r.method, false});
  q.headers.push_back({":scheme", "http", false});
  if (r.hostLength > 0) {
    q.headers.push_back({":authority", std::string(r.authority()), false});
  }
  q.headers.push_back({":path", path, false});
  for (const auto& [name, value] : fields) {
    std::string n = lower(name);
    if (n == "connection" || n == "upgrade" || n == "http2-settings" || n == "keep-alive" ||
        n == "proxy-connection" || n == "transfer-encoding" || n == "host" || contains(connection, n) ||
        (n == "te" && lower(value) != "trailers")) {
      continue;
    }
    q.headers.push_back({std::move(n), std::string(value), false});
  }
  const std::string_view framedBody = bytes.substr(r.bodyOffset);
  if (chunked) {
    std::optional<http::DecodedChunked> decoded = http::decodeChunkedBody(framedBody);
    if (!decoded) {
      return false;
    }
    q.body = std::move(decoded->data);
    for (model::HeaderField& t : decoded->trailers) {
      q.trailers.push_back({lower(t.name), std::move(t.value), false});
    }
  } else {
    q.body.assign(framedBody);
  }
  q.finishHttp2();
  return true;
}

}  // namespace

UpgradeParse parseH2cUpgrade(const model::Request& r, H2cUpgrade& out) {
  const std::string_view bytes(r.bytes);
  const size_t lineEnd = bytes.find("\r\n");
  if (lineEnd == std::string_view::npos || r.bodyOffset < lineEnd + 2 || r.bodyOffset > bytes.size()) {
    return UpgradeParse::kNotUpgrade;
  }
  const auto fields = headerLines(bytes.substr(lineEnd + 2, r.bodyOffset - lineEnd - 2));

  std::vector<std::string> upgrade;
  std::vector<std::string> connection;
  int settingsCount = 0;
  std::string_view settings;
  int encodings = 0;
  bool chunked = false;
  for (const auto& [name, value] : fields) {
    const std::string n = lower(name);
    if (n == "upgrade") {
      splitTokens(value, upgrade);
    } else if (n == "connection") {
      splitTokens(value, connection);
    } else if (n == "http2-settings") {
      ++settingsCount;
      settings = value;
    } else if (n == "transfer-encoding") {
      ++encodings;
      // Only chunked alone: its decoding is all the HTTP/2 request loses of
      // the framing, where another coding would leave the body coded under
      // no header.
      chunked = base::equalsIgnoreCase(base::trimOws(value), "chunked");
    }
  }
  if (!contains(upgrade, "h2c")) {
    return UpgradeParse::kNotUpgrade;
  }
  // RFC 7540 3.2.1: exactly one HTTP2-Settings, named in Connection with Upgrade.
  const std::string_view version = bytes.substr(0, lineEnd).substr(bytes.substr(0, lineEnd).rfind(' ') + 1);
  if (version != "HTTP/1.1" || settingsCount != 1 || !contains(connection, "upgrade") ||
      !contains(connection, "http2-settings")) {
    return UpgradeParse::kInvalid;
  }
  // One Transfer-Encoding, chunked alone, as the framer passes (RFC 9112 6.3:
  // with another last coding the body has no length; before chunked, the
  // coding would be lost with the header).
  if (encodings > 1 || (encodings == 1 && !chunked)) {
    return UpgradeParse::kInvalid;
  }
  H2cUpgrade u;
  if (!decodeBase64Url(settings, u.settingsPayload) || u.settingsPayload.size() % 6 != 0) {
    return UpgradeParse::kInvalid;
  }
  u.headRequest = r.method == "HEAD";

  if (!toH2Request(r, fields, connection, chunked, u.request)) {
    return UpgradeParse::kInvalid;
  }
  out = std::move(u);
  return UpgradeParse::kUpgrade;
}

}  // namespace shadowtap::h2
