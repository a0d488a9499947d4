/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The capture logic shared by the TC/tcx and the XDP program: parse, match a
 * rule, sample per connection, copy the segment into the ring buffer in chunks.
 * The including program first includes its context header (ctx_tc.h or
 * ctx_xdp.h); its entry point calls st_capture() and returns ST_VERDICT.
 *
 * The packet is only ever read: no writes, no bpf_skb_pull_data(), no verdict
 * that ends anyone's chain.
 */
#ifndef SHADOWTAP_BPF_CAPTURE_COMMON_H
#define SHADOWTAP_BPF_CAPTURE_COMMON_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"
#include "flow_hash.h"
#include "maps.h"
#include "parse.h"

/* st_emit_record bounds the copy length with a mask: every class must be a power of two. */
#define ST_POW2(x) (((x) & ((x) - 1)) == 0)
_Static_assert(ST_POW2(ST_CLASS_0) && ST_POW2(ST_CLASS_1) && ST_POW2(ST_CLASS_2) && ST_POW2(ST_CLASS_3),
	       "ST_CLASS_* must be powers of two");

/* Set through the skeleton's rodata before load. */
const volatile __u32 st_hash_seed = 0;
/* How many workers (ring buffers in st_rings) the agent reads; 1: st_events only. */
const volatile __u32 st_workers = 1;

/* The template of a segment's records and the worker whose ring they go to. */
struct st_emit {
	struct st_segment seg;
	__u32 worker;
};

/* The worker of a connection with symmetric flow hash `hash` (capture_abi.h). */
static __always_inline __u32 st_worker_of(__u32 hash)
{
	if (st_workers <= 1)
		return 0;
	return (__u32)(((__u64)(__u32)(hash * ST_WORKER_MULTIPLIER) * st_workers) >> 32);
}

/*
 * Adaptive wakeups. 0: let the kernel decide (it wakes the consumer whenever the
 * consumer has caught up, which is one wakeup per record at low rates). Otherwise
 * records are committed with BPF_RB_NO_WAKEUP while fewer than st_wakeup_bytes
 * are waiting, and with BPF_RB_FORCE_WAKEUP once the ring holds more; the agent
 * polls on a short timer, so a quiet ring waits at most one poll interval.
 */
const volatile __u64 st_wakeup_bytes = 0;

static __always_inline __u64 st_submit_flags(void *ring)
{
	if (st_wakeup_bytes == 0)
		return 0;
	if (bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) < st_wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	st_count(ST_CNT_WAKEUPS, 1);
	return BPF_RB_FORCE_WAKEUP;
}

/*
 * One record with a class_size payload area (class_size is a constant after
 * inlining, as bpf_ringbuf_reserve requires). Returns the payload bytes stored,
 * or -1 when the record was lost.
 */
static __always_inline int st_emit_record(ST_CTX *ctx, const struct st_emit *e, __u32 payload_off,
					  __u32 chunk_off, __u32 cap, const __u32 class_size)
{
	const struct st_segment *tmpl = &e->seg;
	struct st_segment *rec;
	__u32 worker = e->worker;
	void *ring;

	ring = bpf_map_lookup_elem(&st_rings, &worker);
	if (!ring) {
		st_count(ST_CNT_NO_RING, 1);
		return -1;
	}
	rec = bpf_ringbuf_reserve(ring, sizeof(*rec) + class_size, 0);
	if (!rec) {
		st_count(ST_CNT_RINGBUF_FULL, 1);
		return -1;
	}
	*rec = *tmpl;
	rec->seq = tmpl->seq + chunk_off;
	rec->chunk_offset = chunk_off;
	rec->cap_len = 0;
	if (class_size > 0 && cap > 0) {
		/*
		 * The caller guarantees 1 <= cap <= class_size, and every class is a
		 * power of two, so ((cap - 1) & (class_size - 1)) + 1 == cap. Written
		 * this way the bound is proven by arithmetic every verifier tracks
		 * (an AND with a constant, then +1), not by branches: 6.1's verifier
		 * lost `if (len == 0) len = 1` after clang's rewrite of it and
		 * refused the program ("R3 min value is outside of the allowed
		 * memory range"). barrier_var keeps clang from undoing the mask.
		 */
		__u64 len = cap;

		barrier_var(len);
		len = ((len - 1) & (class_size - 1)) + 1;
		cap = len;
		if (st_ctx_load(ctx, payload_off + chunk_off, (void *)(rec + 1), len) < 0) {
			/* Cannot happen while payload_len is bounded by the frame; never submit junk. */
			bpf_ringbuf_discard(rec, 0);
			st_count(ST_CNT_MALFORMED, 1);
			return -1;
		}
		rec->cap_len = cap;
	}
	bpf_ringbuf_submit(rec, st_submit_flags(ring));
	return class_size > 0 ? (int)cap : 0;
}

/*
 * Smallest fixed reservation class that holds cap bytes (cap <= ST_MAX_CHUNK).
 *
 * A global (non-inlined) function: the verifier checks it once, on its own, with
 * arbitrary scalar arguments, instead of once per chunk per parse path of the
 * caller. Keeping parsing and emitting apart like this is what keeps the program
 * far below the verifier's complexity limit.
 */
__noinline int st_emit_chunk(ST_CTX *ctx, const struct st_emit *tmpl, __u32 payload_off, __u32 chunk_off,
			     __u32 cap)
{
	if (!ctx || !tmpl)
		return -1;
	if (cap > ST_MAX_CHUNK)
		cap = ST_MAX_CHUNK;
	if (cap == 0)
		return st_emit_record(ctx, tmpl, payload_off, chunk_off, 0, 0);
	if (cap <= ST_CLASS_0)
		return st_emit_record(ctx, tmpl, payload_off, chunk_off, cap, ST_CLASS_0);
	if (cap <= ST_CLASS_1)
		return st_emit_record(ctx, tmpl, payload_off, chunk_off, cap, ST_CLASS_1);
	if (cap <= ST_CLASS_2)
		return st_emit_record(ctx, tmpl, payload_off, chunk_off, cap, ST_CLASS_2);
	return st_emit_record(ctx, tmpl, payload_off, chunk_off, cap, ST_CLASS_3);
}

static __always_inline void st_fill_template(struct st_segment *t, const struct st_packet *p, ST_CTX *ctx,
					     __u32 rule_id, const int egress)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(t->saddr, p->saddr, sizeof(t->saddr));
	__builtin_memcpy(t->daddr, p->daddr, sizeof(t->daddr));
	t->sport = p->sport;
	t->dport = p->dport;
	t->seq = p->seq;
	t->ack = p->ack;
	t->ifindex = st_ctx_ifindex(ctx);
	t->rule_id = rule_id;
	t->payload_len = p->payload_len;
	t->family = p->family;
	t->tcp_flags = p->tcp_flags;
	t->abi_version = SHADOWTAP_ABI_VERSION;
	t->direction = egress ? ST_DIR_FROM_SERVER : ST_DIR_TO_SERVER;
}

/*
 * Copy one segment as 1..ST_MAX_CHUNKS records. Segments without payload still
 * produce one record (cap_len 0) so that SYN/FIN/RST reach the agent. egress is
 * a constant after inlining: it only picks the direction and the counters.
 */
static __always_inline void st_copy_segment(ST_CTX *ctx, const struct st_packet *p, __u32 rule_id,
					    __u32 worker, const int egress)
{
	struct st_emit tmpl;
	__u32 copy_len = p->payload_len;
	__u64 bytes = 0;
	int lost = 0;

	st_fill_template(&tmpl.seg, p, ctx, rule_id, egress);
	tmpl.worker = worker;

	if (copy_len > ST_MAX_CHUNKS * ST_MAX_CHUNK) {
		copy_len = ST_MAX_CHUNKS * ST_MAX_CHUNK;
		st_count(ST_CNT_TRUNCATED, 1);
		lost = 1;
	}

	for (__u32 i = 0; i < ST_MAX_CHUNKS; i++) {
		__u32 chunk_off = i * ST_MAX_CHUNK;
		__u32 cap;
		int r;

		if (i > 0 && chunk_off >= copy_len)
			break;
		cap = copy_len - chunk_off;
		if (cap > ST_MAX_CHUNK)
			cap = ST_MAX_CHUNK;
		r = st_emit_chunk(ctx, &tmpl, p->payload_off, chunk_off, cap);
		if (r < 0)
			lost = 1;
		else
			bytes += r;
	}

	if (!lost)
		st_count(egress ? ST_CNT_EGRESS_COPIED : ST_CNT_COPIED, 1);
	if (bytes)
		st_count(egress ? ST_CNT_EGRESS_COPIED_BYTES : ST_CNT_COPIED_BYTES, bytes);
}

/* Global for the same reason as st_emit_chunk: parse paths stay out of the copy paths. */
__noinline int st_parse_frame(ST_CTX *ctx, struct st_packet *p)
{
	if (!ctx || !p)
		return ST_CNT_MALFORMED;
	return st_parse_packet(ctx, p);
}

/*
 * The rule for a parsed segment, or NULL, by the service side's port and
 * address: the destination for requests (ingress), the source for responses
 * (egress; a constant after inlining, so the ingress code is what it was). A
 * rule narrowed to a prefix (longest prefix first) wins over the port-only
 * rule, which is the fallback.
 */
static __always_inline const struct st_rule *st_match_rule(const struct st_packet *p, const int egress)
{
	struct st_prefix_key key;
	const struct st_rule *rule, *narrowed;
	__u32 port = bpf_ntohs(egress ? p->sport : p->dport);

	rule = bpf_map_lookup_elem(&st_rules, &port);
	if (!rule)
		return NULL;
	if (rule->flags & ST_RULE_F_HAS_PREFIX) {
		__builtin_memset(&key, 0, sizeof(key));
		key.prefixlen = ST_PREFIX_KEY_FIXED_BITS + 128;
		key.port = egress ? p->sport : p->dport;
		key.family = p->family;
		if (egress)
			__builtin_memcpy(key.addr, p->saddr, sizeof(key.addr));
		else
			__builtin_memcpy(key.addr, p->daddr, sizeof(key.addr));
		narrowed = bpf_map_lookup_elem(&st_prefix_rules, &key);
		if (narrowed && narrowed->rule_id != 0) {
			st_count(ST_CNT_PREFIX_MATCHED, 1);
			return narrowed;
		}
	}
	return rule->rule_id != 0 ? rule : NULL;
}

/*
 * The connection's symmetric flow hash, when something needs it: sampling
 * strictly between 0 and 100 %, or more than one worker. Otherwise 0 (and
 * unused), so the common single-worker, unsampled path does not pay for it.
 */
static __always_inline __u32 st_hash_if_needed(const struct st_packet *p, const struct st_rule *rule)
{
	__u32 sample_bp = rule->sample_bp;

	if (st_workers > 1 || (sample_bp != 0 && sample_bp < ST_SAMPLE_SCALE))
		return st_flow_hash(p, st_hash_seed);
	return 0;
}

/* Whether the connection is in the rule's sample; the hash is symmetric, so both directions agree. */
static __always_inline int st_sampled(const struct st_rule *rule, __u32 hash)
{
	/* 0 % and 100 % need no hash: the outcome is the same for every connection. */
	__u32 sample_bp = rule->sample_bp;

	return sample_bp >= ST_SAMPLE_SCALE || (sample_bp != 0 && hash % ST_SAMPLE_SCALE < sample_bp);
}

static __always_inline void st_capture(ST_CTX *ctx)
{
	struct st_packet pkt = {};
	const struct st_rule *rule;
	__u32 hash;
	int r;

	st_count(ST_CNT_SEEN, 1);

	r = st_parse_frame(ctx, &pkt);
	if (r != ST_PARSE_OK) {
		st_count(r, 1);
		return;
	}

	rule = st_match_rule(&pkt, 0);
	if (!rule)
		return;
	st_count(ST_CNT_MATCHED, 1);

	hash = st_hash_if_needed(&pkt, rule);
	if (!st_sampled(rule, hash)) {
		st_count(ST_CNT_SAMPLED_OUT, 1);
		return;
	}

	st_copy_segment(ctx, &pkt, rule->rule_id, st_worker_of(hash), 0);
}

/*
 * Compare mode: the service's responses, i.e. segments leaving from a rule's
 * port (and address, for a narrowed rule) whose rule has ST_RULE_F_COMPARE.
 * Attached to egress hooks only while some rule compares, so the ingress
 * program above is not touched by it. A prefix-narrowed match still counts
 * PREFIX_MATCHED (it says which trie answered, whichever direction asked).
 */
static __always_inline void st_capture_egress(ST_CTX *ctx)
{
	struct st_packet pkt = {};
	const struct st_rule *rule;
	__u32 hash;

	st_count(ST_CNT_EGRESS_SEEN, 1);

	/* Parse failures are the ingress side's diagnostics; here they are just not ours. */
	if (st_parse_frame(ctx, &pkt) != ST_PARSE_OK)
		return;

	rule = st_match_rule(&pkt, 1);
	if (!rule || !(rule->flags & ST_RULE_F_COMPARE))
		return;
	st_count(ST_CNT_EGRESS_MATCHED, 1);

	hash = st_hash_if_needed(&pkt, rule);
	if (!st_sampled(rule, hash)) {
		st_count(ST_CNT_EGRESS_SAMPLED_OUT, 1);
		return;
	}

	st_copy_segment(ctx, &pkt, rule->rule_id, st_worker_of(hash), 1);
}

#endif /* SHADOWTAP_BPF_CAPTURE_COMMON_H */
