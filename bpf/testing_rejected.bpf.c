/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test helper, never shipped: a TC program every verifier must reject (the copy
 * length is the packet's, unbounded, into an 8-byte stack buffer). It proves
 * that a rejected load is reported as a verifier rejection with the verifier's
 * own last lines, not as missing privileges.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int st_testing_rejected(struct __sk_buff *skb)
{
	char buf[8];

	if (bpf_skb_load_bytes(skb, 0, buf, skb->len) < 0)
		return TC_ACT_UNSPEC;
	return buf[0] ? TC_ACT_UNSPEC : TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
