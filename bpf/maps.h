/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps of the capture programs. Names and value types are the ABI in
 * include/shadowtap/capture_abi.h. The TC and the XDP object both define them
 * identically, so the agent can create them once and share them between objects
 * (bpf_map__reuse_fd).
 */
#ifndef SHADOWTAP_BPF_MAPS_H
#define SHADOWTAP_BPF_MAPS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"

/* Default ring size; userspace may resize with bpf_map__set_max_entries() before load. */
#define ST_EVENTS_DEFAULT_BYTES (16u << 20)

/*
 * Key: destination port in host order. The port-only (fallback) rule, and the
 * flag that says whether st_prefix_rules has narrowed rules for the port: ports
 * without one never pay for the trie lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct st_rule);
} st_rules SEC(".maps");

/* Rules narrowed by destination prefix; the longest prefix wins (see st_prefix_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, ST_MAX_PREFIX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct st_prefix_key);
	__type(value, struct st_rule);
} st_prefix_rules SEC(".maps");

struct st_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ST_EVENTS_DEFAULT_BYTES);
};

/* Worker 0's ring buffer, and the only one with one worker. */
struct st_ring st_events SEC(".maps");

/*
 * The workers' ring buffers (ABI 4), indexed by worker: a connection's records,
 * both directions, all go to the ring of st_worker_of(its flow hash). Slot 0 is
 * st_events; the agent creates the others (same type, its chosen size) and puts
 * them in before it attaches. A slot left empty loses its records, counted as
 * NO_RING.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, ST_MAX_WORKERS);
	__type(key, __u32);
	__array(values, struct st_ring);
} st_rings SEC(".maps") = {
	.values = { [0] = &st_events },
};

/* Per-CPU so the hot path needs no atomics; userspace sums over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} st_counters SEC(".maps");

static __always_inline void st_count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&st_counters, &idx);

	if (v)
		*v += n;
}

#endif /* SHADOWTAP_BPF_MAPS_H */
