/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the capture programs know of one TCP segment (parse.h fills it from a
 * frame) or of one TLS connection's socket (capture_tls.bpf.c): enough to match
 * a rule, hash the connection and fill a record. No context needed.
 */
#ifndef SHADOWTAP_BPF_PACKET_H
#define SHADOWTAP_BPF_PACKET_H

#include <linux/types.h>

struct st_packet {
	__u32 saddr[4]; /* network order words; IPv4 uses saddr[0] */
	__u32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u32 seq; /* host order */
	__u32 ack; /* host order */
	__u32 payload_off; /* from the start of the frame */
	__u32 payload_len; /* bounded by the IP length and by the frame length */
	__u8 family;
	__u8 tcp_flags;
};

#endif /* SHADOWTAP_BPF_PACKET_H */
