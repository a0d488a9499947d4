/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test helper, never shipped: the XDP twin of testing_noop_tc. Counts the frames
 * it sees and passes them; loaded through libxdp next to st_capture_xdp to prove
 * that both programs run on every frame.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} st_noop_xdp_hits SEC(".maps");

struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(st_testing_noop_xdp);

SEC("xdp")
int st_testing_noop_xdp(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *hits = bpf_map_lookup_elem(&st_noop_xdp_hits, &key);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
