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
#include "emit.h"
#include "maps.h"
#include "parse.h"
#include "rules.h"

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
