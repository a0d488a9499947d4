#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "compare/json_path.h"
#include "model/response.h"

namespace shadowtap::compare {

struct CompareOptions {
  // Headers never compared, in addition to the defaults (case-insensitive).
  // Defaults: Date, Server, and the per-connection Connection and Keep-Alive;
  // Content-Length and Transfer-Encoding are skipped when the bodies compare
  // equal (or differ only in ignored or noisy fields).
  std::vector<std::string> ignoreHeaders;
  // JSON paths not compared in JSON bodies: "$.timestamp", "$.items[*].id", "$..etag".
  std::vector<std::string> ignorePaths;
  bool compareHeaders = true;
  size_t maxDifferences = 100;  // per pair; more are counted in differencesOmitted
  size_t maxValueBytes = 256;   // a difference's value is cut to this many bytes
  // Noise memory: endpoints remembered and noisy paths per endpoint (beyond, a
  // new endpoint or path is not remembered, and so not treated as noise).
  size_t maxEndpoints = 4096;
  size_t maxNoisyPathsPerEndpoint = 256;
  size_t maxJsonDepth = 128;  // deeper bodies are compared byte for byte
};

// One field that differs. `path` is "status", "headers.<lower-case name>",
// "body" (byte comparison) or a JSON path ("$.items[2].price"). Values are as
// they appear (JSON values serialised); nullopt means absent on that side.
struct Difference {
  std::string path;
  std::string genericPath;  // `path` with array indices written [*] (what noise is kept by)
  std::optional<std::string> primary;
  std::optional<std::string> mirror;
  bool noisy = false;  // this field also differs between primary and secondary on the endpoint
};

enum class Outcome {
  kEqual,      // nothing differs
  kDifferent,  // at least one difference that is not noise: a possible regression
  kNoisy,      // every difference is noise
};
const char* toString(Outcome outcome);

struct CompareResult {
  Outcome outcome = Outcome::kEqual;
  std::string endpoint;
  std::vector<Difference> differences;  // primary vs mirror
  size_t differencesOmitted = 0;        // over maxDifferences
  bool jsonBodies = false;              // bodies were compared field by field
  // The endpoint's noisy fields known after this comparison (generic paths).
  std::vector<std::string> noisyPaths;
};

// Compares the primary's response to a request with the mirror's, Diffy-style.
// With a secondary response (the primary's own version, given the same request),
// every field that differs between primary and secondary is remembered as noisy
// for the endpoint, and primary/mirror differences in noisy fields are marked
// and do not make the outcome kDifferent.
// One Comparator per rule; not thread-safe (noise memory); no exceptions.
class Comparator {
 public:
  // nullptr with `error` set when an ignore path does not parse.
  static std::unique_ptr<Comparator> create(const CompareOptions& options, std::string* error);

  CompareResult compare(std::string_view method, std::string_view target, const model::Response& primary,
                        const model::Response& mirror, const model::Response* secondary = nullptr);

  // Differences between two responses, without noise (both statuses, the
  // compared headers, the bodies).
  std::vector<Difference> diff(const model::Response& a, const model::Response& b, size_t* omitted = nullptr,
                               bool* json = nullptr) const;

  // Noisy fields remembered for `endpoint`, sorted.
  std::vector<std::string> noisyPaths(const std::string& endpoint) const;
  const CompareOptions& options() const { return options_; }

 private:
  explicit Comparator(const CompareOptions& options) : options_(options) {}

  struct Diff;  // one diff() run's state
  // With `noiseEndpoint`, differences in the endpoint's noisy fields are marked,
  // and the length headers are skipped when the bodies differ only in noise.
  std::vector<Difference> diffWith(const model::Response& a, const model::Response& b, const std::string* noiseEndpoint,
                                   size_t* omitted, bool* json) const;
  // Adds the bodies' differences (JSON fields when both parse, else an excerpt
  // from the first differing byte); true when they were compared as JSON.
  bool diffBodies(Diff& d, const model::Response& a, const model::Response& b) const;
  // Adds the headers' differences; the length headers only when the bodies differ.
  void diffHeaders(Diff& d, const model::Response& a, const model::Response& b, bool bodiesEqual) const;
  bool ignoredHeader(std::string_view name) const;
  bool ignoredPath(const std::vector<PathStep>& path) const;
  void learnNoise(const std::string& endpoint, const std::vector<Difference>& diffs);
  bool isNoisy(const std::string& endpoint, const std::string& genericPath) const;

  CompareOptions options_;
  std::vector<std::string> ignoreHeadersLower_;
  std::vector<JsonPathPattern> ignorePaths_;
  std::unordered_map<std::string, std::set<std::string>> noise_;
};

// True when the Content-Type says JSON (application/json, anything +json).
bool isJsonContentType(std::string_view contentType);

}  // namespace shadowtap::compare
