/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * XDP program: the same capture as the TC program (capture_common.h), for
 * `--attach xdp`. Loaded through libxdp's multi-program dispatcher so it
 * coexists with other XDP programs; it always returns XDP_PASS, which the
 * dispatcher treats as "run the next program". XDP never sees GSO/GRO skbs, so
 * every record covers at most one wire frame.
 */
#include <xdp/xdp_helpers.h>

#include "ctx_xdp.h"
#include "capture_common.h"

/* libxdp dispatcher settings: run late (priority 50 is libxdp's default), chain on PASS. */
struct {
	__uint(priority, 50);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(st_capture_xdp);

SEC("xdp")
int st_capture_xdp(struct xdp_md *ctx)
{
	st_capture(ctx);
	return ST_VERDICT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
