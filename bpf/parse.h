/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Bounds-checked header parsing, shared by the TC and the XDP program.
 *
 * The including program first includes its context header (ctx_tc.h or
 * ctx_xdp.h), which defines ST_CTX and st_ctx_load()/st_ctx_len()/st_ctx_ifindex().
 *
 * Headers are copied into stack buffers. When a header lies wholly in the
 * linear area (between ctx->data and ctx->data_end, which is where headers are
 * in practically every packet) the copy is a few direct loads; otherwise the
 * load-bytes helpers (bpf_skb_load_bytes, bpf_xdp_load_bytes) fetch it from the
 * frags (GRO/GSO skbs, multi-buffer XDP frames). Either way no
 * bpf_skb_pull_data() (which may reallocate the skb), never a write, and every
 * read is bounded by the frame length by construction.
 *
 * Every parse step returns either ST_PARSE_OK or the st_counter index that
 * explains why the packet is not ours; the caller bumps exactly that counter, so
 * each packet is accounted for once.
 */
#ifndef SHADOWTAP_BPF_PARSE_H
#define SHADOWTAP_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "shadowtap/capture_abi.h"
#include "packet.h"

#ifndef ST_CTX
#error "include ctx_tc.h or ctx_xdp.h before parse.h"
#endif

/* Not a counter: "parsing went on fine". */
#define ST_PARSE_OK ST_CNT_MAX

/* In-band 802.1Q / 802.1ad tags we step over (offloaded tags never appear in data). */
#define ST_MAX_VLAN_TAGS 2

/* IPv6 extension headers walked before giving up (ST_CNT_IPV6_EXT_SKIPPED). */
#define ST_MAX_IPV6_EXT 6

#define ST_ETH_P_8021Q 0x8100
#define ST_ETH_P_8021AD 0x88A8

#define ST_IPV4_HDR_MIN 20
#define ST_IPV6_HDR_LEN 40
#define ST_TCP_HDR_MIN 20
#define ST_IPV4_MF 0x2000
#define ST_IPV4_OFFSET_MASK 0x1fff

/* IPv6 next-header values not all UAPI headers name. */
#define ST_NEXTHDR_HOP 0
#define ST_NEXTHDR_ROUTING 43
#define ST_NEXTHDR_FRAGMENT 44
#define ST_NEXTHDR_AUTH 51
#define ST_NEXTHDR_DEST 60

/* Where the reader is in the frame. `end` is the frame length, the hard limit of every read. */
struct st_cursor {
	ST_CTX *ctx;
	__u32 off;
	__u32 end;
};


static __always_inline void st_cursor_init(struct st_cursor *c, ST_CTX *ctx)
{
	c->ctx = ctx;
	c->off = 0;
	c->end = st_ctx_len(ctx);
}

/*
 * Largest offset read through direct packet access; headers further in (long
 * IPv6 extension chains) take the helper. Bounds the variable offset for the
 * verifier, which wants packet pointer offsets below 64 KiB.
 */
#define ST_DIRECT_MAX_OFF 1024

/*
 * Copy n bytes at offset off into dst: direct loads when they lie in the linear
 * area, else the load-bytes helper. n must be a constant. The caller has checked
 * off + n against the frame length.
 */
static __always_inline int st_ctx_read(ST_CTX *ctx, __u32 off, void *dst, const __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 o = off;

	/* Keep the bound on the 64-bit register the pointer arithmetic uses. */
	barrier_var(o);
	if (o <= ST_DIRECT_MAX_OFF) {
		void *src = data + o;

		if (src + n <= data_end) {
			__builtin_memcpy(dst, src, n);
			return 0;
		}
	}
	return st_ctx_load(ctx, off, dst, n);
}

/* Copy n bytes at the cursor into dst and advance. n must be a constant. */
static __always_inline int st_cursor_pull(struct st_cursor *c, void *dst, const __u32 n)
{
	if (c->off > c->end || c->end - c->off < n)
		return -1;
	if (st_ctx_read(c->ctx, c->off, dst, n) < 0)
		return -1;
	c->off += n;
	return 0;
}

/* Advance by a computed length without reading; fails past the end. */
static __always_inline int st_cursor_skip(struct st_cursor *c, __u32 n)
{
	if (c->off > c->end || c->end - c->off < n)
		return -1;
	c->off += n;
	return 0;
}

/*
 * Ethernet plus up to ST_MAX_VLAN_TAGS in-band VLAN tags (802.1Q, or 802.1ad
 * outer + 802.1Q inner). Stores the inner EtherType (host order) in *proto; a
 * third tag gives ST_CNT_VLAN_TOO_DEEP.
 */
static __always_inline int st_parse_eth(struct st_cursor *c, __u16 *proto)
{
	struct ethhdr eth;
	__u16 type;

	if (st_cursor_pull(c, &eth, sizeof(eth)) < 0)
		return ST_CNT_MALFORMED;
	type = bpf_ntohs(eth.h_proto);

#pragma unroll
	for (int i = 0; i < ST_MAX_VLAN_TAGS; i++) {
		__be16 tag[2]; /* TCI, inner EtherType */

		if (type != ST_ETH_P_8021Q && type != ST_ETH_P_8021AD)
			break;
		if (st_cursor_pull(c, tag, sizeof(tag)) < 0)
			return ST_CNT_MALFORMED;
		type = bpf_ntohs(tag[1]);
	}
	if (type == ST_ETH_P_8021Q || type == ST_ETH_P_8021AD)
		return ST_CNT_VLAN_TOO_DEEP;
	*proto = type;
	return ST_PARSE_OK;
}

/*
 * IPv4 header with options. On success the cursor is at the L4 header,
 * *l4proto is the protocol and *ip_end the end of the IP datagram within the
 * frame (Ethernet padding excluded, never beyond the frame length).
 */
static __always_inline int st_parse_ipv4(struct st_cursor *c, struct st_packet *p, __u8 *l4proto,
					 __u32 *ip_end)
{
	__u8 h[ST_IPV4_HDR_MIN];
	__u32 start = c->off;
	__u32 hlen, tot_len, end;
	__u16 frag;

	if (st_cursor_pull(c, h, sizeof(h)) < 0)
		return ST_CNT_MALFORMED;
	if ((h[0] >> 4) != 4)
		return ST_CNT_MALFORMED;
	hlen = (__u32)(h[0] & 0x0f) * 4;
	if (hlen < ST_IPV4_HDR_MIN)
		return ST_CNT_MALFORMED;
	if (st_cursor_skip(c, hlen - ST_IPV4_HDR_MIN) < 0)
		return ST_CNT_MALFORMED;

	tot_len = ((__u32)h[2] << 8) | h[3];
	if (tot_len == 0) {
		/* BIG TCP / TSO-on-receive: the length lives only in skb->len. */
		end = c->end;
	} else {
		if (tot_len < hlen)
			return ST_CNT_MALFORMED;
		end = start + tot_len;
		if (end > c->end)
			end = c->end;
	}

	frag = ((__u16)h[6] << 8) | h[7];
	if (frag & (ST_IPV4_MF | ST_IPV4_OFFSET_MASK))
		return ST_CNT_IP_FRAGMENT;

	p->family = ST_FAMILY_IPV4;
	__builtin_memcpy(&p->saddr[0], &h[12], 4);
	__builtin_memcpy(&p->daddr[0], &h[16], 4);
	*l4proto = h[9];
	*ip_end = end;
	return ST_PARSE_OK;
}

/*
 * IPv6 header and a bounded walk over hop-by-hop, routing, destination-options
 * and AH extension headers. A fragment header ends parsing (ST_CNT_IPV6_FRAGMENT);
 * a chain longer than ST_MAX_IPV6_EXT or an extension we do not walk
 * (mobility, HIP, shim6) gives ST_CNT_IPV6_EXT_SKIPPED.
 */
static __always_inline int st_parse_ipv6(struct st_cursor *c, struct st_packet *p, __u8 *l4proto,
					 __u32 *ip_end)
{
	__u8 h[ST_IPV6_HDR_LEN];
	__u32 start = c->off;
	__u32 plen, end;
	__u8 nexthdr;

	if (st_cursor_pull(c, h, sizeof(h)) < 0)
		return ST_CNT_MALFORMED;
	if ((h[0] >> 4) != 6)
		return ST_CNT_MALFORMED;

	plen = ((__u32)h[4] << 8) | h[5];
	if (plen == 0) {
		/* Jumbogram or BIG TCP: the length lives only in skb->len. */
		end = c->end;
	} else {
		end = start + ST_IPV6_HDR_LEN + plen;
		if (end > c->end)
			end = c->end;
	}

	nexthdr = h[6];
#pragma unroll
	for (int i = 0; i < ST_MAX_IPV6_EXT; i++) {
		__u8 ext[2]; /* next header, length */
		__u32 ext_len;

		if (nexthdr != ST_NEXTHDR_HOP && nexthdr != ST_NEXTHDR_ROUTING &&
		    nexthdr != ST_NEXTHDR_DEST && nexthdr != ST_NEXTHDR_AUTH)
			break;
		if (c->off + sizeof(ext) > end || st_ctx_read(c->ctx, c->off, ext, sizeof(ext)) < 0)
			return ST_CNT_MALFORMED;
		if (nexthdr == ST_NEXTHDR_AUTH)
			ext_len = ((__u32)ext[1] + 2) * 4;
		else
			ext_len = ((__u32)ext[1] + 1) * 8;
		if (c->off + ext_len > end)
			return ST_CNT_MALFORMED;
		c->off += ext_len;
		nexthdr = ext[0];
	}

	switch (nexthdr) {
	case ST_NEXTHDR_FRAGMENT:
		return ST_CNT_IPV6_FRAGMENT;
	case ST_NEXTHDR_HOP:
	case ST_NEXTHDR_ROUTING:
	case ST_NEXTHDR_DEST:
	case ST_NEXTHDR_AUTH:
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return ST_CNT_IPV6_EXT_SKIPPED;
	default:
		break;
	}

	p->family = ST_FAMILY_IPV6;
	__builtin_memcpy(p->saddr, &h[8], 16);
	__builtin_memcpy(p->daddr, &h[24], 16);
	*l4proto = nexthdr;
	*ip_end = end;
	return ST_PARSE_OK;
}

/*
 * TCP header with options, ending at the IP datagram's end ip_end. Fills ports,
 * seq/ack, flags and the payload position.
 */
static __always_inline int st_parse_tcp(struct st_cursor *c, struct st_packet *p, __u32 ip_end)
{
	__u8 h[ST_TCP_HDR_MIN];
	__u32 start = c->off;
	__u32 hlen;

	if (start + ST_TCP_HDR_MIN > ip_end || st_cursor_pull(c, h, sizeof(h)) < 0)
		return ST_CNT_MALFORMED;
	hlen = (__u32)(h[12] >> 4) * 4;
	if (hlen < ST_TCP_HDR_MIN || start + hlen > ip_end)
		return ST_CNT_MALFORMED;

	__builtin_memcpy(&p->sport, &h[0], 2);
	__builtin_memcpy(&p->dport, &h[2], 2);
	p->seq = ((__u32)h[4] << 24) | ((__u32)h[5] << 16) | ((__u32)h[6] << 8) | h[7];
	p->ack = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	p->tcp_flags = h[13];
	p->payload_off = start + hlen;
	p->payload_len = ip_end - (start + hlen);
	return ST_PARSE_OK;
}

/* Whole frame: Ethernet (+VLAN), IPv4/IPv6, TCP. */
static __always_inline int st_parse_packet(ST_CTX *ctx, struct st_packet *p)
{
	struct st_cursor c;
	__u32 ip_end = 0;
	__u16 proto = 0;
	__u8 l4proto = 0;
	int r;

	st_cursor_init(&c, ctx);
	r = st_parse_eth(&c, &proto);
	if (r != ST_PARSE_OK)
		return r;

	if (proto == ETH_P_IP)
		r = st_parse_ipv4(&c, p, &l4proto, &ip_end);
	else if (proto == ETH_P_IPV6)
		r = st_parse_ipv6(&c, p, &l4proto, &ip_end);
	else
		return ST_CNT_NOT_IP;
	if (r != ST_PARSE_OK)
		return r;

	if (l4proto != IPPROTO_TCP)
		return ST_CNT_NOT_TCP;
	return st_parse_tcp(&c, p, ip_end);
}

#endif /* SHADOWTAP_BPF_PARSE_H */
