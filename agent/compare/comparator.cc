#include "compare/comparator.h"

#include "base/strings.h"
#include "compare/endpoint.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

namespace shadowtap::compare {
namespace {

using nlohmann::json;

constexpr std::string_view kDefaultIgnoredHeaders[] = {"date", "server", "connection", "keep-alive"};
constexpr std::string_view kLengthHeaders[] = {"content-length", "transfer-encoding"};

std::string cut(std::string s, size_t max) {
  if (s.size() > max) {
    s.resize(max);
    s += "...";
  }
  return s;
}

std::string dumpJson(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// Iterative, so that a hostile body cannot exhaust the stack here.
size_t depthOf(const json& root, size_t limit) {
  std::vector<std::pair<const json*, size_t>> stack{{&root, 1}};
  size_t maxDepth = 0;
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    maxDepth = std::max(maxDepth, d);
    if (maxDepth > limit) {
      return maxDepth;
    }
    if (v->is_structured()) {
      for (const json& child : *v) {
        if (child.is_structured()) {
          stack.emplace_back(&child, d + 1);
        }
      }
    }
  }
  return maxDepth;
}

bool looksJson(const model::Response& r) {
  const std::string_view ct = r.header("content-type");
  if (!ct.empty()) {
    return isJsonContentType(ct);
  }
  for (char c : r.body) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      continue;
    }
    return c == '{' || c == '[';
  }
  return false;
}

std::string genericOf(std::string_view path) {
  // Only JSON paths carry indices; keys with brackets are quoted, so a bracket
  // followed by a digit is always an index.
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[' && i + 1 < path.size() && path[i + 1] >= '0' && path[i + 1] <= '9') {
      const size_t close = path.find(']', i);
      if (close != std::string_view::npos) {
        out += "[*]";
        i = close + 1;
        continue;
      }
    }
    if (path[i] == '[' && i + 1 < path.size() && path[i + 1] == '\'') {
      // Copy a quoted key verbatim.
      size_t j = i + 2;
      while (j < path.size() && !(path[j] == '\'' && path[j - 1] != '\\')) {
        ++j;
      }
      const size_t end = std::min(path.size(), j + 2);
      out.append(path.substr(i, end - i));
      i = end;
      continue;
    }
    out += path[i++];
  }
  return out;
}

}  // namespace

const char* toString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kEqual:
      return "equal";
    case Outcome::kDifferent:
      return "different";
    case Outcome::kNoisy:
      return "noisy";
  }
  return "unknown";
}

bool isJsonContentType(std::string_view ct) {
  std::string lower = base::toLower(ct.substr(0, ct.find(';')));
  while (!lower.empty() && (lower.back() == ' ' || lower.back() == '\t')) {
    lower.pop_back();
  }
  return lower == "application/json" || lower == "text/json" ||
         (lower.size() > 5 && lower.compare(lower.size() - 5, 5, "+json") == 0);
}

// State of one diffWith() run.
struct Comparator::Diff {
  const Comparator& self;
  const std::string* noiseEndpoint;
  std::vector<Difference> out;
  size_t omitted = 0;
  std::vector<PathStep> path;

  void add(std::string p, std::optional<std::string> a, std::optional<std::string> b) {
    if (out.size() >= self.options_.maxDifferences) {
      ++omitted;
      return;
    }
    const size_t max = self.options_.maxValueBytes;
    Difference d;
    d.genericPath = genericOf(p);
    d.path = std::move(p);
    if (a) {
      d.primary = cut(std::move(*a), max);
    }
    if (b) {
      d.mirror = cut(std::move(*b), max);
    }
    d.noisy = noiseEndpoint != nullptr && self.isNoisy(*noiseEndpoint, d.genericPath);
    out.push_back(std::move(d));
  }

  void json(const nlohmann::json& a, const nlohmann::json& b) {
    if (self.ignoredPath(path)) {
      return;
    }
    if (a.is_object() && b.is_object()) {
      for (auto it = a.begin(); it != a.end(); ++it) {
        path.push_back({false, it.key(), 0});
        const auto other = b.find(it.key());
        if (other == b.end()) {
          if (!self.ignoredPath(path)) {
            add(formatPath(path), dumpJson(*it), std::nullopt);
          }
        } else {
          json(*it, *other);
        }
        path.pop_back();
      }
      for (auto it = b.begin(); it != b.end(); ++it) {
        if (!a.contains(it.key())) {
          path.push_back({false, it.key(), 0});
          if (!self.ignoredPath(path)) {
            add(formatPath(path), std::nullopt, dumpJson(*it));
          }
          path.pop_back();
        }
      }
      return;
    }
    if (a.is_array() && b.is_array()) {
      const size_t n = std::max(a.size(), b.size());
      for (size_t i = 0; i < n; ++i) {
        path.push_back({true, {}, i});
        if (i < a.size() && i < b.size()) {
          json(a[i], b[i]);
        } else if (!self.ignoredPath(path)) {
          add(formatPath(path), i < a.size() ? std::optional(dumpJson(a[i])) : std::nullopt,
              i < b.size() ? std::optional(dumpJson(b[i])) : std::nullopt);
        }
        path.pop_back();
      }
      return;
    }
    // Scalars, or different types. Numbers compare by value (1 == 1.0).
    if (!(a == b)) {
      add(formatPath(path), dumpJson(a), dumpJson(b));
    }
  }
};

std::unique_ptr<Comparator> Comparator::create(const CompareOptions& options, std::string* error) {
  auto c = std::unique_ptr<Comparator>(new Comparator(options));
  for (const std::string& h : options.ignoreHeaders) {
    c->ignoreHeadersLower_.push_back(base::toLower(h));
  }
  for (const std::string& p : options.ignorePaths) {
    std::optional<JsonPathPattern> pattern = JsonPathPattern::parse(p, error);
    if (!pattern) {
      return nullptr;
    }
    c->ignorePaths_.push_back(std::move(*pattern));
  }
  return c;
}

bool Comparator::ignoredHeader(std::string_view lowerName) const {
  for (std::string_view h : kDefaultIgnoredHeaders) {
    if (lowerName == h) {
      return true;
    }
  }
  return std::find(ignoreHeadersLower_.begin(), ignoreHeadersLower_.end(), lowerName) != ignoreHeadersLower_.end();
}

bool Comparator::ignoredPath(const std::vector<PathStep>& path) const {
  for (const JsonPathPattern& p : ignorePaths_) {
    if (p.matches(path)) {
      return true;
    }
  }
  return false;
}

std::vector<Difference> Comparator::diff(const model::Response& a, const model::Response& b, size_t* omitted, bool* json) const {
  return diffWith(a, b, nullptr, omitted, json);
}

bool Comparator::diffBodies(Diff& d, const model::Response& a, const model::Response& b) const {
  bool json = false;
  const bool sameBytes = a.bodyLength == b.bodyLength && a.bodyHash == b.bodyHash;
  if (!sameBytes) {
    if (!a.bodyTruncated && !b.bodyTruncated && looksJson(a) && looksJson(b)) {
      const nlohmann::json ja = nlohmann::json::parse(a.body, nullptr, false);
      const nlohmann::json jb = nlohmann::json::parse(b.body, nullptr, false);
      json = !ja.is_discarded() && !jb.is_discarded() && depthOf(ja, options_.maxJsonDepth) <= options_.maxJsonDepth &&
             depthOf(jb, options_.maxJsonDepth) <= options_.maxJsonDepth;
      if (json) {
        d.json(ja, jb);
      }
    }
    if (!json) {
      const size_t common = std::min(a.body.size(), b.body.size());
      size_t first = 0;
      while (first < common && a.body[first] == b.body[first]) {
        ++first;
      }
      const size_t from = first > 32 ? first - 32 : 0;
      auto excerpt = [&](const model::Response& r) {
        std::string s = from > 0 ? "..." : "";
        s += r.body.substr(std::min(from, r.body.size()), options_.maxValueBytes);
        if (from + options_.maxValueBytes < r.body.size() || r.bodyTruncated) {
          s += "... (" + std::to_string(r.bodyLength) + " bytes)";
        }
        return s;
      };
      d.add("body", excerpt(a), excerpt(b));
    }
  }
  return json;
}

void Comparator::diffHeaders(Diff& d, const model::Response& a, const model::Response& b, bool bodiesEqual) const {
  // Header name (lower case) -> values in order, names in order of first appearance.
  using Grouped = std::vector<std::pair<std::string, std::vector<std::string_view>>>;
  auto group = [&](const model::Response& r) {
    Grouped g;
    for (const model::HeaderField& h : r.headers) {
      std::string name = base::toLower(h.name);
      if (ignoredHeader(name)) {
        continue;
      }
      if (bodiesEqual && std::find(std::begin(kLengthHeaders), std::end(kLengthHeaders), name) !=
                             std::end(kLengthHeaders)) {
        continue;
      }
      auto it = std::find_if(g.begin(), g.end(), [&](const auto& e) { return e.first == name; });
      if (it == g.end()) {
        g.emplace_back(std::move(name), std::vector<std::string_view>{h.value});
      } else {
        it->second.push_back(h.value);
      }
    }
    return g;
  };
  auto join = [](const std::vector<std::string_view>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) {
        s += ", ";
      }
      s += v[i];
    }
    return s;
  };
  const Grouped ga = group(a);
  const Grouped gb = group(b);
  for (const auto& [name, values] : ga) {
    // clang 14 cannot capture a structured binding: compare through a plain reference.
    const std::string& key = name;
    auto it = std::find_if(gb.begin(), gb.end(), [&key](const auto& e) { return e.first == key; });
    if (it == gb.end()) {
      d.add("headers." + name, join(values), std::nullopt);
    } else if (it->second != values) {
      d.add("headers." + name, join(values), join(it->second));
    }
  }
  for (const auto& [name, values] : gb) {
    const std::string& key = name;
    if (std::find_if(ga.begin(), ga.end(), [&key](const auto& e) { return e.first == key; }) == ga.end()) {
      d.add("headers." + name, std::nullopt, join(values));
    }
  }
}

std::vector<Difference> Comparator::diffWith(const model::Response& a, const model::Response& b, const std::string* noiseEndpoint,
                                             size_t* omitted, bool* jsonOut) const {
  Diff d{*this, noiseEndpoint, {}, 0, {}};
  if (a.status != b.status) {
    d.add("status", std::to_string(a.status), std::to_string(b.status));
  }
  const size_t statusEnd = d.out.size();

  // Bodies first: whether they compare equal decides the length headers.
  const bool json = diffBodies(d, a, b);
  std::vector<Difference> bodyDiffs(std::make_move_iterator(d.out.begin() + statusEnd),
                                    std::make_move_iterator(d.out.end()));
  d.out.resize(statusEnd);
  const bool bodiesEqual =
      std::all_of(bodyDiffs.begin(), bodyDiffs.end(), [](const Difference& x) { return x.noisy; }) && d.omitted == 0;

  if (options_.compareHeaders) {
    diffHeaders(d, a, b, bodiesEqual);
  }
  for (Difference& x : bodyDiffs) {
    d.out.push_back(std::move(x));
  }
  if (omitted != nullptr) {
    *omitted = d.omitted;
  }
  if (jsonOut != nullptr) {
    *jsonOut = json;
  }
  return std::move(d.out);
}

CompareResult Comparator::compare(std::string_view method, std::string_view target, const model::Response& primary,
                                  const model::Response& mirror, const model::Response* secondary) {
  CompareResult r;
  r.endpoint = endpointOf(method, target);
  if (secondary != nullptr) {
    learnNoise(r.endpoint, diffWith(primary, *secondary, nullptr, nullptr, nullptr));
  }
  r.differences = diffWith(primary, mirror, &r.endpoint, &r.differencesOmitted, &r.jsonBodies);
  if (r.differences.empty() && r.differencesOmitted == 0) {
    r.outcome = Outcome::kEqual;
  } else if (r.differencesOmitted == 0 &&
             std::all_of(r.differences.begin(), r.differences.end(), [](const Difference& d) { return d.noisy; })) {
    r.outcome = Outcome::kNoisy;
  } else {
    r.outcome = Outcome::kDifferent;
  }
  r.noisyPaths = noisyPaths(r.endpoint);
  return r;
}

void Comparator::learnNoise(const std::string& endpoint, const std::vector<Difference>& diffs) {
  if (diffs.empty()) {
    return;
  }
  auto it = noise_.find(endpoint);
  if (it == noise_.end()) {
    if (noise_.size() >= options_.maxEndpoints) {
      return;
    }
    it = noise_.emplace(endpoint, std::set<std::string>{}).first;
  }
  for (const Difference& d : diffs) {
    if (it->second.size() >= options_.maxNoisyPathsPerEndpoint) {
      break;
    }
    it->second.insert(d.genericPath);
  }
}

bool Comparator::isNoisy(const std::string& endpoint, const std::string& genericPath) const {
  const auto it = noise_.find(endpoint);
  return it != noise_.end() && it->second.contains(genericPath);
}

std::vector<std::string> Comparator::noisyPaths(const std::string& endpoint) const {
  const auto it = noise_.find(endpoint);
  if (it == noise_.end()) {
    return {};
  }
  return {it->second.begin(), it->second.end()};
}

}  // namespace shadowtap::compare
