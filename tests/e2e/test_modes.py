#!/usr/bin/env python3
"""End-to-end: the per-rule sampling and host modes of issue 19, in namespaces with the
real binary and real servers (MirrorLab).

- sample=request: 500 requests over 4 keep-alive connections; for 20, 35 and 50 % the
  mirror gets that share of them within 5 points (connection sampling would give 0, 25,
  50, 75 or 100 % with 4 connections).
- sample=header:x-user: each user is always in or always out, whatever connection carries
  them; about the rule's share of users are in.
- host=keep and host=LITERAL: the mirror gets the host kept, or the literal with the port
  kept, and everything else byte-identical; keep mode with a header marker skips a
  request that already carries it.
"""
import argparse
import collections
import http.client
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (PORT, MirrorLab, add_workers_arg, check, finish, read_records, use_workers,  # noqa: E402
                     wait_stable)

CLIENT = r'''
import http.client, json, sys
count, conns, users = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "users"
cs = [http.client.HTTPConnection("198.18.0.2", 8000, timeout=10) for _ in range(conns)]
ok = 0
for i in range(count):
    h = {"Host": "httpbin:8000", "X-Seq": str(i)}
    if users:
        h["X-User"] = "user-%d" % (i % 40)
    c = cs[i % conns]
    c.request("GET", "/m/%d" % i, headers=h)
    r = c.getresponse(); r.read()
    ok += r.status == 200
print(json.dumps({"ok": ok}))
'''


def run_client(m, count, conns, users=False):
    r = m.lab.run(m.cli, ["/usr/bin/python3", "-c", CLIENT, str(count), str(conns), "users" if users else "-"],
                  capture_output=True, text=True, timeout=120)
    return r.returncode == 0 and f'"ok": {count}' in r.stdout


def mirrored(m, since):
    got = read_records(m.mirror_rec)[since:]
    return [g for g in got if b"X-Seq:" in g]


def rule(*keys):
    return ["--interface", m_if[0], "--rule", ",".join([f"port={PORT}", "mirror=httpbin-mirror:8000", *keys])]


m_if = []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)  # --workers 2: request sampling keeps its share per worker (within a request or two)
    args = ap.parse_args()
    use_workers(args.workers)
    netlab.require_root_or_skip("the end-to-end sampling and host mode test")
    m = MirrorLab("md")
    m_if.append(m.node_if)
    try:
        for pct in (20, 35, 50):
            before = len(read_records(m.mirror_rec))
            st = m.shadowtap(args.shadowtap, argv=rule("sample=request", f"percentage={pct}"))
            ok = run_client(m, 500, 4)
            wait_stable(m.mirror_rec, quiet=1.0)
            st.stop()
            got = len(mirrored(m, before))
            stats = st.stats()
            out = stats.value("shadowtap_requests_not_mirrored_total", reason="sampled_out")
            check(ok, f"sample=request {pct} %: the client's 500 requests all answered")
            check(abs(got - 5 * pct) <= 25, f"sample=request {pct} %: the mirror got {got} of 500 (want {5 * pct} ± 25)")
            check(got + out == 500, f"sample=request {pct} %: mirrored {got} + sampled out {out} == 500")

        before = len(read_records(m.mirror_rec))
        st = m.shadowtap(args.shadowtap, argv=rule("sample=header:x-user", "percentage=50"))
        ok = run_client(m, 400, 3, users=True)
        wait_stable(m.mirror_rec, quiet=1.0)
        st.stop()
        seen = collections.Counter(re.search(rb"X-User: (\S+)", g).group(1) for g in mirrored(m, before))
        check(ok, "sample=header: the client's 400 requests all answered")
        check(all(n == 10 for n in seen.values()),
              f"sample=header: each user mirrored always or never (10 requests each): {sorted(set(seen.values()))}")
        check(8 <= len(seen) <= 32, f"sample=header 50 %: {len(seen)} of 40 users in")

        for mode, want in (("keep", b"Host: httpbin:8000\r\n"), ("staging.svc", b"Host: staging.svc:8000\r\n")):
            before = len(read_records(m.mirror_rec))
            st = m.shadowtap(args.shadowtap, argv=rule(f"host={mode}", "header=x-shadowtap:1"))
            ok = run_client(m, 20, 2)
            wait_stable(m.mirror_rec, quiet=1.0)
            st.stop()
            got = mirrored(m, before)
            check(ok and len(got) == 20, f"host={mode}: all 20 requests mirrored ({len(got)})")
            check(all(want in g and b"x-shadowtap: 1\r\n" in g for g in got), f"host={mode}: the mirror got {want!r}")

        # keep + marker: a request that already carries the marker is a shadow, not mirrored again.
        before = len(read_records(m.mirror_rec))
        st = m.shadowtap(args.shadowtap, argv=rule("host=keep", "header=x-shadowtap:1"))
        r = m.lab.run(m.cli, ["curl", "-s", "-o", "/dev/null", "-H", "Host: httpbin:8000", "-H", "X-Seq: marked",
                              "-H", "x-shadowtap: 1", f"http://198.18.0.2:{PORT}/marked"])
        wait_stable(m.mirror_rec, quiet=1.0)
        st.stop()
        check(r.returncode == 0 and not mirrored(m, before), "host=keep: a request carrying the marker is not mirrored")
        check(st.stats().value("shadowtap_requests_not_mirrored_total", reason="already_shadow") == 1,
              "host=keep: counted as already_shadow")

        # --dry-run shows what the host mode makes of the host; /stats labels the rule with its modes.
        st = m.shadowtap(args.shadowtap, argv=["--interface", m.node_if, "--rule",
                                               f"port={PORT},host=staging.svc,sample=request", "--dry-run"])
        run_client(m, 3, 1)
        wait_stable(m.primary_rec, quiet=0.5)
        st.stop()
        lines = [json.loads(l) for l in st.text().splitlines() if l.startswith("{")]
        check(len(lines) == 3 and all(l["shadow_host"] == "staging.svc:8000" for l in lines),
              f"dry run: shadow_host is staging.svc:8000 ({[l.get('shadow_host') for l in lines]})")
        info = st.stats().data.get("shadowtap_rule_info", {}).get("samples", [{}])[0].get("labels", {})
        check(info.get("host_mode") == "literal" and info.get("sample") == "request",
              f"stats: the rule's modes are labels ({info})")
    finally:
        m.close()
    return finish("modes")


if __name__ == "__main__":
    sys.exit(main())
