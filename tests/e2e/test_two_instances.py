#!/usr/bin/env python3
"""End-to-end: two shadowtap instances on one interface in tc mode (kernels before
6.6 have no tcx) and in XDP mode: a DaemonSet pod during a surge update, or
someone's `--dry-run` next to the running agent.

  cli (198.18.0.1) --veth-- node (198.18.0.2; primary :8000; shadowtap A, B, ...)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000)

cls_bpf filters outlive their process, so a filter of ours is either a leftover
of a killed run or another live instance's. Asserts: a second instance gets a
filter of its own (another handle) instead of replacing the first one's; both
capture; stopping the second leaves the first one's filter and mirroring intact;
a tcx instance started next to it leaves it alone too; after SIGKILL the
leftover is recognised (its lock is free) and replaced by the next instance.
XDP: a second instance is refused with a clear error (one XDP program per
interface without libxdp's dispatcher) and the first keeps mirroring; after
SIGKILL the program left attached is removed by the next start instead of
blocking it. Nothing is left at the end, lock files included.

Usage: test_two_instances.py --shadowtap PATH
"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import MirrorLab, check, finish, our_filters, read_records  # noqa: E402

PORT = 8000


def send(lab, cli, tag, n):
    """n requests on n connections; returns how many got a 200."""
    ok = 0
    for i in range(n):
        r = lab.run(cli, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: httpbin:8000",
                          f"http://198.18.0.2:{PORT}/{tag}/{i}"], capture_output=True, text=True, timeout=20)
        ok += r.stdout.strip() == "200"
    return ok


def mirrored(path, tag):
    return sum(1 for raw in read_records(path) if f" /{tag}/".encode() in raw.split(b"\r\n", 1)[0])


def wait_mirrored(path, tag, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and mirrored(path, tag) < want:
        time.sleep(0.1)
    time.sleep(0.3)
    return mirrored(path, tag)


def xdp_attached(lab, ns, iface):
    out = lab.run(ns, ["ip", "-d", "link", "show", iface], capture_output=True, text=True).stdout
    return "st_capture_xdp" in out


def printed(st):
    return [json.loads(l) for l in st.text().splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    args = ap.parse_args()
    netlab.require_root_or_skip("the two-instances end-to-end test")

    m = MirrorLab("st2i")
    lab, cli, node, iface = m.lab, m.cli, m.node, m.node_if
    state = os.path.join(m.workdir, "state")  # the host's /run/shadowtap in production
    mirror_argv = ["--interface", iface, "--attach", "tc", "--state-dir", state,
                   "--rule", f"port={PORT},mirror=httpbin-mirror:{PORT}"]
    dry_argv = ["--interface", iface, "--state-dir", state, "--rule", f"port={PORT}", "--dry-run",
                "--metrics-address", "off"]
    try:
        a = m.shadowtap(args.shadowtap, argv=mirror_argv)
        check(our_filters(lab, node, iface) == 1, "A (tc mode): one filter")
        b = m.shadowtap(args.shadowtap, argv=dry_argv + ["--attach", "tc"])
        check(our_filters(lab, node, iface) == 2, f"B (tc mode, --dry-run) next to A: a filter of its own "
                                                  f"({our_filters(lab, node, iface)} filters)")
        check("belongs to another running shadowtap" in b.text(), "B says why it took the next handle")
        check(send(lab, cli, "both", 5) == 5, "clients answered while two instances capture")
        check(wait_mirrored(m.mirror_rec, "both", 5) == 5, "A mirrored all 5 requests")
        check(len([p for p in printed(b) if p["target"].startswith("/both/")]) == 5, "B printed all 5 requests")

        check(b.stop() == 0, "B exits 0 on SIGTERM")
        check(our_filters(lab, node, iface) == 1, "after B stopped, A's filter is still there")
        check(send(lab, cli, "after-b", 5) == 5 and wait_mirrored(m.mirror_rec, "after-b", 5) == 5,
              "A still mirrors after B stopped")

        if netlab.kernel_has_tcx():
            c = m.shadowtap(args.shadowtap, argv=dry_argv + ["--attach", "tcx"])
            check(our_filters(lab, node, iface) == 1 and "left the tc ingress filter" in c.text(),
                  "C (tcx) started next to A leaves A's tc filter alone")
            check(c.stop() == 0, "C exits 0")
        else:
            try:
                m.shadowtap(args.shadowtap, argv=dry_argv + ["--attach", "tcx"]).stop()
                refused = ""
            except RuntimeError as err:
                refused = str(err)
            check("--attach tc" in refused and our_filters(lab, node, iface) == 1,
                  f"C (tcx) on {os.uname().release} (no tcx before 6.6) is refused and leaves A's filter alone")
        check(send(lab, cli, "after-c", 3) == 3 and wait_mirrored(m.mirror_rec, "after-c", 3) == 3,
              "A still mirrors after C stopped")

        a.stop(signal.SIGKILL)
        check(our_filters(lab, node, iface) == 1, "SIGKILL leaves A's filter behind (its lock is released)")
        d = m.shadowtap(args.shadowtap, argv=mirror_argv)
        check(our_filters(lab, node, iface) == 1 and "removed a stale shadowtap tc filter" in d.text(),
              "D removes A's leftover and attaches its own: exactly one filter")
        check(send(lab, cli, "d", 4) == 4 and wait_mirrored(m.mirror_rec, "d", 4) == 4, "D mirrors")
        check(d.stop() == 0, "D exits 0")
        check(our_filters(lab, node, iface) == 0, "no filter of ours left")

        # XDP mode (without libxdp's dispatcher on kernels that refuse freplace, as
        # here): a program attached through netlink also outlives a SIGKILL.
        xdp_argv = ["--interface", iface, "--attach", "xdp", "--state-dir", state,
                    "--rule", f"port={PORT},mirror=httpbin-mirror:{PORT}"]
        e = m.shadowtap(args.shadowtap, argv=xdp_argv)
        check(xdp_attached(lab, node, iface), "E (XDP mode): our XDP program attached")
        try:
            f = m.shadowtap(args.shadowtap, argv=dry_argv + ["--attach", "xdp"])
            f.stop()
            refused = ""
        except RuntimeError as err:
            refused = str(err)
        check("another running shadowtap captures" in refused,
              "F (XDP mode) next to E is refused with a clear error instead of removing E's program")
        check(xdp_attached(lab, node, iface) and send(lab, cli, "e", 3) == 3 and
              wait_mirrored(m.mirror_rec, "e", 3) == 3, "E still attached and mirroring")
        e.stop(signal.SIGKILL)
        check(xdp_attached(lab, node, iface), "SIGKILL leaves E's XDP program attached")
        g = m.shadowtap(args.shadowtap, argv=xdp_argv)
        check("removed a stale shadowtap XDP program" in g.text(), "G removes E's leftover and attaches")
        check(send(lab, cli, "g", 3) == 3 and wait_mirrored(m.mirror_rec, "g", 3) == 3, "G mirrors")
        check(g.stop() == 0 and not xdp_attached(lab, node, iface), "G exits 0 and leaves no XDP program")
        left = os.listdir(state) if os.path.isdir(state) else []
        check(left == [], f"no lock file left ({left})")
    finally:
        m.close()
    return finish("test_two_instances")


if __name__ == "__main__":
    sys.exit(main())
