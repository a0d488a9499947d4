#include "compare/json_path.h"

namespace shadowtap::compare {
namespace {

bool isPlainKey(std::string_view k) {
  if (k.empty()) {
    return false;
  }
  for (char c : k) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '$';
    if (!ok) {
      return false;
    }
  }
  return true;
}

void appendStep(std::string& out, const PathStep& s, bool generic) {
  if (s.isIndex) {
    out += generic ? std::string("[*]") : "[" + std::to_string(s.index) + "]";
  } else if (isPlainKey(s.key)) {
    out += '.';
    out += s.key;
  } else {
    out += "['";
    for (char c : s.key) {
      if (c == '\'' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += "']";
  }
}

std::string format(const std::vector<PathStep>& steps, bool generic) {
  std::string out = "$";
  for (const PathStep& s : steps) {
    appendStep(out, s, generic);
  }
  return out;
}

}  // namespace

std::string formatPath(const std::vector<PathStep>& steps) { return format(steps, false); }
std::string formatPathGeneric(const std::vector<PathStep>& steps) { return format(steps, true); }

std::optional<JsonPathPattern> JsonPathPattern::parse(std::string_view text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<JsonPathPattern> {
    if (error != nullptr) {
      *error = "JSON path '" + std::string(text) + "': " + why;
    }
    return std::nullopt;
  };
  JsonPathPattern p;
  p.text_ = std::string(text);
  if (text.empty() || text[0] != '$') {
    return fail("must start with '$'");
  }
  size_t i = 1;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '.') {
      if (i + 1 < text.size() && text[i + 1] == '.') {
        p.steps_.push_back({Kind::kDescend, {}, 0});
        i += 2;
      } else {
        ++i;
      }
      if (i < text.size() && text[i] == '*') {
        p.steps_.push_back({Kind::kAnyKey, {}, 0});
        ++i;
        continue;
      }
      size_t j = i;
      while (j < text.size() && text[j] != '.' && text[j] != '[') {
        ++j;
      }
      if (j == i) {
        if (!p.steps_.empty() && p.steps_.back().kind == Kind::kDescend && j < text.size() && text[j] == '[') {
          continue;  // "$..[0]"
        }
        return fail("empty member name at offset " + std::to_string(i));
      }
      p.steps_.push_back({Kind::kKey, std::string(text.substr(i, j - i)), 0});
      i = j;
    } else if (c == '[') {
      const size_t close = text.find(']', i);
      if (close == std::string_view::npos) {
        return fail("'[' without ']'");
      }
      const std::string_view inner = text.substr(i + 1, close - i - 1);
      if (inner == "*") {
        p.steps_.push_back({Kind::kAnyIndex, {}, 0});
      } else if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"') &&
                 inner.back() == inner.front()) {
        std::string key;
        for (size_t k = 1; k + 1 < inner.size(); ++k) {
          if (inner[k] == '\\' && k + 2 < inner.size()) {
            ++k;
          }
          key += inner[k];
        }
        p.steps_.push_back({Kind::kKey, key, 0});
      } else if (!inner.empty() && inner.find_first_not_of("0123456789") == std::string_view::npos &&
                 inner.size() < 10) {
        p.steps_.push_back({Kind::kIndex, {}, std::stoul(std::string(inner))});
      } else {
        return fail("'[" + std::string(inner) + "]' is not [n], [*] or ['name']");
      }
      i = close + 1;
    } else {
      return fail(std::string("unexpected '") + c + "' at offset " + std::to_string(i));
    }
  }
  if (!p.steps_.empty() && p.steps_.back().kind == Kind::kDescend) {
    return fail("ends with '..'");
  }
  return p;
}

bool JsonPathPattern::matches(const std::vector<PathStep>& path) const { return matchFrom(0, path, 0); }

// Pattern steps from `p` against path steps from `i`; the pattern may end
// before the path (a prefix ignores the subtree).
bool JsonPathPattern::matchFrom(size_t p, const std::vector<PathStep>& path, size_t i) const {
  while (p < steps_.size()) {
    const Step& s = steps_[p];
    if (s.kind == Kind::kDescend) {
      for (size_t k = i; k < path.size(); ++k) {
        if (matchFrom(p + 1, path, k)) {
          return true;
        }
      }
      return false;
    }
    if (i >= path.size()) {
      return false;
    }
    const PathStep& step = path[i];
    switch (s.kind) {
      case Kind::kKey:
        if (step.isIndex || step.key != s.key) {
          return false;
        }
        break;
      case Kind::kIndex:
        if (!step.isIndex || step.index != s.index) {
          return false;
        }
        break;
      case Kind::kAnyKey:
        if (step.isIndex) {
          return false;
        }
        break;
      case Kind::kAnyIndex:
        if (!step.isIndex) {
          return false;
        }
        break;
      case Kind::kDescend:
        break;
    }
    ++p;
    ++i;
  }
  return true;
}

}  // namespace shadowtap::compare
