#include "compare/compare_stats.h"

#include "base/counters.h"

namespace shadowtap::compare {
namespace {


void countInto(CompareCounters& c, Outcome outcome) {
  base::bump(c.compared);
  switch (outcome) {
    case Outcome::kEqual:
      base::bump(c.equal);
      break;
    case Outcome::kDifferent:
      base::bump(c.different);
      break;
    case Outcome::kNoisy:
      base::bump(c.noisy);
      break;
  }
}

}  // namespace

CompareCounters& CompareStats::rule(uint32_t ruleId) {
  auto& slot = rules_[ruleId];
  if (!slot) {
    slot = std::make_unique<CompareCounters>();
  }
  return *slot;
}

CompareCounters& CompareStats::endpoint(uint32_t ruleId, const std::string& endpoint) {
  auto it = endpoints_.find({ruleId, endpoint});
  if (it != endpoints_.end()) {
    return *it->second;
  }
  if (endpoints_.size() >= maxEndpoints_) {
    base::bump(endpointsOverflow);
    auto& other = endpoints_[{ruleId, "(other)"}];
    if (!other) {
      other = std::make_unique<CompareCounters>();
    }
    return *other;
  }
  auto& slot = endpoints_[{ruleId, endpoint}];
  slot = std::make_unique<CompareCounters>();
  return *slot;
}

void CompareStats::count(uint32_t ruleId, const std::string& ep, Outcome outcome) {
  std::lock_guard lock(mutex_);
  countInto(rule(ruleId), outcome);
  countInto(endpoint(ruleId, ep), outcome);
}

void CompareStats::forEachRule(const std::function<void(uint32_t, const CompareCounters&)>& fn) const {
  std::lock_guard lock(mutex_);
  for (const auto& [id, c] : rules_) {
    fn(id, *c);
  }
}

void CompareStats::forEachEndpoint(
    const std::function<void(uint32_t, const std::string&, const CompareCounters&)>& fn) const {
  std::lock_guard lock(mutex_);
  for (const auto& [key, c] : endpoints_) {
    fn(key.first, key.second, *c);
  }
}

}  // namespace shadowtap::compare
