#pragma once

// The ring buffer record is defined once, in include/shadowtap/capture_abi.h.
// These asserts pin its layout so that a change on either side breaks the build
// instead of silently misreading records.

#include <cstddef>

#include "flow/segment.h"
#include "shadowtap/capture_abi.h"

static_assert(sizeof(st_segment) == 80, "st_segment size is ABI");
static_assert(offsetof(st_segment, ts_ns) == 0);
static_assert(offsetof(st_segment, saddr) == 8);
static_assert(offsetof(st_segment, daddr) == 24);
static_assert(offsetof(st_segment, sport) == 40);
static_assert(offsetof(st_segment, dport) == 42);
static_assert(offsetof(st_segment, seq) == 44);
static_assert(offsetof(st_segment, ack) == 48);
static_assert(offsetof(st_segment, ifindex) == 52);
static_assert(offsetof(st_segment, rule_id) == 56);
static_assert(offsetof(st_segment, payload_len) == 60);
static_assert(offsetof(st_segment, chunk_offset) == 64);
static_assert(offsetof(st_segment, cap_len) == 68);
static_assert(offsetof(st_segment, family) == 72);
static_assert(offsetof(st_segment, tcp_flags) == 73);
static_assert(offsetof(st_segment, abi_version) == 74);
static_assert(offsetof(st_segment, source) == 75);
static_assert(offsetof(st_segment, direction) == 76);
static_assert(SHADOWTAP_ABI_VERSION == 5, "update these asserts with the ABI");
static_assert(ST_MAX_WORKERS == 64 && ST_WORKER_MULTIPLIER == 0x9E3779B1u);
static_assert(sizeof(st_rule) == 12);
static_assert(offsetof(st_rule, rule_id) == 0);
static_assert(offsetof(st_rule, sample_bp) == 4);
static_assert(offsetof(st_rule, flags) == 8);
static_assert(sizeof(st_prefix_key) == 24);
static_assert(offsetof(st_prefix_key, prefixlen) == 0);
static_assert(offsetof(st_prefix_key, port) == 4);
static_assert(offsetof(st_prefix_key, family) == 6);
static_assert(offsetof(st_prefix_key, addr) == 8);
static_assert(ST_CNT_IPV6_EXT_SKIPPED == 11 && ST_CNT_IPV6_FRAGMENT == 12 && ST_CNT_VLAN_TOO_DEEP == 13 &&
              ST_CNT_PREFIX_MATCHED == 14 && ST_CNT_WAKEUPS == 15);
static_assert(ST_CNT_EGRESS_SEEN == 16 && ST_CNT_EGRESS_MATCHED == 17 && ST_CNT_EGRESS_SAMPLED_OUT == 18 &&
              ST_CNT_EGRESS_COPIED == 19 && ST_CNT_EGRESS_COPIED_BYTES == 20);
static_assert(ST_RULE_F_HAS_PREFIX == 0x1 && ST_RULE_F_COMPARE == 0x2);
static_assert(ST_DIR_TO_SERVER == 0 && ST_DIR_FROM_SERVER == 1);
static_assert(ST_CNT_NO_RING == 21);
static_assert(ST_CNT_TLS_SET_FD == 22 && ST_CNT_TLS_NOT_TCP == 23 && ST_CNT_TLS_MATCHED == 24 &&
              ST_CNT_TLS_SAMPLED_OUT == 25 && ST_CNT_TLS_CONNS_FULL == 26 && ST_CNT_TLS_COPIED == 27 &&
              ST_CNT_TLS_COPIED_BYTES == 28 && ST_CNT_TLS_READ_FAULT == 29 && ST_CNT_TLS_CALLS_FULL == 30 &&
              ST_CNT_TLS_FREED == 31);
static_assert(ST_SRC_WIRE == 0 && ST_SRC_TLS == 1);
static_assert(ST_CNT_MAX == 32, "counter indices are ABI: append only");
// Records carry the TCP flag byte as is; flow::Segment names the same bits.
static_assert(ST_TCP_FIN == shadowtap::flow::kTcpFin && ST_TCP_SYN == shadowtap::flow::kTcpSyn &&
              ST_TCP_RST == shadowtap::flow::kTcpRst && ST_TCP_ACK == shadowtap::flow::kTcpAck);
