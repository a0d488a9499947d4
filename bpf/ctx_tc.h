/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Packet context of the TC/tcx program, for parse.h and capture_common.h. */
#ifndef SHADOWTAP_BPF_CTX_TC_H
#define SHADOWTAP_BPF_CTX_TC_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define ST_CTX struct __sk_buff
/* TC_ACT_UNSPEC (= TCX_NEXT): the next filter or tcx program runs, the packet goes on. */
#define ST_VERDICT TC_ACT_UNSPEC

static __always_inline int st_ctx_load(ST_CTX *ctx, __u32 off, void *dst, __u32 n)
{
	return bpf_skb_load_bytes(ctx, off, dst, n);
}

static __always_inline __u32 st_ctx_len(ST_CTX *ctx)
{
	return ctx->len;
}

static __always_inline __u32 st_ctx_ifindex(ST_CTX *ctx)
{
	return ctx->ifindex;
}

#endif /* SHADOWTAP_BPF_CTX_TC_H */
