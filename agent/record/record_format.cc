#include "record/record_format.h"

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "record/codec.h"
#include "record/dry_run_writer.h"

namespace shadowtap::record {
namespace {

using Json = nlohmann::ordered_json;

// Header values and targets may hold obs-text that is not UTF-8; such bytes
// become U+FFFD rather than failing the record (never throw on a recorder).
std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string headerValue(const RecordedRequest& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (base::equalsIgnoreCase(n, name)) {
      return v;
    }
  }
  return "";
}

// HTTP/2 fields as JSON lines store them: [name, value] pairs.
Json pairs(const std::vector<std::pair<std::string, std::string>>& fields) {
  Json out = Json::array();
  for (const auto& [n, v] : fields) {
    out.push_back(Json::array({n, v}));
  }
  return out;
}

// ... and as HAR stores them: {name, value} objects, "_neverIndex": true on
// the fields sent never-indexed.
Json harFields(const std::vector<std::pair<std::string, std::string>>& fields, const std::vector<uint32_t>& neverIndex) {
  Json out = Json::array();
  for (const auto& [n, v] : fields) {
    out.push_back(Json{{"name", n}, {"value", v}});
  }
  for (uint32_t i : neverIndex) {
    if (i < out.size()) {
      out[i]["_neverIndex"] = true;
    }
  }
  return out;
}

// An HTTP/2 request's URL from its pseudo-headers (Chrome's convention).
std::string h2Url(const RecordedRequest& r) {
  std::string scheme;
  std::string authority;
  std::string path;
  bool haveAuthority = false;
  for (const auto& [n, v] : r.headers) {
    if (n == ":scheme" && scheme.empty()) {
      scheme = v;
    } else if (n == ":authority" && !haveAuthority) {
      authority = v;
      haveAuthority = true;
    } else if (n == ":path" && path.empty()) {
      path = v;
    } else if (n == "host" && authority.empty()) {
      authority = v;  // no :authority: the host field stands in (RFC 9113 8.3.1)
    }
  }
  return (scheme.empty() ? std::string("http") : scheme) + "://" + authority + path;
}

}  // namespace

std::string toJsonLine(const RecordedRequest& r) {
  Json j;
  j["time"] = formatRfc3339Utc(r.unixNs);
  j["flow"] = r.flow;
  j["rule"] = r.ruleId;
  j["method"] = r.method;
  j["target"] = r.target;
  j["version"] = r.httpVersion;
  Json headers = Json::array();
  for (const auto& [n, v] : r.headers) {
    headers.push_back(Json::array({n, v}));
  }
  j["headers"] = std::move(headers);
  if (r.isHttp2()) {
    if (!r.neverIndexHeaders.empty()) {
      j["headers_never_index"] = r.neverIndexHeaders;
    }
    j["trailers"] = pairs(r.trailers);
    if (!r.neverIndexTrailers.empty()) {
      j["trailers_never_index"] = r.neverIndexTrailers;
    }
  }
  j["body_length"] = r.bodyLength;
  j["body_sha256"] = r.bodySha256;
  if (r.bodyKept) {
    if (isValidUtf8(r.body)) {
      j["body"] = r.body;
      j["body_encoding"] = "text";
    } else {
      j["body"] = base64Encode(r.body);
      j["body_encoding"] = "base64";
    }
    if (!r.wireBody.empty()) {
      j["wire_body"] = base64Encode(r.wireBody);
    }
  }
  return dump(j);
}

std::string harFileHead() {
  Json creator;
  creator["name"] = "shadowtap";
  creator["version"] = SHADOWTAP_VERSION;
  std::string s = R"({"log":{"version":"1.2","creator":)" + dump(creator) + R"(,"pages":[],"entries":[)";
  s += '\n';
  return s;
}

std::string harFileTail() { return "]}}\n"; }

namespace {

// The Cookie headers' name=value pairs (HAR's request.cookies).
Json harCookies(const RecordedRequest& r) {
  Json cookies = Json::array();
  for (const auto& [n, v] : r.headers) {
    if (!base::equalsIgnoreCase(n, "cookie") || v == kRedactedMarker) {
      continue;
    }
    std::string_view rest(v);
    while (!rest.empty()) {
      const size_t semi = rest.find(';');
      std::string_view item = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      while (!item.empty() && item.front() == ' ') {
        item.remove_prefix(1);
      }
      const size_t eq = item.find('=');
      if (item.empty() || eq == std::string_view::npos) {
        continue;
      }
      cookies.push_back(Json{{"name", item.substr(0, eq)}, {"value", item.substr(eq + 1)}});
    }
  }
  return cookies;
}

// The target's query string as name/value pairs (HAR's request.queryString).
Json harQuery(const std::string& target) {
  Json query = Json::array();
  const size_t q = target.find('?');
  if (q != std::string::npos) {
    std::string_view rest = std::string_view(target).substr(q + 1);
    rest = rest.substr(0, rest.find('#'));
    while (!rest.empty()) {
      const size_t amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (pair.empty()) {
        continue;
      }
      const size_t eq = pair.find('=');
      query.push_back(Json{{"name", pair.substr(0, eq)},
                           {"value", eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1)}});
    }
  }
  return query;
}

// Responses are not captured: HAR's "no response" convention (status 0).
Json harNoResponse() {
  Json resp;
  resp["status"] = 0;
  resp["statusText"] = "";
  resp["httpVersion"] = "";
  resp["cookies"] = Json::array();
  resp["headers"] = Json::array();
  resp["content"] = Json{{"size", 0}, {"mimeType", ""}};
  resp["redirectURL"] = "";
  resp["headersSize"] = -1;
  resp["bodySize"] = -1;
  return resp;
}

}  // namespace

std::string harEntry(const RecordedRequest& r) {
  Json req;
  req["method"] = r.method;
  const std::string host = headerValue(r, "host");
  if (r.isHttp2()) {
    req["url"] = h2Url(r);
  } else if (!r.target.empty() && r.target[0] == '/') {
    req["url"] = "http://" + host + r.target;
  } else if (r.target == "*") {
    req["url"] = "http://" + host + "/";
  } else {
    req["url"] = r.target;
  }
  req["httpVersion"] = r.httpVersion;
  req["cookies"] = harCookies(r);
  req["headers"] = harFields(r.headers, r.neverIndexHeaders);
  if (r.isHttp2()) {
    req["_trailers"] = harFields(r.trailers, r.neverIndexTrailers);
  }
  req["queryString"] = harQuery(r.target);
  if (r.bodyKept && (r.bodyLength > 0 || !r.wireBody.empty())) {
    Json post;
    post["mimeType"] = headerValue(r, "content-type");
    if (isValidUtf8(r.body)) {
      post["text"] = r.body;
    } else {
      post["text"] = base64Encode(r.body);
      post["_encoding"] = "base64";  // HAR 1.2 defines "encoding" for responses only
    }
    req["postData"] = std::move(post);
  }
  // HTTP/2: the HPACK-compressed size is not known (HAR's "not available").
  req["headersSize"] = r.isHttp2() ? int64_t{-1} : static_cast<int64_t>(r.headSize);
  req["bodySize"] = r.bodyLength;

  Json e;
  e["startedDateTime"] = formatRfc3339Utc(r.unixNs);
  e["time"] = 0;
  e["request"] = std::move(req);
  e["response"] = harNoResponse();
  e["cache"] = Json::object();
  e["timings"] = Json{{"send", 0}, {"wait", 0}, {"receive", 0}};
  // Custom fields (HAR allows names starting with '_'): what replay needs to
  // rebuild the exact request.
  e["_flow"] = r.flow;
  e["_rule"] = r.ruleId;
  e["_target"] = r.target;
  e["_bodyKept"] = r.bodyKept;
  e["_bodySha256"] = r.bodySha256;
  if (r.bodyKept && !r.wireBody.empty()) {
    e["_wireBody"] = base64Encode(r.wireBody);
  }
  return dump(e);
}

}  // namespace shadowtap::record
