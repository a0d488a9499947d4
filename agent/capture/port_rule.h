#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "model/destination_prefix.h"

namespace shadowtap::capture {

// A port to capture, with its rule id (carried in every record) and the share
// of connections to mirror, in basis points (10000 = 100 %), optionally only for
// destinations inside a prefix. Several rules may share a port: for a segment the
// rule with the longest matching destination prefix wins, and the port's rule
// without a destination (at most one per port) is the fallback. Rule ids must be
// non-zero. `compare`: also capture the rule's responses (segments FROM the port
// and destination, of the same sampled connections), delivered with
// Segment::fromServer set; egress hooks are attached only while some rule compares.
struct PortRule {
  uint16_t port = 0;
  uint32_t ruleId = 0;
  uint32_t sampleBp = 10000;
  std::optional<model::DestinationPrefix> destination;
  bool compare = false;
};

// Whether some rule of the set compares, so that egress hooks are wanted.
inline bool anyCompare(const std::vector<PortRule>& rules) {
  return std::any_of(rules.begin(), rules.end(), [](const PortRule& r) { return r.compare; });
}

}  // namespace shadowtap::capture
