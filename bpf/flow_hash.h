/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Symmetric, seeded connection hash used for per-connection sampling.
 *
 * Both directions of a connection must give the same value, so that a sampled
 * connection is mirrored whole whichever side's packets we see. The hash is
 * defined exactly (userspace tests reimplement it):
 *
 *   endpoint   = (w0, w1, w2, w3, port) where w0..w3 are the 16 address bytes
 *                read as four big-endian 32-bit numbers (IPv4: w0 = the address,
 *                w1..w3 = 0) and port is the port in host order.
 *   lo, hi     = the two endpoints ordered lexicographically by (w0..w3, port).
 *   k[0..8]    = lo.w0..w3, hi.w0..w3, (lo.port << 16) | hi.port
 *   hash       = MurmurHash3_x86_32 of the 36 bytes k[0..8] stored little-endian
 *                (i.e. the block values are k[i]), seed = st_hash_seed.
 *
 * A connection is sampled when hash % ST_SAMPLE_SCALE < rule.sample_bp.
 */
#ifndef SHADOWTAP_BPF_FLOW_HASH_H
#define SHADOWTAP_BPF_FLOW_HASH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

#include "packet.h"

static __always_inline __u32 st_rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 st_murmur_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = st_rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = st_rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 st_murmur_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* 1 if endpoint (a, ap) orders before (b, bp); addresses as host-order words. */
static __always_inline int st_endpoint_less(const __u32 *a, __u32 ap, const __u32 *b, __u32 bp)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (a[i] != b[i])
			return a[i] < b[i];
	}
	return ap < bp;
}

static __always_inline __u32 st_flow_hash(const struct st_packet *p, __u32 seed)
{
	__u32 s[4], d[4], sp, dp;
	const __u32 *lo, *hi;
	__u32 lo_port, hi_port;
	__u32 h = seed;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		s[i] = bpf_ntohl(p->saddr[i]);
		d[i] = bpf_ntohl(p->daddr[i]);
	}
	sp = bpf_ntohs(p->sport);
	dp = bpf_ntohs(p->dport);

	if (st_endpoint_less(s, sp, d, dp)) {
		lo = s;
		lo_port = sp;
		hi = d;
		hi_port = dp;
	} else {
		lo = d;
		lo_port = dp;
		hi = s;
		hi_port = sp;
	}

#pragma unroll
	for (int i = 0; i < 4; i++)
		h = st_murmur_mix(h, lo[i]);
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = st_murmur_mix(h, hi[i]);
	h = st_murmur_mix(h, (lo_port << 16) | hi_port);
	return st_murmur_final(h, 36);
}

#endif /* SHADOWTAP_BPF_FLOW_HASH_H */
