#include "capture/record_decoder.h"

#include <arpa/inet.h>

#include <cstring>

#include "capture/abi_check.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {

bool decodeRecord(const void* data, size_t size, flow::Segment* out) {
  if (size < sizeof(st_segment)) {
    return false;
  }
  const auto* rec = static_cast<const st_segment*>(data);
  if (rec->abi_version != SHADOWTAP_ABI_VERSION || rec->cap_len > size - sizeof(st_segment) ||
      (rec->family != ST_FAMILY_IPV4 && rec->family != ST_FAMILY_IPV6)) {
    return false;
  }
  if ((rec->direction != ST_DIR_TO_SERVER && rec->direction != ST_DIR_FROM_SERVER) ||
      (rec->source != ST_SRC_WIRE && rec->source != ST_SRC_TLS)) {
    return false;
  }
  flow::Segment& seg = *out;
  seg = flow::Segment{};
  seg.fromServer = rec->direction == ST_DIR_FROM_SERVER;
  std::memcpy(seg.key.saddr.data(), rec->saddr, 16);
  std::memcpy(seg.key.daddr.data(), rec->daddr, 16);
  seg.key.sport = ntohs(rec->sport);
  seg.key.dport = ntohs(rec->dport);
  seg.key.family = rec->family;
  seg.key.source = rec->source == ST_SRC_TLS ? model::FlowSource::kTls : model::FlowSource::kWire;
  seg.seq = rec->seq;
  seg.ack = rec->ack;
  const bool first = rec->chunk_offset == 0;
  const bool last = rec->chunk_offset + rec->cap_len >= rec->payload_len;
  seg.flags = rec->tcp_flags;
  if (!first) {
    seg.flags &= ~flow::kTcpSyn;
  }
  if (!last) {
    seg.flags &= ~(flow::kTcpFin | flow::kTcpRst);
  }
  seg.ruleId = rec->rule_id;
  seg.tsNs = rec->ts_ns;
  seg.ifindex = rec->ifindex;
  seg.payload = {reinterpret_cast<const uint8_t*>(rec + 1), rec->cap_len};
  return true;
}

}  // namespace shadowtap::capture
