/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Packet context of the XDP program, for parse.h and capture_common.h.
 * bpf_xdp_load_bytes/bpf_xdp_get_buff_len (5.18+) cover multi-buffer frames too.
 */
#ifndef SHADOWTAP_BPF_CTX_XDP_H
#define SHADOWTAP_BPF_CTX_XDP_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define ST_CTX struct xdp_md
/* Always pass: under libxdp's dispatcher XDP_PASS also lets the next program run. */
#define ST_VERDICT XDP_PASS

static __always_inline int st_ctx_load(ST_CTX *ctx, __u32 off, void *dst, __u32 n)
{
	return bpf_xdp_load_bytes(ctx, off, dst, n);
}

static __always_inline __u32 st_ctx_len(ST_CTX *ctx)
{
	return (__u32)bpf_xdp_get_buff_len(ctx);
}

static __always_inline __u32 st_ctx_ifindex(ST_CTX *ctx)
{
	return ctx->ingress_ifindex;
}

#endif /* SHADOWTAP_BPF_CTX_XDP_H */
