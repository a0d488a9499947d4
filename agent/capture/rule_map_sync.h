#pragma once

#include <string>
#include <vector>

#include "capture/port_rule.h"

namespace shadowtap::capture {

// Keeps the kernel's rule maps (st_rules by port, st_prefix_rules by port and
// destination prefix) equal to a rule set, replacing it in place on reload:
// the programs keep running on the same maps, so there is no moment without
// rules for a port the old and the new set share (see diffRuleMaps).
class RuleMapSync {
 public:
  RuleMapSync(int rulesFd, int prefixRulesFd) : rulesFd_(rulesFd), prefixRulesFd_(prefixRulesFd) {}

  // Makes the maps hold `rules` instead of the set installed so far (none at
  // first). Empty on success. Else why: an invalid set is refused before any
  // write and the old one stays; a failed map write (the kernel refusing an
  // entry) may leave the new entries written so far next to the old set.
  [[nodiscard]] std::string replace(const std::vector<PortRule>& rules);

 private:
  int rulesFd_;
  int prefixRulesFd_;
  std::vector<PortRule> installed_;
};

}  // namespace shadowtap::capture
