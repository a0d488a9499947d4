#!/usr/bin/env python3
"""End-to-end: shadowtap mirrors HTTP/1.1 between real hosts built from network namespaces.

  cli (198.18.0.1, 2001:db8::1) --veth-- node (198.18.0.2, 2001:db8::2; primary :8000; shadowtap)
                                         node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000)

Asserts what users rely on: the client's responses are byte-identical with and
without shadowtap; the primary receives exactly what the client sent; the mirror
receives every request byte-identical except the Host value, which gets "-shadow";
0 % mirrors nothing, 100 % everything, 50 % of 400 connections between 35 % and 65 %;
SIGTERM leaves no filter of ours; SIGKILL and a restart leave exactly one.

With --workers N every assertion holds with N workers, and the counters of the
workers add up (records read = records the kernel copied; 400 connections use every
worker).

Usage: test_mirror.py --shadowtap PATH [--workers N]
"""
import argparse
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (MirrorLab, Shadowtap, add_mirror_io_arg, add_workers_arg, check, check_mirror_io, check_workers,  # noqa: E402,F401
                     client, finish, our_filters, our_programs, use_mirror_io, use_workers, read_records, requests_of, shadow_host, wait_count,
                     wait_stable)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)
    add_mirror_io_arg(ap)
    args = ap.parse_args()
    use_workers(args.workers)
    use_mirror_io(args.mirror_io)
    netlab.require_root_or_skip("the end-to-end mirror test")

    m = MirrorLab()
    lab, workdir, cli, node, node_if = m.lab, m.workdir, m.cli, m.node, m.node_if
    primary_rec, mirror_rec = m.primary_rec, m.mirror_rec

    # A. Baseline without shadowtap.
    base = client(lab, cli, workdir, "mix")
    sent = requests_of(base)
    check(collections.Counter(read_records(primary_rec)) == collections.Counter(sent),
          f"baseline: primary received exactly the {len(sent)} requests sent")

    # B. Mirroring 100 %.
    primary_before = len(read_records(primary_rec))
    # Default attach mode: tcx on 6.6+ (a BPF link), cls_bpf before.
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir)
    check(f"attached to {node_if}" in st.text(), "attached to the interface")
    auto = ("attach mode auto: using tcx because" if netlab.kernel_has_tcx()
            else "attach mode auto: using tc because the kernel has no tcx")
    check(auto in st.text(), f"auto picks what {os.uname().release} has and says why ('{auto}')")
    ours = st.held_programs("st_capture_tc")
    check(len(ours) == 1, "one capture program of ours loaded")
    mirrored = client(lab, cli, workdir, "mix")
    check([r["response"] for r in mirrored] == [r["response"] for r in base],
          f"client responses byte-identical with and without shadowtap ({len(base)} responses)")
    sent = requests_of(mirrored)
    check(collections.Counter(read_records(primary_rec)[primary_before:]) == collections.Counter(sent),
          "primary received exactly what the client sent")
    got = wait_count(mirror_rec, len(sent), 30)
    mirror_got = read_records(mirror_rec)
    expected = collections.Counter(shadow_host(r) for r in sent)
    check(got == len(sent), f"mirror received {got} of {len(sent)} requests")
    check(collections.Counter(mirror_got) == expected,
          "mirror bytes identical to the client's except Host gets -shadow")
    if collections.Counter(mirror_got) != expected:
        for r in (collections.Counter(mirror_got) - expected):
            print("  unexpected at mirror:", r[:200])
        for r in (expected - collections.Counter(mirror_got)):
            print("  missing at mirror:", r[:200])
    check(all(b"Host: httpbin-shadow:8000" in r or b"hOsT: httpbin-shadow:8000" in r for r in mirror_got),
          "every mirrored request carries httpbin-shadow:8000")
    rc = st.stop()
    check(rc == 0, f"SIGTERM: shadowtap exited with {rc}")
    check(our_filters(lab, node, node_if) == 0 and not (ours & our_programs()),
          "SIGTERM: no filter, link or program of ours left")
    text, stats = st.text(), st.stats()
    check("final: requests: " in text, "final summary logged at exit")
    check(stats.value("shadowtap_requests_total") == len(sent), "stats count every request for the rule")
    check(stats.answered() == len(sent) and set(stats.outcomes()) <= {"response_2xx", "response_3xx",
                                                                      "response_4xx", "response_5xx"},
          f"stats count every mirror response and no loss: {stats.outcomes()}")
    check_workers(stats, args.workers, "100 %: ")
    check_mirror_io(text, args.mirror_io)
    if args.workers:
        check(f"{args.workers} worker" in text, "the startup log says how many workers run")

    # C. 0 % mirrors nothing.
    before = len(read_records(mirror_rec))
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--mirror-percentage", "0")
    zero = client(lab, cli, workdir, "conns", 40)
    time.sleep(1.5)
    st.stop()
    check(len(read_records(mirror_rec)) == before, "0 %: mirror received nothing")
    check(st.stats().value("shadowtap_kernel_packets_sampled_out_total") > 0
          and st.stats().value("shadowtap_kernel_segments_copied_total") == 0,
          "0 %: kernel counted the connections as sampled out")
    check(len(zero) == 40, "0 %: all 40 client requests answered")

    # D. 50 % of 400 connections.
    before = len(read_records(mirror_rec))
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--mirror-percentage", "50")
    half = client(lab, cli, workdir, "conns", 400)
    n = wait_stable(mirror_rec) - before
    st.stop()
    share = n / len(half)
    check(0.35 <= share <= 0.65, f"50 %: {n} of {len(half)} connections mirrored ({share:.1%})")
    check(set(read_records(mirror_rec)[before:]) <= set(shadow_host(r) for r in requests_of(half)),
          "50 %: every mirrored request is one the client sent, with the suffix")
    stats = st.stats()
    check_workers(stats, args.workers, "50 %: ")
    check(stats.answered() == n and stats.value("shadowtap_requests_total") == n,
          f"50 %: the workers' counters add up to the {n} requests mirrored and answered "
          f"({stats.value('shadowtap_requests_total')} counted, {stats.answered()} answered)")
    if args.workers > 1:
        per = [stats.value("shadowtap_worker_segments_total", worker=w) for w in range(args.workers)]
        check(all(p > 0 for p in per), f"50 %: 400 connections spread over every worker ({per} records)")

    # E. tc (cls_bpf) mode: SIGKILL leaves our filter; a restart replaces it
    # instead of adding one.
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tc")
    check(our_filters(lab, node, node_if) == 1, "tc mode: one filter of ours attached")
    st.stop(signal.SIGKILL)
    check(our_filters(lab, node, node_if) == 1, "tc mode, SIGKILL: the filter stays behind")
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tc")
    check(our_filters(lab, node, node_if) == 1, "tc mode, restart after SIGKILL: exactly one filter of ours")
    check("removed a stale shadowtap tc filter" in st.text(), "restart says it removed the stale filter")
    before = len(read_records(mirror_rec))
    again = client(lab, cli, workdir, "conns", 10)
    check(wait_count(mirror_rec, before + 10, 20) - before == 10, "restarted shadowtap mirrors again")
    check(st.stop() == 0 and our_filters(lab, node, node_if) == 0, "final SIGTERM removes our filter")
    del again

    # F. tcx mode: a killed process leaves nothing behind (the link dies with it).
    # Kernels before 6.6 have no tcx: there it must be refused with what to do.
    if netlab.kernel_has_tcx():
        st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tcx")
        ours = st.held_programs("st_capture_tc")
        st.stop(signal.SIGKILL)
        deadline = time.time() + 5
        while ours & our_programs() and time.time() < deadline:
            time.sleep(0.1)
        check(len(ours) == 1 and not (ours & our_programs()) and our_filters(lab, node, node_if) == 0,
              "tcx mode, SIGKILL: no link, program or filter of ours left")
    else:
        progs_before = our_programs()
        try:
            Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tcx").stop()
            refused = ""
        except RuntimeError as err:
            refused = str(err)
        check("tcx" in refused and "--attach tc" in refused,
              f"tcx mode on {os.uname().release} (no tcx before 6.6): refused with what to do")
        check(not (our_programs() - progs_before) and our_filters(lab, node, node_if) == 0,
              "tcx mode refused: no program or filter of ours left")

    m.close()
    return finish("e2e")


if __name__ == "__main__":
    sys.exit(main())
