#include "rules/rule.h"

#include <tuple>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace shadowtap::rules {
namespace {

// Header names whose change would break the request's framing or its routing
// at the mirror; the Host rewrite is the one sanctioned change to routing.
constexpr std::string_view kProtectedHeaders[] = {"host", "content-length", "transfer-encoding"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

template <typename T>
bool parseUnsigned(std::string_view v, T min, T max, T& out) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < min || n > max) {
    return false;
  }
  out = static_cast<T>(n);
  return true;
}

bool parsePercentage(std::string_view v, double& out) {
  if (v.empty() || v.size() > 32) {
    return false;
  }
  std::string s(v);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(d) || d < 0.0 || d > 100.0) {
    return false;
  }
  out = d;
  return true;
}

bool isProtected(std::string_view name) {
  std::string l = lower(name);
  return std::find(std::begin(kProtectedHeaders), std::end(kProtectedHeaders), l) != std::end(kProtectedHeaders);
}

bool validHeaderValue(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) {
      continue;
    }
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

std::string checkSuffix(std::string_view s) {
  if (s.empty()) {
    return "must not be empty";
  }
  for (char ch : s) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_')) {
      return "may contain only letters, digits, '-', '.' and '_'";
    }
  }
  return "";
}

std::string checkHostPort(std::string_view value) {
  auto colon = value.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size()) {
    return "expected host:port (for example httpbin-mirror:8000 or [2001:db8::2]:8000)";
  }
  std::string_view port = value.substr(colon + 1);
  uint16_t n = 0;
  if (!parseUnsigned<uint16_t>(port, 1, 65535, n)) {
    return "port '" + std::string(port) + "' is not a number from 1 to 65535";
  }
  return "";
}

uint32_t Rule::sampleBasisPoints() const { return static_cast<uint32_t>(std::lround(percentage * 100.0)); }

std::string Rule::describe() const {
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%g", percentage);
  std::string out = "port=" + std::to_string(port);
  if (dst) {
    out += " dst=" + dstText;
  }
  out += " -> " + (mirror.empty() ? std::string("(dry run)") : mirror) + " (" + pct + "% of connections";
  if (!methods.empty()) {
    out += ", methods ";
    for (size_t i = 0; i < methods.size(); ++i) {
      out += (i ? "|" : "") + methods[i];
    }
  }
  if (maxRps != 0) {
    out += ", max " + std::to_string(maxRps) + " rps";
  }
  if (compare) {
    out += ", responses compared" + (secondary.empty() ? std::string() : ", noise from " + secondary);
  }
  return out + ")";
}

std::optional<Rule> parseRule(std::string_view text, const RuleDefaults& defaults, bool mirrorOptional,
                              std::string* error) {
  Rule r;
  r.text = std::string(text);
  r.suffix = defaults.suffix;
  r.connections = defaults.connections;
  r.queue = defaults.queue;
  r.queueMiB = defaults.queueMiB;
  r.maxRps = defaults.maxRps;
  r.dropPolicy = defaults.dropPolicy;

  const std::string quoted = "rule '" + r.text + "': ";
  auto failWith = [&](const std::string& what) {
    *error = quoted + what;
    return std::nullopt;
  };
  bool havePort = false;
  bool havePercentage = false;
  bool haveSuffix = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) {
      return failWith("empty item (two commas in a row, or a trailing comma)");
    }
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return failWith("'" + std::string(item) + "' is not key=value");
    }
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    const std::string bad = "'" + std::string(item) + "': ";
    if (value.empty()) {
      return failWith(bad + "empty value");
    }
    if (key == "port") {
      if (havePort || !parseUnsigned<uint16_t>(value, 1, 65535, r.port)) {
        return failWith(bad + (havePort ? "port given twice" : "port must be a number from 1 to 65535"));
      }
      havePort = true;
    } else if (key == "mirror") {
      if (!r.mirror.empty()) {
        return failWith(bad + "mirror given twice");
      }
      if (std::string why = checkHostPort(value); !why.empty()) {
        return failWith(bad + why);
      }
      r.mirror = std::string(value);
    } else if (key == "percentage") {
      if (havePercentage || !parsePercentage(value, r.percentage)) {
        return failWith(bad + (havePercentage ? "percentage given twice" : "percentage must be a number from 0 to 100"));
      }
      havePercentage = true;
    } else if (key == "suffix") {
      if (std::string why = checkSuffix(value); haveSuffix || !why.empty()) {
        return failWith(bad + (haveSuffix ? "suffix given twice" : "suffix " + why));
      }
      r.suffix = std::string(value);
      haveSuffix = true;
    } else if (key == "dst") {
      std::string why;
      if (r.dst) {
        return failWith(bad + "dst given twice");
      }
      r.dst = model::parseDestinationPrefix(value, &why);
      if (!r.dst) {
        return failWith(why);
      }
      r.dstText = std::string(value);
    } else if (key == "methods") {
      if (!r.methods.empty()) {
        return failWith(bad + "methods given twice (list them in one key: methods=GET|HEAD)");
      }
      size_t start = 0;
      while (start <= value.size()) {
        size_t bar = value.find('|', start);
        std::string_view m = value.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
        start = bar == std::string_view::npos ? value.size() + 1 : bar + 1;
        if (!isToken(m)) {
          return failWith(bad + "'" + std::string(m) + "' is not a method; separate methods with '|'");
        }
        std::string method = upper(m);
        if (std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
          r.methods.push_back(method);
        }
      }
    } else if (key == "header") {
      size_t colon = value.find(':');
      if (colon == std::string_view::npos) {
        return failWith(bad + "expected header=NAME:VALUE");
      }
      std::string_view name = value.substr(0, colon);
      std::string_view v = value.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
      }
      if (!isToken(name)) {
        return failWith(bad + "'" + std::string(name) + "' is not a valid header name");
      }
      if (isProtected(name)) {
        return failWith(bad + std::string(name) + " cannot be added (it would change the request's framing or routing)");
      }
      if (!validHeaderValue(v)) {
        return failWith(bad + "the header value contains control characters");
      }
      r.headers.emplace_back(std::string(name), std::string(v));
    } else if (key == "drop-header") {
      if (!isToken(value)) {
        return failWith(bad + "'" + std::string(value) + "' is not a valid header name");
      }
      if (isProtected(value)) {
        return failWith(bad + std::string(value) + " cannot be removed (it would change the request's framing or routing)");
      }
      r.dropHeaders.push_back(lower(value));
    } else if (key == "connections") {
      if (!parseUnsigned<size_t>(value, 1, 4096, r.connections)) {
        return failWith(bad + "connections must be a number from 1 to 4096");
      }
    } else if (key == "queue") {
      if (!parseUnsigned<size_t>(value, 1, 1 << 24, r.queue)) {
        return failWith(bad + "queue must be a number from 1 to 16777216");
      }
    } else if (key == "queue-mib") {
      if (!parseUnsigned<size_t>(value, 1, 65536, r.queueMiB)) {
        return failWith(bad + "queue-mib must be a number from 1 to 65536");
      }
    } else if (key == "max-rps") {
      if (!parseUnsigned<uint32_t>(value, 0, 10'000'000, r.maxRps)) {
        return failWith(bad + "max-rps must be a number from 0 (unlimited) to 10000000");
      }
    } else if (key == "drop-policy") {
      if (value == "newest") {
        r.dropPolicy = DropPolicy::kNewest;
      } else if (value == "oldest") {
        r.dropPolicy = DropPolicy::kOldest;
      } else {
        return failWith(bad + "drop-policy must be newest or oldest");
      }
    } else if (key == "compare") {
      if (value != "true" && value != "false") {
        return failWith(bad + "compare must be true or false");
      }
      r.compare = value == "true";
    } else if (key == "secondary") {
      if (!r.secondary.empty()) {
        return failWith(bad + "secondary given twice");
      }
      if (std::string why = checkHostPort(value); !why.empty()) {
        return failWith(bad + why);
      }
      r.secondary = std::string(value);
    } else {
      return failWith("unknown key '" + std::string(key) +
                      "' (known: port, mirror, percentage, suffix, dst, methods, header, drop-header, connections, "
                      "queue, queue-mib, max-rps, drop-policy, compare, secondary)");
    }
  }
  if (!havePort) {
    return failWith("port=N is required");
  }
  if (r.mirror.empty() && !mirrorOptional) {
    return failWith("mirror=HOST:PORT is required");
  }
  if (!r.secondary.empty() && !r.compare) {
    return failWith("secondary=HOST:PORT only makes sense with compare=true");
  }
  return r;
}

std::string checkRuleSet(const std::vector<Rule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (rules[i].port == rules[j].port && rules[i].dst == rules[j].dst) {
        return "rule '" + rules[i].text + "' matches the same traffic as rule '" + rules[j].text +
               "' (same port" + (rules[i].dst ? " and dst" : "") + "); give each a different port or dst";
      }
    }
  }
  return "";
}

bool Rule::sameAs(const Rule& o) const {
  auto key = [](const Rule& r) {
    return std::tie(r.port, r.mirror, r.percentage, r.suffix, r.dst, r.methods, r.headers, r.dropHeaders,
                    r.connections, r.queue, r.queueMiB, r.maxRps, r.dropPolicy, r.compare, r.secondary);
  };
  return key(*this) == key(o);
}

}  // namespace shadowtap::rules
