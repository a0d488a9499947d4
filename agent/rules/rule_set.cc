#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "rules/rule.h"

// What a parsed rule says of itself (its shares, its description, whether a
// reload keeps it) and the checks of a set of rules; parsing is in rule.cc.
namespace shadowtap::rules {

uint32_t MirrorSpec::sampleBasisPoints() const { return static_cast<uint32_t>(std::lround(percentage * 100.0)); }

uint32_t Rule::kernelSampleBasisPoints() const {
  if (sampleMode != SampleMode::kConnection) {
    return 10000;
  }
  uint32_t most = 0;
  for (const MirrorSpec& m : mirrors) {
    most = std::max(most, m.sampleBasisPoints());
  }
  return most;
}

namespace {

// "httpbin-mirror:8000 (50% of connections, host kept)": one mirror's part of describe().
std::string describeMirror(const MirrorSpec& m, const Rule& r) {
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%g", m.percentage);
  const char* unit = r.sampleMode == SampleMode::kConnection ? "% of connections" : "% of requests";
  std::string out = (m.target.empty() ? std::string("(dry run)") : m.target) + " (" + pct + unit;
  if (r.sampleMode == SampleMode::kHeader) {
    out += " by " + r.sampleHeader;
  }
  if (m.hostMode != HostMode::kSuffix) {
    out += m.hostMode == HostMode::kKeep ? ", host kept" : ", host " + m.hostLiteral;
  }
  if (m.maxRps != 0) {
    out += ", max " + std::to_string(m.maxRps) + " rps";
  }
  if (m.tls) {
    out += std::string(", TLS to the mirror") + (m.tlsVerify ? "" : " (not verified)");
  }
  return out;
}

}  // namespace

std::string Rule::describe() const {
  std::string out = "port=" + std::to_string(port);
  if (dst) {
    out += " dst=" + dstText;
  }
  std::string rest;  // the rule's own settings
  if (!methods.empty()) {
    rest += ", methods ";
    for (size_t i = 0; i < methods.size(); ++i) {
      rest += (i ? "|" : "") + methods[i];
    }
  }
  if (compare) {
    rest += std::string(", responses compared") + (mirrors.size() > 1 ? " with " + mirrors[0].target : "") +
            (secondary.empty() ? std::string() : ", noise from " + secondary + (secondaryTls ? " over TLS" : ""));
  }
  if (mirrors.size() == 1) {
    return out + " -> " + describeMirror(mirrors[0], *this) + rest + ")";
  }
  out += " ->";
  for (size_t i = 0; i < mirrors.size(); ++i) {
    out += (i ? " + " : " ") + describeMirror(mirrors[i], *this) + ")";
  }
  return out + rest;
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
    return std::tie(r.port, r.mirrors, r.sampleMode, r.sampleHeader, r.dst, r.methods, r.headers, r.dropHeaders,
                    r.compare, r.secondary, r.secondaryTls, r.secondaryTlsVerify, r.secondaryTlsCa,
                    r.secondaryTlsCaStamp);
  };
  return key(*this) == key(o);
}

}  // namespace shadowtap::rules
