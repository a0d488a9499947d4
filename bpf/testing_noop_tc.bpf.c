/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test helper, never shipped: a TC program that only counts the packets it sees
 * and returns TC_ACT_UNSPEC. Attached behind (or in front of) st_capture_tc it
 * proves that our filter leaves the chain running and that a foreign filter on
 * the same hook survives our attach/detach.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} st_noop_hits SEC(".maps");

SEC("tc")
int st_testing_noop(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *hits = bpf_map_lookup_elem(&st_noop_hits, &key);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
