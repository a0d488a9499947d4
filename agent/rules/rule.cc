#include "rules/rule.h"

#include "base/strings.h"

#include <tuple>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {

// What a key handler found wrong: `what` follows "rule '...': 'key=value': ",
// unless `quoted` (the message already quotes the value).
struct KeyError {
  std::string what;
  bool quoted = false;
};
using KeyResult = std::optional<KeyError>;

KeyError fail(std::string what) { return {std::move(what), false}; }

// Keys that may be given only once, by name.
struct Seen {
  std::vector<std::string_view> keys;
  bool once(std::string_view key) {
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
      return false;
    }
    keys.push_back(key);
    return true;
  }
};

KeyResult parseMethods(Rule& r, std::string_view value) {
  if (!r.methods.empty()) {
    return fail("methods given twice (list them in one key: methods=GET|HEAD)");
  }
  size_t start = 0;
  while (start <= value.size()) {
    size_t bar = value.find('|', start);
    std::string_view m = value.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
    start = bar == std::string_view::npos ? value.size() + 1 : bar + 1;
    if (!base::isToken(m)) {
      return fail("'" + std::string(m) + "' is not a method; separate methods with '|'");
    }
    std::string method = upper(m);
    if (std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
      r.methods.push_back(method);
    }
  }
  return std::nullopt;
}

std::string_view trimBlanks(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
    v.remove_suffix(1);
  }
  return v;
}

KeyResult parseHeader(Rule& r, std::string_view value) {
  size_t colon = value.find(':');
  if (colon == std::string_view::npos) {
    return fail("expected header=NAME:VALUE");
  }
  std::string_view name = value.substr(0, colon);
  std::string_view v = trimBlanks(value.substr(colon + 1));
  if (!base::isToken(name)) {
    return fail("'" + std::string(name) + "' is not a valid header name");
  }
  if (isProtected(name)) {
    return fail(std::string(name) + " cannot be added (it would change the request's framing or routing)");
  }
  if (!validHeaderValue(v)) {
    return fail("the header value contains control characters");
  }
  r.headers.emplace_back(std::string(name), std::string(v));
  return std::nullopt;
}

KeyResult parseDropHeader(Rule& r, std::string_view value) {
  if (!base::isToken(value)) {
    return fail("'" + std::string(value) + "' is not a valid header name");
  }
  if (isProtected(value)) {
    return fail(std::string(value) + " cannot be removed (it would change the request's framing or routing)");
  }
  r.dropHeaders.push_back(lower(value));
  return std::nullopt;
}

// host=suffix|keep|NAME[:PORT]: a literal is a host name or address as a Host
// header carries it ("[v6]" for IPv6), optionally with a port.
KeyResult parseHost(MirrorSpec& r, std::string_view value) {
  if (value == "suffix") {
    r.hostMode = HostMode::kSuffix;
  } else if (value == "keep") {
    r.hostMode = HostMode::kKeep;
  } else {
    for (char c : value) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-._:[]").find(c) != std::string_view::npos)) {
        return fail("host must be suffix, keep, or a host name with an optional :port (e.g. staging.svc:8080)");
      }
    }
    r.hostMode = HostMode::kLiteral;
    r.hostLiteral = std::string(value);
  }
  return std::nullopt;
}

KeyResult parseSample(Rule& r, std::string_view value) {
  if (value == "connection") {
    r.sampleMode = SampleMode::kConnection;
  } else if (value == "request") {
    r.sampleMode = SampleMode::kRequest;
  } else if (value.starts_with("header:") && base::isToken(value.substr(7))) {
    r.sampleMode = SampleMode::kHeader;
    r.sampleHeader = lower(value.substr(7));
  } else {
    return fail("sample must be connection, request, or header:NAME (e.g. header:x-user-id)");
  }
  return std::nullopt;
}

template <typename T>
KeyResult parseLimit(std::string_view value, T min, T max, T& out, const char* what) {
  if (!parseUnsigned<T>(value, min, max, out)) {
    return fail(what);
  }
  return std::nullopt;
}

KeyResult parseHostPortOnce(std::string_view value, std::string& out, const char* key) {
  if (!out.empty()) {
    return fail(std::string(key) + " given twice");
  }
  if (std::string why = checkHostPort(value); !why.empty()) {
    return fail(why);
  }
  out = std::string(value);
  return std::nullopt;
}

KeyResult parseTlsCa(MirrorSpec& r, Seen& seen, std::string_view value) {
  if (!seen.once("tls-ca")) {
    return fail("tls-ca given twice");
  }
  struct stat st {};
  if (access(std::string(value).c_str(), R_OK) != 0 || stat(std::string(value).c_str(), &st) != 0) {
    return fail("tls-ca=" + std::string(value) + ": not a readable file");
  }
  r.tlsCa = std::string(value);
  r.tlsCaStamp = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return std::nullopt;
}

// The keys of a mirror's pool.
constexpr std::string_view kPoolKeys[] = {"connections", "queue", "queue-mib", "max-rps", "drop-policy"};

// Every key a mirror may have of its own (and the rule gives every mirror by default).
constexpr std::string_view kMirrorKeys[] = {"percentage",  "suffix",  "host",        "connections",
                                            "queue",       "queue-mib", "max-rps",   "drop-policy",
                                            "tls",         "tls-verify", "tls-ca"};

bool isMirrorKey(std::string_view key) {
  return std::find(std::begin(kMirrorKeys), std::end(kMirrorKeys), key) != std::end(kMirrorKeys);
}

KeyResult parsePoolKey(MirrorSpec& r, std::string_view key, std::string_view value) {
  if (key == "connections") {
    // A number the user chose for this target: a fixed pool, no growth.
    KeyResult e = parseLimit<size_t>(value, 1, 4096, r.connections, "connections must be a number from 1 to 4096");
    r.maxConnections = r.connections;
    return e;
  }
  if (key == "queue") {
    return parseLimit<size_t>(value, 1, 1 << 24, r.queue, "queue must be a number from 1 to 16777216");
  }
  if (key == "queue-mib") {
    return parseLimit<size_t>(value, 1, 65536, r.queueMiB, "queue-mib must be a number from 1 to 65536");
  }
  if (key == "max-rps") {
    return parseLimit<uint32_t>(value, 0, 10'000'000, r.maxRps,
                                "max-rps must be a number from 0 (unlimited) to 10000000");
  }
  // drop-policy
  if (value != "newest" && value != "oldest") {
    return fail("drop-policy must be newest or oldest");
  }
  r.dropPolicy = value == "newest" ? DropPolicy::kNewest : DropPolicy::kOldest;
  return std::nullopt;
}

// A key of one mirror (isMirrorKey), at the rule's level or inside mirror=.
KeyResult parseMirrorKey(MirrorSpec& m, Seen& seen, std::string_view key, std::string_view value) {
  if (key == "percentage") {
    if (!seen.once(key)) {
      return fail("percentage given twice");
    }
    return parsePercentage(value, m.percentage) ? KeyResult() : fail("percentage must be a number from 0 to 100");
  }
  if (key == "suffix") {
    if (!seen.once(key)) {
      return fail("suffix given twice");
    }
    std::string why = checkSuffix(value);
    m.suffix = std::string(value);
    return why.empty() ? KeyResult() : fail("suffix " + why);
  }
  if (key == "host") {
    if (!seen.once(key)) {
      return fail("host given twice");
    }
    return parseHost(m, value);
  }
  if (std::find(std::begin(kPoolKeys), std::end(kPoolKeys), key) != std::end(kPoolKeys)) {
    return parsePoolKey(m, key, value);
  }
  if (key == "tls" || key == "tls-verify") {
    if (value != "true" && value != "false") {
      return fail(std::string(key) + " must be true or false");
    }
    (key == "tls" ? m.tls : m.tlsVerify) = value == "true";
    seen.once(key);
    return std::nullopt;
  }
  return parseTlsCa(m, seen, value);  // tls-ca
}

// A mirror= item: its target and, after ';', its own keys, applied once the
// rule's keys (its defaults) are all known.
struct MirrorItem {
  std::string item;  // "mirror=...", for messages
  std::string target;
  std::vector<std::pair<std::string_view, std::string_view>> keys;
};

KeyResult parseMirrorItem(std::string_view value, std::vector<MirrorItem>& mirrors, std::string_view item) {
  MirrorItem m;
  m.item = std::string(item);
  const size_t semi = value.find(';');
  const std::string_view target = value.substr(0, semi);
  if (std::string why = checkHostPort(target); !why.empty()) {
    return fail(why);
  }
  m.target = std::string(target);
  for (const MirrorItem& other : mirrors) {
    if (other.target == m.target) {
      return fail("mirror " + m.target + " given twice (each mirror once per rule)");
    }
  }
  if (mirrors.size() == kMaxMirrorsPerRule) {
    return fail("more than " + std::to_string(kMaxMirrorsPerRule) + " mirrors in one rule");
  }
  std::string_view rest = semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
  while (semi != std::string_view::npos) {
    const size_t next = rest.find(';');
    const std::string_view kv = rest.substr(0, next);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == kv.size()) {
      return fail("'" + std::string(kv) + "' is not key=value (a mirror's own keys: mirror=HOST:PORT;key=value;...)");
    }
    const std::string_view key = kv.substr(0, eq);
    if (!isMirrorKey(key)) {
      return fail(key == "port" || key == "mirror" || key == "sample" || key == "dst" || key == "methods" ||
                          key == "header" || key == "drop-header" || key == "compare" || key == "secondary"
                      ? "'" + std::string(key) + "' is a key of the whole rule, not of one mirror: give it outside mirror="
                      : "unknown key '" + std::string(key) +
                            "' for a mirror (a mirror's own keys: percentage, suffix, host, connections, queue, "
                            "queue-mib, max-rps, drop-policy, tls, tls-verify, tls-ca)");
    }
    m.keys.emplace_back(key, kv.substr(eq + 1));
    if (next == std::string_view::npos) {
      break;
    }
    rest = rest.substr(next + 1);
  }
  mirrors.push_back(std::move(m));
  return std::nullopt;
}

bool given(const Seen& seen, std::string_view key) {
  return std::find(seen.keys.begin(), seen.keys.end(), key) != seen.keys.end();
}

// secondary=HOST:PORT and, after ';', its own TLS keys (tls, tls-verify,
// tls-ca; the rule's are the mirrors', not the secondary's).
KeyResult parseSecondary(Rule& r, std::string_view value) {
  const size_t semi = value.find(';');
  if (KeyResult e = parseHostPortOnce(value.substr(0, semi), r.secondary, "secondary")) {
    return e;
  }
  MirrorSpec tls;  // only its TLS keys are parsed into it
  Seen seen;
  for (size_t at = semi; at != std::string_view::npos;) {
    const size_t next = value.find(';', at + 1);
    const std::string_view kv = value.substr(at + 1, next == std::string_view::npos ? next : next - at - 1);
    at = next;
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == kv.size()) {
      return fail("'" + std::string(kv) + "' is not key=value (the secondary's own keys: secondary=HOST:PORT;tls=true;...)");
    }
    const std::string_view key = kv.substr(0, eq);
    if (key != "tls" && key != "tls-verify" && key != "tls-ca") {
      return fail("unknown key '" + std::string(key) + "' for the secondary (its own keys: tls, tls-verify, tls-ca)");
    }
    if ((key == "tls" || key == "tls-verify") && !seen.once(key)) {
      return fail(std::string(key) + " given twice for the secondary");
    }
    if (KeyResult e = parseMirrorKey(tls, seen, key, kv.substr(eq + 1))) {
      return e;
    }
  }
  if (!tls.tls && (given(seen, "tls-verify") || given(seen, "tls-ca"))) {
    return fail("the secondary's tls-verify and tls-ca only make sense with its tls=true");
  }
  r.secondaryTls = tls.tls;
  r.secondaryTlsVerify = tls.tlsVerify;
  r.secondaryTlsCa = tls.tlsCa;
  r.secondaryTlsCaStamp = tls.tlsCaStamp;
  return std::nullopt;
}

// A key of the rule (not a mirror key); mirror= items are collected in `mirrors`.
KeyResult parseRuleKey(Rule& r, Seen& seen, std::string_view key, std::string_view value,
                       std::vector<MirrorItem>& mirrors, std::string_view item) {
  if (key == "port") {
    if (!seen.once(key)) {
      return fail("port given twice");
    }
    return parseLimit<uint16_t>(value, 1, 65535, r.port, "port must be a number from 1 to 65535");
  }
  if (key == "mirror") {
    return parseMirrorItem(value, mirrors, item);
  }
  if (key == "secondary") {
    return parseSecondary(r, value);
  }
  if (key == "sample") {
    if (!seen.once(key)) {
      return fail("sample given twice");
    }
    return parseSample(r, value);
  }
  if (key == "dst") {
    if (r.dst) {
      return fail("dst given twice");
    }
    std::string why;
    r.dst = model::parseDestinationPrefix(value, &why);
    r.dstText = std::string(value);
    return r.dst ? KeyResult() : KeyResult(KeyError{why, true});
  }
  if (key == "methods") {
    return parseMethods(r, value);
  }
  if (key == "header") {
    return parseHeader(r, value);
  }
  if (key == "drop-header") {
    return parseDropHeader(r, value);
  }
  if (key == "compare") {
    if (value != "true" && value != "false") {
      return fail("compare must be true or false");
    }
    r.compare = value == "true";
    return std::nullopt;
  }
  return KeyError{"unknown key '" + std::string(key) +
                      "' (known: port, mirror, percentage, suffix, host, sample, dst, methods, header, drop-header, "
                      "connections, queue, queue-mib, max-rps, drop-policy, compare, secondary, tls, tls-verify, tls-ca)",
                  true};
}

// The checks that need the whole rule.
std::string checkWhole(const Rule& r, const Seen& seen, bool mirrorOptional) {
  if (!given(seen, "port")) {
    return "port=N is required";
  }
  if (!r.hasMirror() && !mirrorOptional) {
    return "mirror=HOST:PORT is required";
  }
  if (!r.secondary.empty() && !r.compare) {
    return "secondary=HOST:PORT only makes sense with compare=true";
  }
  const bool anyTls = std::any_of(r.mirrors.begin(), r.mirrors.end(), [](const MirrorSpec& m) { return m.tls; });
  if (!anyTls && (given(seen, "tls-verify") || given(seen, "tls-ca"))) {
    return std::string("tls-verify and tls-ca only make sense with tls=true") +
           (r.secondary.empty() ? ""
                                : " (the rule's tls keys are its mirrors'; the secondary's go after ';': "
                                  "secondary=HOST:PORT;tls=true;tls-verify=false)");
  }
  return "";
}

// Each mirror= item: the rule's mirror keys (`base`) with the item's own on top.
std::optional<KeyError> applyMirrorItems(Rule& r, const MirrorSpec& base, const std::vector<MirrorItem>& items,
                                         std::string& where) {
  r.mirrors.clear();
  for (const MirrorItem& item : items) {
    MirrorSpec m = base;
    m.target = item.target;
    Seen seen;
    where = item.item;
    for (const auto& [key, value] : item.keys) {
      if (KeyResult e = parseMirrorKey(m, seen, key, value)) {
        return e;
      }
    }
    if (!m.tls && (given(seen, "tls-verify") || given(seen, "tls-ca"))) {
      return fail("tls-verify and tls-ca only make sense with tls=true");
    }
    r.mirrors.push_back(std::move(m));
  }
  if (r.mirrors.empty()) {
    r.mirrors.push_back(base);  // no mirror named: the rule's settings still apply (dry run)
  }
  return std::nullopt;
}

}  // namespace

std::optional<Rule> parseRule(std::string_view text, const RuleDefaults& defaults, bool mirrorOptional,
                              std::string* error) {
  Rule r;
  r.text = std::string(text);
  MirrorSpec base;  // the rule's mirror keys: every mirror's defaults
  base.suffix = defaults.suffix;
  base.connections = defaults.connections;
  base.maxConnections = std::max(defaults.connections, defaults.maxConnections);
  base.queue = defaults.queue;
  base.queueMiB = defaults.queueMiB;
  base.maxRps = defaults.maxRps;
  base.dropPolicy = defaults.dropPolicy;

  const std::string quoted = "rule '" + r.text + "': ";
  Seen seen;
  std::vector<MirrorItem> mirrorItems;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) {
      *error = quoted + "empty item (two commas in a row, or a trailing comma)";
      return std::nullopt;
    }
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      *error = quoted + "'" + std::string(item) + "' is not key=value";
      return std::nullopt;
    }
    const std::string bad = "'" + std::string(item) + "': ";
    if (eq + 1 == item.size()) {
      *error = quoted + bad + "empty value";
      return std::nullopt;
    }
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    KeyResult e = isMirrorKey(key) ? parseMirrorKey(base, seen, key, value)
                                   : parseRuleKey(r, seen, key, value, mirrorItems, item);
    if (e) {
      *error = quoted + (e->quoted ? "" : bad) + e->what;
      return std::nullopt;
    }
  }
  std::string where;
  if (std::optional<KeyError> e = applyMirrorItems(r, base, mirrorItems, where)) {
    *error = quoted + "'" + where + "': " + e->what;
    return std::nullopt;
  }
  if (std::string why = checkWhole(r, seen, mirrorOptional); !why.empty()) {
    *error = quoted + why;
    return std::nullopt;
  }
  return r;
}

}  // namespace shadowtap::rules
