/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Rule lookup and per-connection sampling, shared by every capture program.
 * Reads only an st_packet (packet.h), never a context. Uses the rodata
 * settings of emit.h (st_hash_seed, st_workers).
 */
#ifndef SHADOWTAP_BPF_RULES_H
#define SHADOWTAP_BPF_RULES_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"
#include "emit.h"
#include "flow_hash.h"
#include "maps.h"
#include "packet.h"

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

#endif /* SHADOWTAP_BPF_RULES_H */
