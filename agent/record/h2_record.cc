#include "record/h2_record.h"

#include <algorithm>

#include "base/strings.h"
#include "h2/request_edit.h"
#include "record/codec.h"

namespace shadowtap::record {
namespace {

using Fields = std::vector<model::HeaderField>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

void split(Fields&& fields, Pairs& pairs, std::vector<uint32_t>& neverIndex) {
  pairs.clear();
  neverIndex.clear();
  pairs.reserve(fields.size());
  for (model::HeaderField& f : fields) {
    if (f.neverIndex) {
      neverIndex.push_back(static_cast<uint32_t>(pairs.size()));
    }
    pairs.emplace_back(std::move(f.name), std::move(f.value));
  }
}

Fields join(const Pairs& pairs, const std::vector<uint32_t>& neverIndex) {
  Fields out;
  out.reserve(pairs.size());
  for (const auto& [n, v] : pairs) {
    out.push_back(model::HeaderField{n, v, false});
  }
  for (uint32_t i : neverIndex) {
    if (i < out.size()) {
      out[i].neverIndex = true;
    }
  }
  return out;
}

void lowerNames(Fields& fields) {
  for (model::HeaderField& f : fields) {
    std::transform(f.name.begin(), f.name.end(), f.name.begin(), [](unsigned char c) { return std::tolower(c); });
  }
}

const model::HeaderField* find(const Fields& fields, std::string_view name) {
  for (const model::HeaderField& f : fields) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

// RFC 9113 8.2.2: a request carrying these is malformed.
bool connectionSpecific(const model::HeaderField& f) {
  if (f.name == "te") {
    return !base::equalsIgnoreCase(f.value, "trailers");
  }
  return f.name == "connection" || f.name == "keep-alive" || f.name == "proxy-connection" ||
         f.name == "transfer-encoding" || f.name == "upgrade";
}

}  // namespace

RecordedRequest fromH2Request(model::Request r, int64_t realtimeOffsetNs, bool keepBodies) {
  RecordedRequest out;
  out.unixNs = static_cast<int64_t>(r.tsNs) + realtimeOffsetNs;
  out.flow = r.flow.toString();
  out.ruleId = r.ruleId;
  out.httpVersion = std::string(kHttp2Version);
  out.method = r.method;
  out.target = std::string(r.target());
  split(std::move(r.headers), out.headers, out.neverIndexHeaders);
  split(std::move(r.trailers), out.trailers, out.neverIndexTrailers);
  out.bodyLength = r.body.size();
  out.bodySha256 = sha256Hex(r.body);
  out.bodyKept = keepBodies;
  if (keepBodies) {
    out.body = std::move(r.body);
  }
  return out;
}

model::Request buildH2Request(const RecordedRequest& r, std::string_view suffix) {
  model::Request out;
  out.ruleId = r.ruleId;
  out.headers = join(r.headers, r.neverIndexHeaders);
  out.trailers = join(r.trailers, r.neverIndexTrailers);
  out.body = r.body;
  out.finishHttp2();
  if (!suffix.empty()) {
    h2::rewriteAuthority(out, suffix);
  }
  return out;
}

void normalizeH2(RecordedRequest& r, std::string_view urlScheme, std::string_view urlAuthority) {
  Fields fields = join(r.headers, r.neverIndexHeaders);
  lowerNames(fields);
  std::erase_if(fields, connectionSpecific);
  std::stable_partition(fields.begin(), fields.end(),
                        [](const model::HeaderField& f) { return !f.name.empty() && f.name[0] == ':'; });
  const auto firstRegular = std::find_if(fields.begin(), fields.end(), [](const model::HeaderField& f) {
    return f.name.empty() || f.name[0] != ':';
  });
  Fields added;
  if (find(fields, ":method") == nullptr) {
    added.push_back({":method", r.method, false});
  }
  const bool connect = (find(fields, ":method") ? find(fields, ":method")->value : r.method) == "CONNECT";
  if (!connect && find(fields, ":scheme") == nullptr) {
    added.push_back({":scheme", urlScheme.empty() ? std::string("http") : std::string(urlScheme), false});
  }
  if (find(fields, ":authority") == nullptr) {
    const model::HeaderField* host = find(fields, "host");
    if (!urlAuthority.empty()) {
      added.push_back({":authority", std::string(urlAuthority), false});
    } else if (host != nullptr) {
      added.push_back({":authority", host->value, false});
    }
  }
  if (!connect && find(fields, ":path") == nullptr) {
    added.push_back({":path", r.target.empty() ? std::string("/") : r.target, false});
  }
  fields.insert(firstRegular, std::make_move_iterator(added.begin()), std::make_move_iterator(added.end()));
  r.method = find(fields, ":method")->value;
  if (const model::HeaderField* path = find(fields, ":path")) {
    r.target = path->value;
  } else if (const model::HeaderField* authority = find(fields, ":authority")) {
    r.target = authority->value;  // CONNECT: authority-form
  }
  split(std::move(fields), r.headers, r.neverIndexHeaders);
  Fields trailers = join(r.trailers, r.neverIndexTrailers);
  lowerNames(trailers);
  split(std::move(trailers), r.trailers, r.neverIndexTrailers);
}

}  // namespace shadowtap::record
