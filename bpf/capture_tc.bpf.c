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

/*
 * The egress twin (compare mode, named ST_PROG_TC_EGRESS_NAME): copies the
 * responses of sampled connections of rules with ST_RULE_F_COMPARE. Attached to
 * egress hooks only while some rule compares. Same verdict promise.
 */
SEC("tc")
int st_capture_egr(struct __sk_buff *skb)
{
	st_capture_egress(skb);
	return ST_VERDICT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
