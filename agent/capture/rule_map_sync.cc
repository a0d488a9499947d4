#include "capture/rule_map_sync.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include "capture/rule_maps.h"

namespace shadowtap::capture {

std::string RuleMapSync::replace(const std::vector<PortRule>& rules) {
  RuleMaps want;
  RuleMaps had;
  if (std::string why = buildRuleMaps(rules, &want); !why.empty()) {
    return why;
  }
  buildRuleMaps(installed_, &had);  // was valid when installed
  const RuleMapChanges changes = diffRuleMaps(had, want);
  for (const auto& [key, value] : changes.prefixWrites) {
    if (bpf_map_update_elem(prefixRulesFd_, &key, &value, BPF_ANY) != 0) {
      return std::string("cannot write the prefix rule map: ") + std::strerror(errno);
    }
  }
  for (const auto& [port, value] : changes.portWrites) {
    if (bpf_map_update_elem(rulesFd_, &port, &value, BPF_ANY) != 0) {
      return std::string("cannot write the rule map: ") + std::strerror(errno);
    }
  }
  for (const st_prefix_key& key : changes.prefixDeletes) {
    bpf_map_delete_elem(prefixRulesFd_, &key);
  }
  const st_rule none{};
  for (uint32_t port : changes.portClears) {
    bpf_map_update_elem(rulesFd_, &port, &none, BPF_ANY);
  }
  installed_ = rules;
  return "";
}

}  // namespace shadowtap::capture
