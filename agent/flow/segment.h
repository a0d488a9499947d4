#pragma once

#include <cstdint>
#include <span>

#include "model/flow_key.h"

namespace shadowtap::flow {

// TCP flag bits as in the TCP header.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

// One captured TCP segment (or one chunk of a large one). Client-to-server
// (requests) unless fromServer: compare mode also captures the server's
// responses, whose key has the service port as sport. `payload` is only valid
// during the call that receives the Segment.
struct Segment {
  model::FlowKey key;
  uint32_t seq = 0;  // sequence number of payload[0]
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint32_t ruleId = 0;
  uint64_t tsNs = 0;  // capture time, monotonic ns
  uint32_t ifindex = 0;
  std::span<const uint8_t> payload;
  bool fromServer = false;  // a response segment (compare mode's egress capture)
};

}  // namespace shadowtap::flow
