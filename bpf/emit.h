/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Records into the workers' ring buffers, shared by every capture program
 * (packets: capture_common.h; TLS plaintext: capture_tls.bpf.c). The including
 * program first defines ST_CTX (its context type) and either st_ctx_load() (a
 * packet context) or ST_EMIT_LOAD(ctx, e, off, dst, len), the copy of len
 * bytes at offset off of the record's source into dst.
 */
#ifndef SHADOWTAP_BPF_EMIT_H
#define SHADOWTAP_BPF_EMIT_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"
#include "maps.h"

#ifndef ST_CTX
#error "define ST_CTX (include a ctx_*.h) before emit.h"
#endif
#ifndef ST_EMIT_LOAD
#define ST_EMIT_LOAD(ctx, e, off, dst, len) st_ctx_load((ctx), (off), (dst), (len))
#endif
/* What a failed copy counts: packets cannot fail (MALFORMED), the TLS program can. */
#ifndef ST_EMIT_LOAD_FAILED
#define ST_EMIT_LOAD_FAILED ST_CNT_MALFORMED
#endif

/* st_emit_record bounds the copy length with a mask: every class must be a power of two. */
#define ST_POW2(x) (((x) & ((x) - 1)) == 0)
_Static_assert(ST_POW2(ST_CLASS_0) && ST_POW2(ST_CLASS_1) && ST_POW2(ST_CLASS_2) && ST_POW2(ST_CLASS_3),
	       "ST_CLASS_* must be powers of two");

/* Set through the skeleton's rodata before load. */
const volatile __u32 st_hash_seed = 0;
/* How many workers (ring buffers in st_rings) the agent reads; 1: st_events only. */
const volatile __u32 st_workers = 1;

/*
 * The template of a segment's records and the worker whose ring they go to;
 * src is where the TLS program copies from (a user address), unused by the
 * packet programs.
 */
struct st_emit {
	struct st_segment seg;
	__u32 worker;
	__u64 src;
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
		if (ST_EMIT_LOAD(ctx, e, payload_off + chunk_off, (void *)(rec + 1), len) < 0) {
			/* Packets: cannot happen while payload_len is bounded by the frame; never submit junk. */
			bpf_ringbuf_discard(rec, 0);
			st_count(ST_EMIT_LOAD_FAILED, 1);
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

#endif /* SHADOWTAP_BPF_EMIT_H */
