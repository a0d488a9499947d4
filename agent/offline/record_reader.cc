#include "offline/record_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "record/codec.h"
#include "record/h2_record.h"

namespace shadowtap::offline {
namespace {

using Json = nlohmann::json;
using record::RecordedRequest;


const Json* field(const Json& j, const char* name, Json::value_t type) {
  auto it = j.find(name);
  if (it == j.end() || it->type() != type) {
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> str(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

bool decodeBody(const std::string& text, const std::string& encoding, std::string* out, std::string* why) {
  if (encoding == "base64") {
    auto d = record::base64Decode(text);
    if (!d) {
      *why = "body is not valid base64";
      return false;
    }
    *out = std::move(*d);
    return true;
  }
  *out = text;
  return true;
}

// [name, value] pairs into `out`. False when something else is there.
bool readPairs(const Json& fields, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& h : fields) {
    if (!h.is_array() || h.size() != 2 || !h[0].is_string() || !h[1].is_string()) {
      return false;
    }
    out.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
  }
  return true;
}

// An optional array of field indices ("headers_never_index"). False when not
// an array of indices below `fields`.
bool readIndices(const Json& j, const char* name, size_t fields, std::vector<uint32_t>& out) {
  auto it = j.find(name);
  if (it == j.end()) {
    return true;
  }
  if (!it->is_array()) {
    return false;
  }
  for (const auto& v : *it) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() >= fields) {
      return false;
    }
    out.push_back(v.get<uint32_t>());
  }
  return true;
}

// HAR {name, value} objects (HTTP/2: with "_neverIndex") into `out`.
bool readHarFields(const Json& fields, std::vector<std::pair<std::string, std::string>>& out,
                   std::vector<uint32_t>* neverIndex) {
  for (const auto& h : fields) {
    auto n = h.is_object() ? str(h, "name") : std::nullopt;
    auto v = h.is_object() ? str(h, "value") : std::nullopt;
    if (!n || !v) {
      return false;
    }
    if (neverIndex != nullptr) {
      if (auto it = h.find("_neverIndex"); it != h.end() && it->is_boolean() && it->get<bool>()) {
        neverIndex->push_back(static_cast<uint32_t>(out.size()));
      }
    }
    out.emplace_back(std::move(*n), std::move(*v));
  }
  return true;
}

// `r`, or nullopt with *why when a field would break the request apart on
// the wire (a smuggled request).
std::optional<RecordedRequest> sendable(RecordedRequest&& r, std::string* why) {
  if (std::string reason = record::unsendableReason(r); !reason.empty()) {
    *why = std::move(reason);
    return std::nullopt;
  }
  return std::move(r);
}

std::optional<RecordedRequest> fromJsonLine(const Json& j, std::string* why) {
  RecordedRequest r;
  auto time = str(j, "time");
  auto method = str(j, "method");
  auto target = str(j, "target");
  const Json* headers = field(j, "headers", Json::value_t::array);
  if (!time || !method || !target || headers == nullptr) {
    *why = "needs time, method, target and headers";
    return std::nullopt;
  }
  auto t = record::parseRfc3339(*time);
  if (!t) {
    *why = "time is not RFC 3339";
    return std::nullopt;
  }
  r.unixNs = *t;
  r.method = *method;
  r.target = *target;
  r.httpVersion = str(j, "version").value_or(str(j, "http_version").value_or("HTTP/1.1"));
  const bool http2 = record::isHttp2Version(r.httpVersion);
  if (http2) {
    r.httpVersion = std::string(record::kHttp2Version);
  }
  r.flow = str(j, "flow").value_or("");
  if (auto it = j.find("rule"); it != j.end() && it->is_number_unsigned()) {
    r.ruleId = it->get<uint32_t>();
  }
  if (!readPairs(*headers, r.headers)) {
    *why = "headers must be [name, value] pairs";
    return std::nullopt;
  }
  if (http2) {
    const Json* trailers = field(j, "trailers", Json::value_t::array);
    if ((j.contains("trailers") && trailers == nullptr) || (trailers != nullptr && !readPairs(*trailers, r.trailers))) {
      *why = "trailers must be [name, value] pairs";
      return std::nullopt;
    }
    if (!readIndices(j, "headers_never_index", r.headers.size(), r.neverIndexHeaders) ||
        !readIndices(j, "trailers_never_index", r.trailers.size(), r.neverIndexTrailers)) {
      *why = "never_index must list field indices";
      return std::nullopt;
    }
  }
  if (auto it = j.find("body_length"); it != j.end() && it->is_number_unsigned()) {
    r.bodyLength = it->get<uint64_t>();
  }
  r.bodySha256 = str(j, "body_sha256").value_or("");
  auto body = str(j, "body");
  r.bodyKept = body.has_value();
  if (body) {
    if (!decodeBody(*body, str(j, "body_encoding").value_or("text"), &r.body, why)) {
      return std::nullopt;
    }
    if (!j.contains("body_length")) {
      r.bodyLength = r.body.size();
    }
  } else if (!j.contains("body_length")) {
    r.bodyKept = true;  // no body at all
  }
  if (auto wire = str(j, "wire_body")) {
    auto d = record::base64Decode(*wire);
    if (!d) {
      *why = "wire_body is not valid base64";
      return std::nullopt;
    }
    r.wireBody = std::move(*d);
  }
  if (http2) {
    r.wireBody.clear();  // HTTP/2 has no body framing of its own
    record::normalizeH2(r, "", "");
  }
  return sendable(std::move(r), why);
}

struct UrlParts {
  std::string scheme;
  std::string authority;
  std::string target;  // path and query, without a fragment; "/" when the URL has no path
};

// The absolute URL's parts: what other tools' entries are rebuilt from.
UrlParts splitUrl(const std::string& url) {
  UrlParts p;
  const size_t schemeEnd = url.find("://");
  const size_t pathStart = schemeEnd == std::string::npos ? 0 : url.find('/', schemeEnd + 3);
  if (schemeEnd != std::string::npos) {
    p.scheme = url.substr(0, schemeEnd);
    p.authority = url.substr(schemeEnd + 3, pathStart == std::string::npos ? std::string::npos : pathStart - schemeEnd - 3);
  }
  p.target = pathStart == std::string::npos ? "/" : url.substr(pathStart);
  const size_t hash = p.target.find('#');
  if (hash != std::string::npos) {
    p.target.resize(hash);
  }
  return p;
}

// An HTTP/1 entry's headers: pseudo-headers left out (":authority" kept as the
// authority when the URL has none), and a Host from the authority when missing.
bool readHttp1Headers(const Json& headers, RecordedRequest& r, const std::string& urlAuthority, std::string* why) {
  std::string authority = urlAuthority;
  bool hasHost = false;
  for (const auto& h : headers) {
    auto n = h.is_object() ? str(h, "name") : std::nullopt;
    auto v = h.is_object() ? str(h, "value") : std::nullopt;
    if (!n || !v) {
      *why = "headers must be {name, value} objects";
      return false;
    }
    if (!n->empty() && (*n)[0] == ':') {
      if (*n == ":authority" && authority.empty()) {
        authority = *v;
      }
      continue;  // HTTP/2 pseudo-header in an HTTP/1 (or HTTP/3) entry
    }
    hasHost = hasHost || base::equalsIgnoreCase(*n, "host");
    r.headers.emplace_back(*n, *v);
  }
  if (!hasHost && !authority.empty()) {
    r.headers.insert(r.headers.begin(), {"Host", authority});
  }
  return true;
}

// shadowtap's own fields (flow, rule, body kept and its hash, the wire body)
// and the body, from postData.
bool readHarBody(const Json& e, const Json& req, RecordedRequest& r, std::string* why) {
  r.flow = str(e, "_flow").value_or("");
  if (auto it = e.find("_rule"); it != e.end() && it->is_number_unsigned()) {
    r.ruleId = it->get<uint32_t>();
  }
  r.bodySha256 = str(e, "_bodySha256").value_or("");
  if (auto it = e.find("_bodyKept"); it != e.end() && it->is_boolean()) {
    r.bodyKept = it->get<bool>();
  }
  const Json* post = field(req, "postData", Json::value_t::object);
  if (post != nullptr) {
    std::string encoding = str(*post, "_encoding").value_or(str(*post, "encoding").value_or(""));
    if (!decodeBody(str(*post, "text").value_or(""), encoding, &r.body, why)) {
      return false;
    }
  }
  if (auto it = req.find("bodySize"); it != req.end() && it->is_number_integer() && it->get<int64_t>() >= 0) {
    r.bodyLength = it->get<uint64_t>();
  } else {
    r.bodyLength = r.body.size();
  }
  if (post == nullptr && r.bodyLength > 0) {
    r.bodyKept = false;  // a body was sent but not recorded: not replayable
  }
  if (auto wire = str(e, "_wireBody")) {
    auto d = record::base64Decode(*wire);
    if (!d) {
      *why = "_wireBody is not valid base64";
      return false;
    }
    r.wireBody = std::move(*d);
  }
  return true;
}

std::optional<RecordedRequest> fromHarEntry(const Json& e, std::string* why) {
  if (!e.is_object()) {
    *why = "entry is not an object";
    return std::nullopt;
  }
  const Json* req = field(e, "request", Json::value_t::object);
  auto started = str(e, "startedDateTime");
  if (req == nullptr || !started) {
    *why = "entry needs startedDateTime and request";
    return std::nullopt;
  }
  auto method = str(*req, "method");
  auto url = str(*req, "url");
  const Json* headers = field(*req, "headers", Json::value_t::array);
  if (!method || !url || headers == nullptr) {
    *why = "request needs method, url and headers";
    return std::nullopt;
  }
  auto t = record::parseRfc3339(*started);
  if (!t) {
    *why = "startedDateTime is not RFC 3339";
    return std::nullopt;
  }
  RecordedRequest r;
  r.unixNs = *t;
  r.method = *method;
  UrlParts parts = splitUrl(*url);
  const auto target = str(e, "_target");
  r.target = target ? *target : parts.target;
  const std::string version = str(*req, "httpVersion").value_or("HTTP/1.1");
  const bool http2 = record::isHttp2Version(version);
  if (http2) {
    // Every field as recorded, pseudo-headers included; normalizeH2 below
    // fills in what other tools leave out.
    r.httpVersion = std::string(record::kHttp2Version);
    if (!readHarFields(*headers, r.headers, &r.neverIndexHeaders)) {
      *why = "headers must be {name, value} objects";
      return std::nullopt;
    }
    if (auto it = req->find("_trailers"); it != req->end()) {
      if (!it->is_array() || !readHarFields(*it, r.trailers, &r.neverIndexTrailers)) {
        *why = "_trailers must be {name, value} objects";
        return std::nullopt;
      }
    }
  } else {
    r.httpVersion = version.starts_with("HTTP/1.") ? version : "HTTP/1.1";
    if (target) {
      parts.authority.clear();  // ours: Host is in the headers
    }
    if (!readHttp1Headers(*headers, r, parts.authority, why)) {
      return std::nullopt;
    }
  }
  if (!readHarBody(e, *req, r, why)) {
    return std::nullopt;
  }
  if (http2) {
    r.wireBody.clear();
    record::normalizeH2(r, parts.scheme, parts.authority);
  }
  return sendable(std::move(r), why);
}

Json parseOrDiscard(std::string_view text) {
  return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

// A record skipped: counted, and the first one's reason kept.
void skipped(ReadResult& out, const char* unit, uint64_t number, const std::string& why) {
  if (out.malformed++ == 0) {
    out.firstMalformed = std::string(unit) + " " + std::to_string(number) + ": " + why;
  }
}

void readHar(const Json& whole, ReadResult& out) {
  out.format = ReadResult::Format::kHar;
  const Json& log = whole["log"];
  const Json* entries = log.is_object() ? field(log, "entries", Json::value_t::array) : nullptr;
  if (entries == nullptr) {
    out.error = "HAR without log.entries";
    return;
  }
  std::string why;
  uint64_t n = 0;
  for (const Json& e : *entries) {
    ++n;
    if (auto r = fromHarEntry(e, &why)) {
      out.requests.push_back(std::move(*r));
    } else {
      skipped(out, "entry", n, why);
    }
  }
}

// A shadowtap HAR cut by a crash: one entry per line after the head line.
void readCutHar(std::string_view body, ReadResult& out) {
  out.format = ReadResult::Format::kHar;
  out.cut = true;
  const size_t firstNl = body.find('\n');
  std::string_view rest = firstNl == std::string_view::npos ? std::string_view() : body.substr(firstNl + 1);
  std::string why;
  uint64_t lineNo = 1;
  while (!rest.empty()) {
    ++lineNo;
    const size_t nl = rest.find('\n');
    std::string_view line = base::trimSpace(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line == "]}}") {
      out.cut = false;  // complete after all, only something else was wrong
      break;
    }
    if (line.starts_with(",")) {
      line.remove_prefix(1);
    }
    if (line.empty()) {
      continue;
    }
    if (auto r = parseHarEntryText(line, &why)) {
      out.requests.push_back(std::move(*r));
    } else if (!rest.empty()) {
      skipped(out, "line", lineNo, why);
    }
    // else: the partial last line a crash leaves behind; `cut` says so.
  }
}

// `lastLineCut`: the file does not end with a line end, so a last line that
// begins as a record ('{') and does not parse is the partial line a crash
// leaves (`cut`), not a bad record.
void readJsonLines(std::string_view body, bool lastLineCut, ReadResult& out) {
  out.format = ReadResult::Format::kJsonl;
  std::string why;
  uint64_t lineNo = 0;
  std::string_view rest = body;
  while (!rest.empty()) {
    ++lineNo;
    const size_t nl = rest.find('\n');
    const std::string_view line = base::trimSpace(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty()) {
      continue;
    }
    // Parsed once: what decides a skipped line was a record is in the same JSON.
    const Json j = parseOrDiscard(line);
    if (j.is_discarded() && rest.empty() && lastLineCut && line.starts_with('{')) {
      out.cut = true;
    } else if (!j.is_object()) {
      skipped(out, "line", lineNo, "not a JSON object");
    } else if (auto r = fromJsonLine(j, &why)) {
      out.requests.push_back(std::move(*r));
    } else {
      skipped(out, "line", lineNo, why);
      out.recordsSkipped += j.contains("method") && j.contains("target") ? 1 : 0;
    }
  }
}

// A regular file of at most kMaxRecordFileBytes into `text`; an error line
// otherwise (a device or FIFO would be read until memory runs out).
std::string readWhole(int fd, const std::string& path, std::string& text) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return "cannot read " + path + ": " + std::strerror(errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return path + " is not a regular file";
  }
  const std::string tooLarge = path + " is larger than " + std::to_string(kMaxRecordFileBytes >> 20) +
                               " MiB, the most replay reads from one file (split it)";
  if (static_cast<uint64_t>(st.st_size) > kMaxRecordFileBytes) {
    return tooLarge;
  }
  text.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (true) {
    if (got == text.size()) {
      if (text.size() >= kMaxRecordFileBytes) {
        char probe;
        const ssize_t n = ::read(fd, &probe, 1);  // still growing past the cap?
        return n == 0 ? std::string() : n > 0 ? tooLarge : "cannot read " + path + ": " + std::strerror(errno);
      }
      text.resize(std::min<uint64_t>(kMaxRecordFileBytes, text.size() + (64 << 10)));  // grew since fstat
    }
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return "cannot read " + path + ": " + std::strerror(errno);
    }
    if (n == 0) {
      text.resize(got);
      return {};
    }
    got += static_cast<size_t>(n);
  }
}

}  // namespace

std::optional<RecordedRequest> parseHarEntryText(std::string_view entry, std::string* why) {
  Json j = parseOrDiscard(entry);
  if (j.is_discarded()) {
    *why = "not JSON";
    return std::nullopt;
  }
  return fromHarEntry(j, why);
}

ReadResult parseRecordText(std::string_view text) {
  ReadResult out;
  const std::string_view body = base::trimSpace(text);
  if (body.empty()) {
    out.format = ReadResult::Format::kJsonl;  // an empty recording: nothing to send
    return out;
  }
  const Json whole = parseOrDiscard(body);
  if (whole.is_object() && whole.contains("log")) {
    readHar(whole, out);
    return out;
  }
  const size_t firstNl = body.find('\n');
  const std::string_view firstLine = body.substr(0, firstNl);
  if (whole.is_discarded() && firstLine.starts_with("{\"log\"") && firstLine.ends_with("\"entries\":[")) {
    readCutHar(body, out);
    return out;
  }
  readJsonLines(body, !text.ends_with('\n'), out);
  // Only when no line was a record: a file whose records were all skipped (a
  // field replay refuses to send) is a recording, its records counted.
  if (out.requests.empty() && out.malformed > 0 && out.recordsSkipped == 0) {
    out.format = ReadResult::Format::kUnknown;
    out.error = "neither HAR nor shadowtap JSON lines (" + std::to_string(out.malformed) + " unreadable line" +
                (out.malformed == 1 ? "" : "s") + ", first: " + out.firstMalformed + ")";
  }
  return out;
}

ReadResult readRecordFile(const std::string& path) {
  ReadResult r;
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer before
  // readWhole can refuse it; it changes nothing for a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    r.error = "cannot open " + path + ": " + std::strerror(errno);
    return r;
  }
  std::string text;
  r.error = readWhole(fd, path, text);
  ::close(fd);
  if (!r.error.empty()) {
    return r;
  }
  return parseRecordText(text);
}

}  // namespace shadowtap::offline
