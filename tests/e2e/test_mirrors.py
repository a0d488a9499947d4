#!/usr/bin/env python3
"""End-to-end: several mirrors per rule (issue 19 item 4), in namespaces with the real
binary and two real mirror servers (MirrorLab's, and a second recording server beside it).

- One rule, two mirrors: mirror A takes 100 % with the default suffix, mirror B 50 % of
  the requests (sample=request) with the host kept. 400 requests on 4 keep-alive
  connections: A gets every one byte-identical to what the primary got except the
  shadow host, B gets 200 within 5 points, byte-identical with the host kept; the
  counters (labelled by mirror) add up for each mirror; rule_info has a sample per mirror.
- sample=connection with mirror A at 60 % and B at 30 %: the kernel copies 60 % of the
  connections, B takes half of those; every connection goes whole to a mirror or not.
- --dry-run lists the mirrors each request would go to.
- SIGHUP adds a second mirror to the rule of a --config file; a bad mirror value is
  refused at start and on reload with one line, and the running rules stay.
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (PORT, PY, MirrorLab, add_workers_arg, check, check_workers, finish, read_records,  # noqa: E402
                     shadow_host, use_workers, wait_stable)

B_PORT = 8001
A = "httpbin-mirror:8000"
B = f"198.18.1.2:{B_PORT}"

CLIENT = r'''
import http.client, json, sys
count, conns = int(sys.argv[1]), int(sys.argv[2])
cs = [http.client.HTTPConnection("198.18.0.2", 8000, timeout=10) for _ in range(conns)]
ok = 0
for i in range(count):
    c = cs[i % conns]
    c.request("GET", "/m/%d" % i, headers={"Host": "httpbin:8000", "X-Seq": "%s-%d" % (sys.argv[3], i)})
    r = c.getresponse(); r.read()
    ok += r.status == 200
print(json.dumps({"ok": ok}))
'''


def run_client(m, count, conns, tag):
    r = m.lab.run(m.cli, [PY, "-c", CLIENT, str(count), str(conns), tag], capture_output=True, text=True,
                  timeout=120)
    return r.returncode == 0 and f'"ok": {count}' in r.stdout


def tagged(path, tag):
    return [g for g in read_records(path) if f"X-Seq: {tag}-".encode() in g]


def seq(request):
    return re.search(rb"X-Seq: (\S+)", request).group(1)


def wait_log(st, text, timeout=10):
    deadline = time.time() + timeout
    while text not in st.text() and time.time() < deadline:
        time.sleep(0.1)
    return text in st.text()


def write_config(path, iface, rules):
    with open(path, "w") as f:
        f.write(f'interface = ["{iface}"]\nrule = [{", ".join(json.dumps(r) for r in rules)}]\n')


def two_mirrors(m, binary, workers):
    """A at 100 % (suffix), B at 50 % of the requests (host kept)."""
    st = m.shadowtap(binary, argv=["--interface", m.node_if, "--rule",
                                   f"port={PORT},sample=request,mirror={A},mirror={B};percentage=50;host=keep"])
    ok = run_client(m, 400, 4, "two")
    wait_stable(m.mirror_rec, quiet=1.0)
    wait_stable(m.b_rec, quiet=0.5)
    st.stop()
    primary = {seq(r): r for r in tagged(m.primary_rec, "two")}
    at_a, at_b = tagged(m.mirror_rec, "two"), tagged(m.b_rec, "two")
    check(ok and len(primary) == 400, f"two mirrors: the client's 400 requests answered by the primary ({len(primary)})")
    check(sorted(at_a) == sorted(shadow_host(r) for r in primary.values()),
          f"mirror A (100 %, host=suffix) got every request byte-identical but the shadow host ({len(at_a)})")
    check(abs(len(at_b) - 200) <= 20, f"mirror B (50 % of requests) got {len(at_b)} of 400 (want 200 ± 20)")
    check(all(primary.get(seq(r)) == r for r in at_b) and len(set(map(seq, at_b))) == len(at_b),
          "mirror B (host=keep) got its requests byte-identical to the primary's, each once")
    check(all(b"Host: httpbin:8000\r\n" in r for r in at_b), "mirror B's requests keep Host: httpbin:8000")

    s = st.stats()
    check_workers(s, workers, "two mirrors: ")
    seen = s.value("shadowtap_requests_total", rule=1)
    for name, target, got in (("A", A, at_a), ("B", B, at_b)):
        answered = s.answered(rule=1, mirror=target)
        out = s.value("shadowtap_requests_not_mirrored_total", rule=1, mirror=target, reason="sampled_out")
        not_mirrored = s.value("shadowtap_requests_not_mirrored_total", rule=1, mirror=target)
        lost = sum(s.outcomes(rule=1, mirror=target).values()) - answered
        check(answered == len(got), f"mirror {name}: shadowtap_mirror_requests_total{{mirror=\"{target}\"}} answered "
                                    f"{answered} == the {len(got)} it got")
        check(seen == not_mirrored + answered + lost,
              f"mirror {name}: the rule's {seen} requests = {not_mirrored} not mirrored ({out} sampled out) + "
              f"{answered} answered + {lost} lost")
    info = s.data.get("shadowtap_rule_info", {}).get("samples", [])
    modes = sorted((i["labels"].get("mirror"), i["labels"].get("host_mode")) for i in info)
    check(modes == sorted([(A, "suffix"), (B, "keep")]), f"rule_info: one sample per mirror with its host mode {modes}")
    text = st.text()
    check(f"-> {A} (100% of requests) + {B} (50% of requests, host kept)" in text, "the start line lists both mirrors")
    check(f"rule 1 :{PORT} -> {B}: " in text, "the summary has a line per mirror")


def connection_shares(m, binary):
    """sample=connection: A 60 %, B 30 %: the kernel copies A's share, B takes half of it."""
    st = m.shadowtap(binary, argv=["--interface", m.node_if, "--rule",
                                   f"port={PORT},mirror={A};percentage=60,mirror={B};percentage=30;host=keep"])
    ok = run_client(m, 400, 200, "conn")  # 200 connections, two requests on each
    wait_stable(m.mirror_rec, quiet=1.0)
    wait_stable(m.b_rec, quiet=0.5)
    st.stop()
    at_a, at_b = tagged(m.mirror_rec, "conn"), tagged(m.b_rec, "conn")
    conn_of = lambda r: int(seq(r).split(b"-")[1]) % 200  # noqa: E731
    per_a, per_b = collections.Counter(map(conn_of, at_a)), collections.Counter(map(conn_of, at_b))
    check(ok, "sample=connection: the client's 400 requests all answered")
    check(all(n == 2 for n in per_a.values()) and all(n == 2 for n in per_b.values()),
          "sample=connection: each mirror gets a connection's requests all or none")
    check(abs(len(per_a) - 120) <= 30, f"mirror A (60 %) got {len(per_a)} of 200 connections (want 120 ± 30)")
    check(abs(len(per_b) - 60) <= 25, f"mirror B (30 %) got {len(per_b)} of 200 connections (want 60 ± 25)")
    check(set(per_b) <= set(per_a), "B's connections are among those the kernel copied for A's larger share")
    s = st.stats()
    copied_conns = s.value("shadowtap_requests_total", rule=1) // 2
    check(copied_conns == len(per_a), f"the kernel copied A's {len(per_a)} connections, no more ({copied_conns})")


def dry_run(m, binary):
    st = m.shadowtap(binary, argv=["--interface", m.node_if, "--dry-run", "--rule",
                                   f"port={PORT},mirror={A},mirror={B};host=staging.svc"])
    run_client(m, 3, 1, "dry")
    wait_stable(m.primary_rec, quiet=0.5)
    st.stop()
    lines = [json.loads(l) for l in st.text().splitlines() if l.startswith("{")]
    want = [{"target": A, "shadow_host": "httpbin-shadow:8000"}, {"target": B, "shadow_host": "staging.svc:8000"}]
    check(len(lines) == 3 and all(l.get("mirrors") == want for l in lines),
          f"--dry-run lists the mirrors each request would go to ({[l.get('mirrors') for l in lines]})")
    check(not tagged(m.b_rec, "dry"), "--dry-run sends nothing")


def reload_and_errors(m, binary):
    bad = subprocess.run([binary, "--interface", "lo", "--rule", f"port={PORT},mirror={A},mirror={B};percentage=150"],
                         capture_output=True, text=True, timeout=20)
    lines = bad.stderr.strip().splitlines()
    check(bad.returncode == 2 and len(lines) == 1 and f"'mirror={B};percentage=150'" in lines[0]
          and "percentage must be a number from 0 to 100" in lines[0],
          f"a bad mirror value stops the start with one line: {lines}")

    conf = os.path.join(m.workdir, "mirrors.toml")
    write_config(conf, m.node_if, [f"port={PORT},mirror={A}"])
    st = m.shadowtap(binary, argv=["--config", conf])
    run_client(m, 20, 2, "before")
    wait_stable(m.mirror_rec, quiet=1.0)
    write_config(conf, m.node_if, [f"port={PORT},mirror={A},mirror={B};host=keep"])
    st.proc.send_signal(signal.SIGHUP)
    check(wait_log(st, "0 rule(s) kept, 1 added, 1 removed"), "SIGHUP: the rule with a second mirror replaces the rule")
    run_client(m, 20, 2, "after")
    wait_stable(m.mirror_rec, quiet=1.0)
    wait_stable(m.b_rec, quiet=0.5)
    check(len(tagged(m.mirror_rec, "before")) == 20 and len(tagged(m.mirror_rec, "after")) == 20,
          "mirror A got the 20 requests before and the 20 after the reload")
    check(not tagged(m.b_rec, "before") and len(tagged(m.b_rec, "after")) == 20,
          f"mirror B, added by the reload, got the 20 after it ({len(tagged(m.b_rec, 'after'))})")

    write_config(conf, m.node_if, [f"port={PORT},mirror={A},mirror={B};host=a b"])
    st.proc.send_signal(signal.SIGHUP)
    check(wait_log(st, "reload refused"), "SIGHUP with a bad mirror value: refused")
    refused = [l for l in st.text().splitlines() if "reload refused" in l]
    check(len(refused) == 1 and f"'mirror={B};host=a b'" in refused[0] and "host must be" in refused[0],
          f"... with one line quoting it: {refused}")
    run_client(m, 10, 1, "kept")
    wait_stable(m.b_rec, quiet=1.0)
    check(len(tagged(m.mirror_rec, "kept")) == 10 and len(tagged(m.b_rec, "kept")) == 10,
          "after the refused reload both mirrors still get every request")
    st.stop()
    s = st.stats()
    check(s.answered(rule=2, mirror=B) == 30, f"rule 2's counters for mirror B: {s.answered(rule=2, mirror=B)} == 30")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)
    args = ap.parse_args()
    use_workers(args.workers)
    netlab.require_root_or_skip("the end-to-end several-mirrors test")
    m = MirrorLab("mm")
    try:
        m.b_rec = os.path.join(m.workdir, "mirror-b.jsonl")
        m.recording_server(m.mir, B_PORT, m.b_rec, "v1-mirroring-b")  # mirror B, beside MirrorLab's mirror A
        two_mirrors(m, args.shadowtap, args.workers)
        connection_shares(m, args.shadowtap)
        dry_run(m, args.shadowtap)
        reload_and_errors(m, args.shadowtap)
    finally:
        m.close()
    return finish("mirrors")


if __name__ == "__main__":
    sys.exit(main())
