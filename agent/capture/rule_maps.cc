#include "capture/rule_maps.h"

#include <arpa/inet.h>

#include <cstring>
#include <set>

#include "capture/abi_check.h"

namespace shadowtap::capture {
namespace {

bool sameKey(const st_prefix_key& a, const st_prefix_key& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

}  // namespace

st_prefix_key prefixKey(uint16_t port, const model::DestinationPrefix& d) {
  st_prefix_key key{};
  key.prefixlen = ST_PREFIX_KEY_FIXED_BITS + d.length;
  key.port = htons(port);
  key.family = d.family == 4 ? ST_FAMILY_IPV4 : ST_FAMILY_IPV6;
  std::memcpy(key.addr, d.addr.data(), d.family == 4 ? 4 : 16);
  return key;
}

std::string buildRuleMaps(const std::vector<PortRule>& rules, RuleMaps* out) {
  std::set<std::vector<uint8_t>> prefixesSeen;
  std::set<uint16_t> portOnly;
  for (const PortRule& r : rules) {
    if (r.ruleId == 0) {
      return "rule for port " + std::to_string(r.port) + " has id 0 (ids must be non-zero)";
    }
    st_rule& entry = out->ports[r.port];
    if (!r.destination) {
      if (!portOnly.insert(r.port).second) {
        return "two rules for port " + std::to_string(r.port) +
               " without a destination; give one of them a destination prefix";
      }
      entry.rule_id = r.ruleId;
      entry.sample_bp = r.sampleBp;
      if (r.compare) {
        entry.flags |= ST_RULE_F_COMPARE;
      }
      continue;
    }
    const model::DestinationPrefix& d = *r.destination;
    const unsigned maxLen = d.family == 4 ? 32 : 128;
    if ((d.family != 4 && d.family != 6) || d.length > maxLen) {
      return "invalid destination prefix in the rule for port " + std::to_string(r.port);
    }
    st_prefix_key key = prefixKey(r.port, d);
    const auto* raw = reinterpret_cast<const uint8_t*>(&key);
    if (!prefixesSeen.insert(std::vector<uint8_t>(raw, raw + sizeof(key))).second) {
      return "two rules for port " + std::to_string(r.port) + " with the same destination prefix";
    }
    out->prefixes.push_back({key, st_rule{r.ruleId, r.sampleBp, r.compare ? ST_RULE_F_COMPARE : 0u}});
    entry.flags |= ST_RULE_F_HAS_PREFIX;
  }
  if (out->prefixes.size() > ST_MAX_PREFIX_RULES) {
    return "at most " + std::to_string(ST_MAX_PREFIX_RULES) + " rules with a destination prefix";
  }
  return "";
}

RuleMapChanges diffRuleMaps(const RuleMaps& had, const RuleMaps& want) {
  RuleMapChanges out;
  out.prefixWrites = want.prefixes;
  for (const auto& [port, value] : want.ports) {
    out.portWrites.push_back({port, value});
  }
  for (const auto& [key, value] : had.prefixes) {
    bool kept = false;
    for (const auto& w : want.prefixes) {
      kept = kept || sameKey(w.first, key);
    }
    if (!kept) {
      out.prefixDeletes.push_back(key);
    }
  }
  for (const auto& [port, value] : had.ports) {
    if (!want.ports.count(port)) {
      out.portClears.push_back(port);
    }
  }
  return out;
}

}  // namespace shadowtap::capture
