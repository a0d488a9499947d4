/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TC ingress program, attached as a tcx link (6.6+) or a cls_bpf filter in
 * direct-action mode: copies TCP segments that match a rule, for a hash-sampled
 * share of connections, into the st_events ring buffer (capture_common.h). The
 * verdict is always TC_ACT_UNSPEC (TCX_NEXT) so that the programs and filters
 * after ours still run and the packet's fate is whatever it would have been
 * without us.
 */
#include "ctx_tc.h"
#include "capture_common.h"

SEC("tc")
int st_capture_tc(struct __sk_buff *skb)
{
	st_capture(skb);
	return ST_VERDICT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
