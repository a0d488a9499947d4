/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TC ingress program (clsact, direct action): copies TCP segments of ports that
 * have a rule, for a hash-sampled share of connections, into the st_events ring
 * buffer. The packet is only ever read: no writes, no bpf_skb_pull_data(), and the
 * verdict is always TC_ACT_UNSPEC so that the filters after ours still run and
 * the packet's fate is whatever it would have been without us.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"
#include "flow_hash.h"
#include "maps.h"
#include "parse.h"

/* Set through the skeleton's rodata before load. */
const volatile __u32 st_hash_seed = 0;

/*
 * Ring buffer submit flags. 0 lets the kernel decide: it wakes the consumer only
 * when the consumer has already caught up to the record being committed
 * (bpf_ringbuf_commit), so a busy consumer that is still draining gets no
 * wakeups at all and an idle one gets one per burst. BPF_RB_NO_WAKEUP would need a
 * second, timer-driven wakeup path in the agent for no real gain.
 */
#define ST_SUBMIT_FLAGS 0

/*
 * One record with a class_size payload area (class_size is a constant after
 * inlining, as bpf_ringbuf_reserve requires). Returns the payload bytes stored,
 * or -1 when the record was lost.
 */
static __always_inline int st_emit_record(struct __sk_buff *skb, const struct st_segment *tmpl,
					  __u32 payload_off, __u32 chunk_off, __u32 cap,
					  const __u32 class_size)
{
	struct st_segment *rec;

	rec = bpf_ringbuf_reserve(&st_events, sizeof(*rec) + class_size, 0);
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
		 * Restate the caller's bound on a 64-bit copy that the compiler cannot
		 * fold into an earlier 32-bit compare, so the verifier sees
		 * 1 <= len <= class_size on the register passed to the helper.
		 */
		__u64 len = cap;

		barrier_var(len);
		if (len > class_size)
			len = class_size;
		if (len == 0)
			len = 1;
		cap = len;
		if (bpf_skb_load_bytes(skb, payload_off + chunk_off, (void *)(rec + 1), len) < 0) {
			/* Cannot happen while payload_len is bounded by skb->len; never submit junk. */
			bpf_ringbuf_discard(rec, 0);
			st_count(ST_CNT_MALFORMED, 1);
			return -1;
		}
		rec->cap_len = cap;
	}
	bpf_ringbuf_submit(rec, ST_SUBMIT_FLAGS);
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
__noinline int st_emit_chunk(struct __sk_buff *skb, const struct st_segment *tmpl, __u32 payload_off,
			     __u32 chunk_off, __u32 cap)
{
	if (!skb || !tmpl)
		return -1;
	if (cap > ST_MAX_CHUNK)
		cap = ST_MAX_CHUNK;
	if (cap == 0)
		return st_emit_record(skb, tmpl, payload_off, chunk_off, 0, 0);
	if (cap <= ST_CLASS_0)
		return st_emit_record(skb, tmpl, payload_off, chunk_off, cap, ST_CLASS_0);
	if (cap <= ST_CLASS_1)
		return st_emit_record(skb, tmpl, payload_off, chunk_off, cap, ST_CLASS_1);
	if (cap <= ST_CLASS_2)
		return st_emit_record(skb, tmpl, payload_off, chunk_off, cap, ST_CLASS_2);
	return st_emit_record(skb, tmpl, payload_off, chunk_off, cap, ST_CLASS_3);
}

static __always_inline void st_fill_template(struct st_segment *t, const struct st_packet *p,
					     const struct __sk_buff *skb, __u32 rule_id)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(t->saddr, p->saddr, sizeof(t->saddr));
	__builtin_memcpy(t->daddr, p->daddr, sizeof(t->daddr));
	t->sport = p->sport;
	t->dport = p->dport;
	t->seq = p->seq;
	t->ack = p->ack;
	t->ifindex = skb->ifindex;
	t->rule_id = rule_id;
	t->payload_len = p->payload_len;
	t->family = p->family;
	t->tcp_flags = p->tcp_flags;
	t->abi_version = SHADOWTAP_ABI_VERSION;
}

/*
 * Copy one segment as 1..ST_MAX_CHUNKS records. Segments without payload still
 * produce one record (cap_len 0) so that SYN/FIN/RST reach the agent.
 */
static __always_inline void st_copy_segment(struct __sk_buff *skb, const struct st_packet *p,
					    __u32 rule_id)
{
	struct st_segment tmpl;
	__u32 copy_len = p->payload_len;
	__u64 bytes = 0;
	int lost = 0;

	st_fill_template(&tmpl, p, skb, rule_id);

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
		r = st_emit_chunk(skb, &tmpl, p->payload_off, chunk_off, cap);
		if (r < 0)
			lost = 1;
		else
			bytes += r;
	}

	if (!lost)
		st_count(ST_CNT_COPIED, 1);
	if (bytes)
		st_count(ST_CNT_COPIED_BYTES, bytes);
}

/* Global for the same reason as st_emit_chunk: parse paths stay out of the copy paths. */
__noinline int st_parse_frame(struct __sk_buff *skb, struct st_packet *p)
{
	if (!skb || !p)
		return ST_CNT_MALFORMED;
	return st_parse_packet(skb, p);
}

SEC("tc")
int st_capture_tc(struct __sk_buff *skb)
{
	struct st_packet pkt = {};
	struct st_rule *rule;
	__u32 port;
	int r;

	st_count(ST_CNT_SEEN, 1);

	r = st_parse_frame(skb, &pkt);
	if (r != ST_PARSE_OK) {
		st_count(r, 1);
		return TC_ACT_UNSPEC;
	}

	port = bpf_ntohs(pkt.dport);
	rule = bpf_map_lookup_elem(&st_rules, &port);
	if (!rule || rule->rule_id == 0)
		return TC_ACT_UNSPEC;
	st_count(ST_CNT_MATCHED, 1);

	if (st_flow_hash(&pkt, st_hash_seed) % ST_SAMPLE_SCALE >= rule->sample_bp) {
		st_count(ST_CNT_SAMPLED_OUT, 1);
		return TC_ACT_UNSPEC;
	}

	st_copy_segment(skb, &pkt, rule->rule_id);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
