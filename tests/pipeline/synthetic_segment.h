#pragma once

// A client-to-server TCP segment from 198.18.0.1 to 198.18.0.2, as the capture
// would deliver it, for driving a Worker without BPF.
#include <cstdint>
#include <string_view>

#include "flow/segment.h"

namespace shadowtap::testing {

inline flow::Segment syntheticSegment(uint16_t sport, uint16_t dport, uint32_t ruleId, uint32_t seq, uint8_t flags,
                                      std::string_view payload = {}) {
  flow::Segment s;
  s.key.family = 4;
  s.key.saddr = {198, 18, 0, 1};
  s.key.daddr = {198, 18, 0, 2};
  s.key.sport = sport;
  s.key.dport = dport;
  s.ruleId = ruleId;
  s.seq = seq;
  s.flags = flags;
  s.payload = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  return s;
}

}  // namespace shadowtap::testing
