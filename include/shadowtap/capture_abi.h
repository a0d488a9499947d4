/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one contract between the kernel program (bpf/) and the agent (agent/capture).
 *
 * Treat it as a versioned ABI: never change an offset of an existing field; add
 * fields only at the end of a struct and bump SHADOWTAP_ABI_VERSION. The C++ side
 * static_asserts the layout (agent/capture/abi_check.h).
 *
 * Plain C, fixed-width kernel types only, so that clang -target bpf and g++ both
 * include it unchanged.
 */
#ifndef SHADOWTAP_CAPTURE_ABI_H
#define SHADOWTAP_CAPTURE_ABI_H

#include <linux/types.h>

/*
 * 1: first version.
 * 2: st_rule.flags appended; st_prefix_rules map; counters IPV6_FRAGMENT,
 *    VLAN_TOO_DEEP, PREFIX_MATCHED, WAKEUPS appended; XDP program name.
 * 3: st_segment.direction (in what was tail padding: size unchanged);
 *    ST_RULE_F_COMPARE; the egress program; EGRESS_* counters appended.
 * 4: workers: the st_rings map of ring buffers (slot 0 is st_events), the
 *    program's st_workers setting, the NO_RING counter appended.
 * 5: TLS plaintext: st_segment.source (the former pad0: size unchanged); the
 *    uprobe programs of capture_tls.bpf.c; TLS_* counters appended.
 */
#define SHADOWTAP_ABI_VERSION 5

/* Map names, as libbpf exposes them through the skeleton. */
#define ST_MAP_RULES "st_rules"
#define ST_MAP_EVENTS "st_events"
#define ST_MAP_COUNTERS "st_counters"
#define ST_MAP_PREFIX_RULES "st_prefix_rules"
#define ST_MAP_RINGS "st_rings"

/*
 * Workers (ABI 4): the most ring buffers, one per worker, the kernel chooses
 * from. A connection goes to worker
 *   ((hash * 0x9E3779B1) mod 2^32 * workers) >> 32
 * where hash is the symmetric flow hash of flow_hash.h: both directions of a
 * connection meet in one worker, and the choice is independent enough of the
 * sampling (hash % 10000) that every worker gets its share of a sample.
 */
#define ST_MAX_WORKERS 64
#define ST_WORKER_MULTIPLIER 0x9E3779B1u

/* Name of the TC program; a stale cls_bpf filter of ours is recognised by it. */
#define ST_PROG_TC_NAME "st_capture_tc"
/* Name of the XDP program; a stale libxdp attachment of ours is recognised by it. */
#define ST_PROG_XDP_NAME "st_capture_xdp"
/*
 * Name of the TC egress program (compare mode: the service's responses); a stale
 * cls_bpf filter of ours on a clsact egress hook is recognised by it. (ABI 3)
 */
#define ST_PROG_TC_EGRESS_NAME "st_capture_egr"

/*
 * Payload is copied with fixed-size ring buffer reservations: the smallest class
 * that holds the payload is used. A payload larger than the largest class is split
 * into several records, each carrying its own offset into the segment's payload.
 */
#define ST_CLASS_0 256
#define ST_CLASS_1 2048
#define ST_CLASS_2 16384
#define ST_CLASS_3 65536
#define ST_MAX_CHUNK ST_CLASS_3
/* A segment bigger than this many chunks is truncated (and counted). 4 x 64 KiB
 * covers the largest GSO skb of a non-BIG-TCP device with room to spare. */
#define ST_MAX_CHUNKS 4

/* Rules are looked up by destination port in an array of this many entries. */
#define ST_MAX_PORTS 65536

/* Sampling thresholds are in basis points: 10000 = 100 %. */
#define ST_SAMPLE_SCALE 10000

/* st_rule.flags */
#define ST_RULE_F_HAS_PREFIX 0x1 /* st_prefix_rules holds narrowed rules for this port */
/*
 * Compare mode (ABI 3): the egress program also copies this rule's responses,
 * i.e. segments whose SOURCE port (and source address, for a narrowed rule) is
 * the rule's. Meaningful in both maps: on the port-only rule in st_rules and on
 * each narrowed rule in st_prefix_rules. The ingress program ignores it.
 */
#define ST_RULE_F_COMPARE 0x2

/*
 * Value of both rule maps. In st_rules (an array keyed by the destination port in
 * host order, as __u32) it is the port-only rule, the fallback; rule_id 0 there
 * means "no port-only rule". ST_RULE_F_HAS_PREFIX is only meaningful in st_rules.
 *
 * The egress program looks the same rule up by the SOURCE port and address.
 */
struct st_rule {
	__u32 rule_id; /* 0 = no rule */
	__u32 sample_bp; /* connections with hash % 10000 < sample_bp are mirrored */
	__u32 flags; /* ST_RULE_F_* (ABI 2) */
};

/*
 * Key of st_prefix_rules, an LPM trie: rules narrowed to a destination prefix.
 * prefixlen counts bits from `port` on: 32 (port, family, pad) + the address
 * prefix length. The kernel looks up with the full 32 + 128 bits, so the longest
 * (most specific) prefix for the port and family wins. IPv4 addresses occupy the
 * first 4 bytes of addr, the rest is zero.
 */
#define ST_PREFIX_KEY_FIXED_BITS 32
#define ST_MAX_PREFIX_RULES 4096
struct st_prefix_key {
	__u32 prefixlen;
	__be16 port; /* network order, as in the TCP header */
	__u8 family; /* ST_FAMILY_IPV4 or ST_FAMILY_IPV6 */
	__u8 pad;
	__u8 addr[16];
};

/* Address families as carried in st_segment.family. */
#define ST_FAMILY_IPV4 4
#define ST_FAMILY_IPV6 6

/*
 * st_segment.source (ABI 5): where the bytes come from. A TLS record carries
 * the plaintext of one SSL_read/SSL_write call of a probed process (cut into
 * chunks like a segment), with the connection's 4-tuple from its socket; its
 * seq is not TCP's but the offset of the record's first byte in that
 * direction's plaintext stream plus one: a zero-length SYN record at seq 0
 * opens the stream (SSL_set_fd) and a FIN record closes it (SSL_free), so a
 * lost record is a hole in the stream, as on the wire. ifindex and ack are 0.
 */
#define ST_SRC_WIRE 0
#define ST_SRC_TLS 1

/* Names of the TLS programs (ABI 5): uprobes (and uretprobes: *_ret) on libssl. */
#define ST_PROG_TLS_SET_FD "st_tls_set_fd"
#define ST_PROG_TLS_READ "st_tls_read"
#define ST_PROG_TLS_READ_EX "st_tls_read_ex"
#define ST_PROG_TLS_READ_RET "st_tls_read_ret"
#define ST_PROG_TLS_READ_EX_RET "st_tls_read_ex_ret"
#define ST_PROG_TLS_WRITE "st_tls_write"
#define ST_PROG_TLS_WRITE_EX "st_tls_write_ex"
#define ST_PROG_TLS_WRITE_RET "st_tls_write_ret"
#define ST_PROG_TLS_WRITE_EX_RET "st_tls_write_ex_ret"
#define ST_PROG_TLS_FREE "st_tls_free"

/* The most TLS connections (SSL objects of probed processes) followed at once. */
#define ST_MAX_TLS_CONNS 65536
/* The most SSL_read/SSL_write calls in flight at once (one per thread). */
#define ST_MAX_TLS_CALLS 16384

/* st_segment.direction (ABI 3) */
#define ST_DIR_TO_SERVER 0 /* ingress program: destination port is the rule's (requests) */
#define ST_DIR_FROM_SERVER 1 /* egress program: source port is the rule's (responses) */

/* TCP flags as in the TCP header's flag byte. */
#define ST_TCP_FIN 0x01
#define ST_TCP_SYN 0x02
#define ST_TCP_RST 0x04
#define ST_TCP_PSH 0x08
#define ST_TCP_ACK 0x10

/*
 * One ring buffer record: this header, followed by cap_len bytes of TCP payload
 * starting at payload offset chunk_offset. The record's reserved size is
 * sizeof(struct st_segment) + one of the ST_CLASS_* sizes; bytes past cap_len are
 * unspecified.
 *
 * Addresses and ports are in network byte order; IPv4 addresses occupy the first
 * 4 bytes of saddr/daddr and the rest is zero.
 */
struct st_segment {
	__u64 ts_ns; /* bpf_ktime_get_ns() at capture */
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 seq; /* sequence number of the segment's first payload byte (host order) */
	__u32 ack; /* host order */
	__u32 ifindex;
	__u32 rule_id;
	__u32 payload_len; /* TCP payload bytes of the whole segment */
	__u32 chunk_offset; /* offset of this record's first byte within that payload */
	__u32 cap_len; /* payload bytes in this record */
	__u8 family; /* ST_FAMILY_IPV4 or ST_FAMILY_IPV6 */
	__u8 tcp_flags;
	__u8 abi_version; /* SHADOWTAP_ABI_VERSION */
	__u8 source; /* ST_SRC_* (ABI 5; the former pad0) */
	__u8 direction; /* ST_DIR_* (ABI 3; occupies former tail padding) */
	__u8 pad1[3];
};

/* Per-CPU counters, the index into the st_counters array. Never reorder. */
enum st_counter {
	ST_CNT_SEEN = 0, /* every packet the program ran on */
	ST_CNT_NOT_IP, /* not IPv4/IPv6 (ARP, LLDP, ...) */
	ST_CNT_NOT_TCP, /* IP but not TCP */
	ST_CNT_MALFORMED, /* header truncated or inconsistent */
	ST_CNT_IP_FRAGMENT, /* IPv4 fragment (ABI 1 also counted IPv6 ones here): skipped */
	ST_CNT_MATCHED, /* TCP to a port with a rule */
	ST_CNT_SAMPLED_OUT, /* matched, but the connection is not in the sample */
	ST_CNT_COPIED, /* segments copied whole into the ring buffer */
	ST_CNT_COPIED_BYTES, /* payload bytes copied */
	ST_CNT_RINGBUF_FULL, /* records lost because the ring buffer was full */
	ST_CNT_TRUNCATED, /* segments longer than ST_MAX_CHUNKS * ST_MAX_CHUNK */
	ST_CNT_IPV6_EXT_SKIPPED, /* IPv6 extension chain too long or unsupported */
	ST_CNT_IPV6_FRAGMENT, /* IPv6 with a fragment header: skipped (ABI 2) */
	ST_CNT_VLAN_TOO_DEEP, /* more in-band VLAN tags than we step over (ABI 2) */
	ST_CNT_PREFIX_MATCHED, /* of MATCHED: by a prefix-narrowed rule (ABI 2) */
	ST_CNT_WAKEUPS, /* records submitted with a forced consumer wakeup (ABI 2) */
	/*
	 * The egress program (compare mode, ABI 3) counts only these; parse failures
	 * of egress packets are not counted by reason. RINGBUF_FULL and TRUNCATED are
	 * shared by both directions.
	 */
	ST_CNT_EGRESS_SEEN, /* every packet the egress program ran on */
	ST_CNT_EGRESS_MATCHED, /* TCP from a port (and address) with a compare rule */
	ST_CNT_EGRESS_SAMPLED_OUT, /* matched, but the connection is not in the sample */
	ST_CNT_EGRESS_COPIED, /* response segments copied whole into the ring buffer */
	ST_CNT_EGRESS_COPIED_BYTES, /* response payload bytes copied */
	ST_CNT_NO_RING, /* records lost: the worker's slot in st_rings was empty (ABI 4) */
	/* The TLS programs (ABI 5) count only these (and RINGBUF_FULL, TRUNCATED, NO_RING). */
	ST_CNT_TLS_SET_FD, /* SSL_set_fd calls seen */
	ST_CNT_TLS_NOT_TCP, /* ... on an fd that is not a TCP socket we can read */
	ST_CNT_TLS_MATCHED, /* ... on a socket whose local port (and address) has a rule */
	ST_CNT_TLS_SAMPLED_OUT, /* matched, but the connection is not in the sample */
	ST_CNT_TLS_CONNS_FULL, /* matched and sampled, but ST_MAX_TLS_CONNS are followed */
	ST_CNT_TLS_COPIED, /* SSL_read/SSL_write results copied whole */
	ST_CNT_TLS_COPIED_BYTES, /* plaintext bytes copied */
	ST_CNT_TLS_READ_FAULT, /* plaintext the kernel could not read from the process */
	ST_CNT_TLS_CALLS_FULL, /* calls not followed: ST_MAX_TLS_CALLS in flight */
	ST_CNT_TLS_FREED, /* followed connections ended by SSL_free */
	ST_CNT_MAX
};

#endif /* SHADOWTAP_CAPTURE_ABI_H */
