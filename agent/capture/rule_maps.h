#pragma once

// What a rule set looks like in the kernel's rule maps, and what to write to
// go from one set to the next. Pure: no map is touched here (RuleMapSync does
// that). Private to capture/: its types are the kernel/user ABI's.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "capture/port_rule.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {

// The map contents a rule set stands for: one st_rules entry per port, one
// st_prefix_rules (LPM trie) entry per rule with a destination prefix.
struct RuleMaps {
  std::map<uint16_t, st_rule> ports;
  std::vector<std::pair<st_prefix_key, st_rule>> prefixes;
};

// Fills *out from `rules`. Empty string on success, else what is wrong with the
// set (rule id 0, two rules of a port without a destination or with the same
// prefix, an invalid prefix, too many prefixes); *out is then unspecified.
std::string buildRuleMaps(const std::vector<PortRule>& rules, RuleMaps* out);

// The trie key of a rule with a destination prefix.
st_prefix_key prefixKey(uint16_t port, const model::DestinationPrefix& destination);

// Map writes turning `had` into `want`, in the order to apply them: every entry
// of `want` is written first (prefixes before ports, so a port flagged
// ST_RULE_F_HAS_PREFIX finds its prefixes), and only then are the entries only
// `had` has removed. A port present in both never goes without a rule, so a
// reload loses no packet of a rule it keeps.
struct RuleMapChanges {
  std::vector<std::pair<st_prefix_key, st_rule>> prefixWrites;
  std::vector<std::pair<uint32_t, st_rule>> portWrites;
  std::vector<st_prefix_key> prefixDeletes;
  std::vector<uint32_t> portClears;  // st_rules is an array: cleared to an all-zero st_rule
};

RuleMapChanges diffRuleMaps(const RuleMaps& had, const RuleMaps& want);

}  // namespace shadowtap::capture
