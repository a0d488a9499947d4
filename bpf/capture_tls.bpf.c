/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext (--tls, ABI 5): uprobes and uretprobes on OpenSSL 3's libssl.
 *
 *   SSL_set_fd(ssl, fd)           the connection's identity: the 4-tuple of the
 *                                 socket behind fd, read from the calling task's
 *                                 file table (CO-RE). A socket whose local port
 *                                 (and address) has a rule, in the rule's
 *                                 sample, is followed from here on: a SYN
 *                                 record opens its plaintext stream.
 *   SSL_read[_ex] (ret)           the plaintext the server read: request bytes.
 *   SSL_write[_ex] (ret)          the plaintext it wrote: responses, copied
 *                                 only for rules that compare.
 *   SSL_free(ssl)                 the end: a FIN record, the entry goes.
 *
 * Records are the packet programs' (emit.h), source ST_SRC_TLS, sent to the
 * worker the symmetric flow hash of the 4-tuple picks, so a connection's
 * records meet in one worker like its packets do. seq is the offset in the
 * direction's plaintext stream after a random ISN (capture_abi.h), so ordering,
 * gaps and chunking are the flow table's as on the wire.
 *
 * Only ever reads the process's memory (bpf_probe_read_user): a uprobe cannot
 * change what the function does or returns.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/types.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define ST_CTX struct pt_regs
/* The source of a TLS record is the process's buffer at e->src. */
#define ST_EMIT_LOAD(ctx, e, off, dst, len) bpf_probe_read_user((dst), (len), (const void *)((e)->src + (off)))
#define ST_EMIT_LOAD_FAILED ST_CNT_TLS_READ_FAULT

#include "shadowtap/capture_abi.h"
#include "emit.h"
#include "maps.h"
#include "packet.h"
#include "rules.h"

/* The agent's own process: its TLS client to the mirror is never read. */
const volatile __u32 st_self_tgid = 0;

/*
 * The few kernel fields we read, relocated by CO-RE against the running
 * kernel's BTF (the ___st flavour keeps the names apart from any header).
 */
struct task_struct___st {
	struct files_struct___st *files;
} __attribute__((preserve_access_index));

struct files_struct___st {
	struct fdtable___st *fdt;
} __attribute__((preserve_access_index));

struct fdtable___st {
	unsigned int max_fds;
	struct file___st **fd;
} __attribute__((preserve_access_index));

struct file___st {
	void *private_data;
} __attribute__((preserve_access_index));

struct socket___st {
	short type;
	struct file___st *file;
	struct sock___st *sk;
} __attribute__((preserve_access_index));

struct in6_addr___st {
	union {
		__u32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common___st {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr___st skc_v6_daddr;
	struct in6_addr___st skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock___st {
	struct sock_common___st __sk_common;
} __attribute__((preserve_access_index));

#define ST_AF_INET 2
#define ST_AF_INET6 10
#define ST_SOCK_STREAM 1

/* A followed connection: an SSL object of a process. */
struct st_tls_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

struct st_tls_conn {
	struct st_segment seg; /* to-server template: addresses, ports, family, rule */
	__u32 worker;
	__u32 compare; /* the rule compares: responses are copied too */
	__u32 next_in; /* seq of the next plaintext byte to the server */
	__u32 next_out; /* ... from the server */
};

/* An SSL_read/SSL_write call between its entry and its return. */
struct st_tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 nbytes; /* the _ex calls' size_t *readbytes / *written; 0 for the int calls */
	__u32 write;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ST_MAX_TLS_CONNS);
	__type(key, struct st_tls_key);
	__type(value, struct st_tls_conn);
} st_tls_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ST_MAX_TLS_CALLS);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct st_tls_call);
} st_tls_calls SEC(".maps");

static __always_inline void st_tls_key_of(struct st_tls_key *k, __u64 ssl)
{
	k->ssl = ssl;
	k->tgid = bpf_get_current_pid_tgid() >> 32;
	k->pad = 0;
}

/*
 * The socket behind the current task's fd as a to-server st_packet: source =
 * the peer, destination = the local end. A v4-mapped IPv6 socket is reported
 * as IPv4, as its packets are. Non-zero when fd is not a TCP/IP socket.
 */
static __always_inline int st_tls_socket(__u32 fd, struct st_packet *p)
{
	struct task_struct___st *task = (void *)bpf_get_current_task();
	struct fdtable___st *fdt = BPF_CORE_READ(task, files, fdt);
	struct file___st **fds, *file = NULL;
	struct socket___st *sock;
	struct sock___st *sk;
	unsigned short family;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return -1;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds || bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) < 0 || !file)
		return -1;
	sock = BPF_CORE_READ(file, private_data);
	/* A socket's file points back at it; any other file's private_data does not. */
	if (!sock || BPF_CORE_READ(sock, file) != file || BPF_CORE_READ(sock, type) != ST_SOCK_STREAM)
		return -1;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return -1;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	p->sport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	p->dport = bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
	if (family == ST_AF_INET) {
		p->family = ST_FAMILY_IPV4;
		p->saddr[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		p->daddr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		return 0;
	}
	if (family != ST_AF_INET6)
		return -1;
	BPF_CORE_READ_INTO(&p->saddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	BPF_CORE_READ_INTO(&p->daddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
	if (p->saddr[0] == 0 && p->saddr[1] == 0 && p->saddr[2] == bpf_htonl(0xffff)) {
		p->family = ST_FAMILY_IPV4;
		p->saddr[0] = p->saddr[3];
		p->daddr[0] = p->daddr[3];
		p->saddr[1] = p->saddr[2] = p->saddr[3] = 0;
		p->daddr[1] = p->daddr[2] = p->daddr[3] = 0;
		return 0;
	}
	p->family = ST_FAMILY_IPV6;
	return 0;
}

/* The record template of one direction of a followed connection. */
static __always_inline void st_tls_template(struct st_emit *e, const struct st_tls_conn *c, int out)
{
	e->seg = c->seg;
	e->worker = c->worker;
	e->src = 0;
	e->seg.ts_ns = bpf_ktime_get_ns();
	if (out) {
		__builtin_memcpy(e->seg.saddr, c->seg.daddr, sizeof(e->seg.saddr));
		__builtin_memcpy(e->seg.daddr, c->seg.saddr, sizeof(e->seg.daddr));
		e->seg.sport = c->seg.dport;
		e->seg.dport = c->seg.sport;
		e->seg.direction = ST_DIR_FROM_SERVER;
	}
}

/* A zero-length record with `flags` (SYN or FIN) at seq in one direction. */
static __always_inline void st_tls_mark(struct pt_regs *ctx, const struct st_tls_conn *c, int out, __u32 seq,
					__u8 flags)
{
	struct st_emit e;

	st_tls_template(&e, c, out);
	e.seg.seq = seq;
	e.seg.tcp_flags = flags;
	st_emit_chunk(ctx, &e, 0, 0, 0);
}

SEC("uprobe")
int BPF_KPROBE(st_tls_set_fd, void *ssl, int fd)
{
	struct st_packet pkt = {};
	struct st_tls_conn conn = {};
	struct st_tls_key key;
	const struct st_rule *rule;
	__u32 hash, isn;

	if (st_self_tgid != 0 && (bpf_get_current_pid_tgid() >> 32) == st_self_tgid)
		return 0;
	st_count(ST_CNT_TLS_SET_FD, 1);
	if (fd < 0 || st_tls_socket((__u32)fd, &pkt) != 0) {
		st_count(ST_CNT_TLS_NOT_TCP, 1);
		return 0;
	}
	rule = st_match_rule(&pkt, 0);
	if (!rule)
		return 0;
	st_count(ST_CNT_TLS_MATCHED, 1);
	hash = st_hash_if_needed(&pkt, rule);
	if (!st_sampled(rule, hash)) {
		st_count(ST_CNT_TLS_SAMPLED_OUT, 1);
		return 0;
	}

	isn = bpf_get_prandom_u32();
	__builtin_memcpy(conn.seg.saddr, pkt.saddr, sizeof(conn.seg.saddr));
	__builtin_memcpy(conn.seg.daddr, pkt.daddr, sizeof(conn.seg.daddr));
	conn.seg.sport = pkt.sport;
	conn.seg.dport = pkt.dport;
	conn.seg.rule_id = rule->rule_id;
	conn.seg.family = pkt.family;
	conn.seg.abi_version = SHADOWTAP_ABI_VERSION;
	conn.seg.source = ST_SRC_TLS;
	conn.seg.direction = ST_DIR_TO_SERVER;
	conn.worker = st_worker_of(hash);
	conn.compare = (rule->flags & ST_RULE_F_COMPARE) != 0;
	conn.next_in = isn + 1;
	conn.next_out = isn + 1;

	st_tls_key_of(&key, (__u64)ssl);
	if (bpf_map_update_elem(&st_tls_conns, &key, &conn, BPF_ANY) != 0) {
		st_count(ST_CNT_TLS_CONNS_FULL, 1);
		return 0;
	}
	st_tls_mark(ctx, &conn, 0, isn, ST_TCP_SYN);
	if (conn.compare)
		st_tls_mark(ctx, &conn, 1, isn, ST_TCP_SYN | ST_TCP_ACK);
	return 0;
}

/* Entry of a read or write of a followed connection: remember the buffer until it returns. */
static __always_inline int st_tls_enter(void *ssl, void *buf, void *nbytes, __u32 write)
{
	struct st_tls_key key;
	struct st_tls_call call = {};
	struct st_tls_conn *c;
	__u64 id = bpf_get_current_pid_tgid();

	st_tls_key_of(&key, (__u64)ssl);
	c = bpf_map_lookup_elem(&st_tls_conns, &key);
	if (!c || (write && !c->compare))
		return 0;
	call.ssl = (__u64)ssl;
	call.buf = (__u64)buf;
	call.nbytes = (__u64)nbytes;
	call.write = write;
	/*
	 * BPF_ANY: an entry left by a call whose return was never seen (its thread
	 * died in it) must not block the thread id's later calls. OpenSSL 3's
	 * SSL_read and SSL_read_ex (SSL_write, SSL_write_ex) do not call each
	 * other, so no call is nested in another and none is copied twice.
	 */
	if (bpf_map_update_elem(&st_tls_calls, &id, &call, BPF_ANY) != 0)
		st_count(ST_CNT_TLS_CALLS_FULL, 1);
	return 0;
}

/*
 * Return of a read or write: `ret` is the int call's byte count (<= 0: nothing)
 * or the _ex call's success flag, whose count is at call->nbytes. Copies the
 * plaintext as one record (chunked) and moves the direction's seq on.
 */
static __always_inline int st_tls_leave(struct pt_regs *ctx, long ret, int ex, __u32 write)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_tls_call *call = bpf_map_lookup_elem(&st_tls_calls, &id);
	struct st_tls_key key;
	struct st_tls_conn *c;
	struct st_emit e;
	__u64 n = 0, copy, buf;
	__u32 *next;
	int lost = 0;

	if (!call || call->write != write)
		return 0;
	if (ex) {
		if (ret == 1 && call->nbytes && bpf_probe_read_user(&n, sizeof(n), (void *)call->nbytes) < 0) {
			st_count(ST_CNT_TLS_READ_FAULT, 1);
			n = 0;
		} else if (ret != 1) {
			n = 0;
		}
	} else if (ret > 0) {
		n = ret;
	}
	st_tls_key_of(&key, call->ssl);
	buf = call->buf;
	bpf_map_delete_elem(&st_tls_calls, &id);
	c = bpf_map_lookup_elem(&st_tls_conns, &key);
	if (!c || n == 0)
		return 0;

	st_tls_template(&e, c, write);
	e.src = buf;
	next = write ? &c->next_out : &c->next_in;
	e.seg.seq = *next;
	e.seg.tcp_flags = ST_TCP_PSH | ST_TCP_ACK;
	copy = n;
	if (copy > ST_MAX_CHUNKS * ST_MAX_CHUNK) {
		copy = ST_MAX_CHUNKS * ST_MAX_CHUNK;
		st_count(ST_CNT_TRUNCATED, 1);
		lost = 1;
	}
	e.seg.payload_len = copy;
	/* The whole call moves the stream on: what was not copied is a gap. */
	*next += (__u32)n;

	for (__u32 i = 0; i < ST_MAX_CHUNKS; i++) {
		__u32 chunk_off = i * ST_MAX_CHUNK;
		__u32 cap;
		int r;

		if (chunk_off >= copy)
			break;
		cap = copy - chunk_off;
		if (cap > ST_MAX_CHUNK)
			cap = ST_MAX_CHUNK;
		r = st_emit_chunk(ctx, &e, 0, chunk_off, cap);
		if (r < 0)
			lost = 1;
	}
	if (!lost) {
		st_count(ST_CNT_TLS_COPIED, 1);
		st_count(ST_CNT_TLS_COPIED_BYTES, copy);
	}
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(st_tls_read, void *ssl, void *buf, int num)
{
	return st_tls_enter(ssl, buf, NULL, 0);
}

SEC("uprobe")
int BPF_KPROBE(st_tls_read_ex, void *ssl, void *buf, __u64 num, void *readbytes)
{
	return st_tls_enter(ssl, buf, readbytes, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(st_tls_read_ret, int ret)
{
	return st_tls_leave(ctx, ret, 0, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(st_tls_read_ex_ret, int ret)
{
	return st_tls_leave(ctx, ret, 1, 0);
}

SEC("uprobe")
int BPF_KPROBE(st_tls_write, void *ssl, const void *buf, int num)
{
	return st_tls_enter(ssl, (void *)buf, NULL, 1);
}

SEC("uprobe")
int BPF_KPROBE(st_tls_write_ex, void *ssl, const void *buf, __u64 num, void *written)
{
	return st_tls_enter(ssl, (void *)buf, written, 1);
}

SEC("uretprobe")
int BPF_KRETPROBE(st_tls_write_ret, int ret)
{
	return st_tls_leave(ctx, ret, 0, 1);
}

SEC("uretprobe")
int BPF_KRETPROBE(st_tls_write_ex_ret, int ret)
{
	return st_tls_leave(ctx, ret, 1, 1);
}

SEC("uprobe")
int BPF_KPROBE(st_tls_free, void *ssl)
{
	struct st_tls_key key;
	struct st_tls_conn *c;

	st_tls_key_of(&key, (__u64)ssl);
	c = bpf_map_lookup_elem(&st_tls_conns, &key);
	if (!c)
		return 0;
	st_tls_mark(ctx, c, 0, c->next_in, ST_TCP_FIN | ST_TCP_ACK);
	if (c->compare)
		st_tls_mark(ctx, c, 1, c->next_out, ST_TCP_FIN | ST_TCP_ACK);
	bpf_map_delete_elem(&st_tls_conns, &key);
	st_count(ST_CNT_TLS_FREED, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
