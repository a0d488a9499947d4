#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowtap::compare {

// One step from a JSON value to a child: an object member or an array element.
struct PathStep {
  bool isIndex = false;
  std::string key;   // object member (isIndex false)
  size_t index = 0;  // array element (isIndex true)
};

// "$", "$.a.b[2]", "$['a b'].c": the form differences are reported in.
std::string formatPath(const std::vector<PathStep>& steps);
// The same with every array index written [*]: what noise is remembered by.
std::string formatPathGeneric(const std::vector<PathStep>& steps);

// A compiled ignore path, a JSONPath subset:
//   $.name  $['any name']  [3]  [*] (any element)  .* (any member)
//   ..name (name at any depth below)
// A path also ignores everything below what it matches: `$.meta` ignores
// `$.meta.time`.
class JsonPathPattern {
 public:
  // nullopt with `error` set when `text` is not in the subset above.
  static std::optional<JsonPathPattern> parse(std::string_view text, std::string* error);

  bool matches(const std::vector<PathStep>& path) const;
  const std::string& text() const { return text_; }

 private:
  enum class Kind { kKey, kIndex, kAnyKey, kAnyIndex, kDescend };
  struct Step {
    Kind kind;
    std::string key;
    size_t index = 0;
  };
  bool matchFrom(size_t p, const std::vector<PathStep>& path, size_t i) const;

  std::string text_;
  std::vector<Step> steps_;
};

}  // namespace shadowtap::compare
