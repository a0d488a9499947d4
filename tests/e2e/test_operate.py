#!/usr/bin/env python3
"""Operating shadowtap: /metrics with counters that add up, /healthz and
/readyz, JSON logs, SIGHUP reloads of the config file (kept rules keep their
mirror connections), and a run with only the capabilities the DaemonSet grants.

With --workers N the same with N workers (counters summed over the workers;
the reload reaches every worker).

Usage: test_operate.py --shadowtap PATH [--workers N]
"""
import argparse
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (MirrorLab, add_workers_arg, check, finish, read_records, use_workers,  # noqa: E402
                     wait_count)

METRICS = "127.0.0.1:9464"


def http_get(m, path):
    """(status, body) of GET http://METRICS/path from inside the node namespace."""
    r = m.lab.run(m.node, ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", f"http://{METRICS}{path}"],
                  capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def scrape(m):
    """Prometheus text format -> {(name, frozenset(labels)): value}."""
    _, text = http_get(m, "/metrics")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        mm = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not mm:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', mm.group(2) or ""))
        out[(mm.group(1), labels)] = float(mm.group(3))
    return out


def total(metrics, name, **want):
    return sum(v for (n, labels), v in metrics.items()
               if n == name and all((k, str(x)) in labels for k, x in want.items()))


def write_config(path, rules):
    with open(path, "w") as f:
        f.write('metrics-address = "%s"\nlog-format = "json"\n' % METRICS)
        f.write("rule = [%s]\n" % ", ".join(json.dumps(r) for r in rules))


def mirror_peer_ports(m, since):
    """Source ports of the connections the mirror got requests on, after record `since`."""
    with open(m.mirror_rec) as f:
        lines = [json.loads(l) for l in f if l.strip()][since:]
    return {l["peer"][1] for l in lines}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)
    args = ap.parse_args()
    binary = args.shadowtap
    use_workers(args.workers)
    netlab.require_root_or_skip("the operations test")

    m = MirrorLab()
    conf = os.path.join(m.workdir, "shadowtap.toml")
    rule1 = "port=8000,mirror=httpbin-mirror:8000,methods=GET|HEAD|DELETE"
    write_config(conf, [rule1])
    st = m.shadowtap(binary, argv=["--interface", m.node_if, "--config", conf])

    # Health.
    code, body = http_get(m, "/healthz")
    check(code == 200 and "capture loop turned" in body, f"/healthz answers 200 ({body.strip()})")
    code, body = http_get(m, "/readyz")
    check(code == 200 and "attached to 1 interface" in body, f"/readyz answers 200 ({body.strip()})")

    # Metrics during a run: the accounting adds up.
    sent = m.client("mix")
    posts = sum(1 for r in sent if json.loads(
        __import__("base64").b64decode(r["response"]).split(b"\r\n\r\n", 1)[1] or b"{}").get("method") == "POST")
    want_mirrored = len(sent) - posts
    wait_count(m.mirror_rec, want_mirrored, 30)
    time.sleep(0.5)
    mt = scrape(m)
    requests = total(mt, "shadowtap_requests_total", rule=1)
    filtered = total(mt, "shadowtap_requests_not_mirrored_total", rule=1, reason="method_filtered")
    looped = total(mt, "shadowtap_requests_not_mirrored_total", rule=1, reason="already_shadow")
    outcomes = total(mt, "shadowtap_mirror_requests_total", rule=1)
    waiting = total(mt, "shadowtap_mirror_queue_requests", rule=1) + total(mt, "shadowtap_mirror_in_flight_requests", rule=1)
    check(requests == len(sent), f"metrics: requests_total {requests:.0f} == {len(sent)} sent")
    check(filtered == posts, f"metrics: {filtered:.0f} POSTs counted as method_filtered")
    check(requests == filtered + looped + outcomes + waiting,
          f"metrics: requests {requests:.0f} = filtered {filtered:.0f} + looped {looped:.0f} + "
          f"outcomes {outcomes:.0f} + waiting {waiting:.0f}")
    check(total(mt, "shadowtap_mirror_requests_total", rule=1, outcome="response_2xx") == want_mirrored,
          f"metrics: {want_mirrored} mirror responses 2xx")
    check(total(mt, "shadowtap_kernel_packets_matched_total") > 0 and
          total(mt, "shadowtap_http_requests_parsed_total") == len(sent),
          "metrics: kernel and framing counters exported")
    check(total(mt, "shadowtap_mirror_latency_seconds_count", rule=1) == want_mirrored,
          "metrics: mirror latency histogram counts every response")
    check(len(read_records(m.mirror_rec)) == want_mirrored, f"mirror got exactly the {want_mirrored} allowed requests")

    # JSON logs: every line one object with time, level, msg.
    lines = [l for l in st.text().splitlines() if l.strip()]
    parsed = []
    for l in lines:
        try:
            parsed.append(json.loads(l))
        except ValueError:
            pass
    check(lines and len(parsed) == len(lines) and all({"time", "level", "msg"} <= set(p) for p in parsed),
          f"--log-format json: all {len(lines)} log lines are JSON objects with time, level, msg")

    # SIGHUP: add a rule; rule 1 keeps its mirror connections.
    before_ports = mirror_peer_ports(m, 0)
    open_before = total(scrape(m), "shadowtap_mirror_connections", rule=1)
    mark = len(read_records(m.mirror_rec))
    write_config(conf, [rule1, "port=9000,mirror=httpbin-mirror:8000"])
    st.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "1 added" not in st.text() and time.time() < deadline:
        time.sleep(0.1)
    check("1 rule(s) kept, 1 added, 0 removed" in st.text(), "SIGHUP: one rule kept, one added")
    check(total(scrape(m), "shadowtap_requests_total", rule=2) == 0 and
          ("shadowtap_requests_total", frozenset({("rule", "2")})) in scrape(m), "SIGHUP: rule 2 exported")
    again = m.client("conns", 10)
    wait_count(m.mirror_rec, mark + len(again), 20)
    after_ports = mirror_peer_ports(m, mark)
    check(len(read_records(m.mirror_rec)) - mark == len(again), "after the reload rule 1 still mirrors")
    open_after = total(scrape(m), "shadowtap_mirror_connections", rule=1)
    # A kept rule keeps its pool: requests after the reload go over connections opened before it
    # (a new pool would share none). Not all of them: below the floor (--mirror-connections) the
    # pool may open one more when a burst finds every idle connection still finishing a response,
    # and with workers the 10 new client connections spread over the workers' pools differently.
    reused = after_ports & before_ports
    check(reused and open_after >= open_before,
          f"rule 1 kept its keep-alive mirror connections ({len(reused)} of the {len(before_ports)} open before "
          f"used again; {open_before:.0f} open before, {open_after:.0f} after)")

    # SIGHUP: remove it again; an invalid file is refused and changes nothing.
    write_config(conf, [rule1])
    st.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "1 removed" not in st.text() and time.time() < deadline:
        time.sleep(0.1)
    after_removal = scrape(m)
    check(not any(name == "shadowtap_rule_info" and ("rule", "2") in labels for name, labels in after_removal),
          "SIGHUP: rule 2 removed (no shadowtap_rule_info for it)")
    check(("shadowtap_requests_total", frozenset({("rule", "2")})) in after_removal,
          "SIGHUP: what rule 2 counted stays exported (counters never go backwards)")
    write_config(conf, ["port=8000,percentage=170,mirror=httpbin-mirror:8000"])
    st.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "reload refused" not in st.text() and time.time() < deadline:
        time.sleep(0.1)
    check("reload refused" in st.text() and "percentage" in st.text(), "SIGHUP with a bad rule: refused, said why")
    mark = len(read_records(m.mirror_rec))
    m.client("conns", 5)
    check(wait_count(m.mirror_rec, mark + 5, 20) - mark == 5, "after a refused reload the old rules still mirror")
    rc = st.stop()
    check(rc == 0, f"SIGTERM: exit {rc}" + ("" if rc == 0 else "\n" + st.text()[-3000:]))

    # Least privilege: only CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN (as the DaemonSet grants).
    write_config(conf, [rule1])
    caps = ["setpriv", "--bounding-set", "-all,+bpf,+perfmon,+net_admin", "--inh-caps", "-all"]
    mark = len(read_records(m.mirror_rec))
    st = m.shadowtap(binary, argv=["--interface", m.node_if, "--config", conf], prefix=caps)
    status = open(f"/proc/{st.proc.pid}/status").read()
    eff = int(re.search(r"CapEff:\s*([0-9a-f]+)", status).group(1), 16)
    check(eff == (1 << 39) | (1 << 38) | (1 << 12), f"least privilege: effective capabilities are exactly BPF, "
          f"PERFMON, NET_ADMIN ({eff:#x})")
    m.client("conns", 5)
    check(wait_count(m.mirror_rec, mark + 5, 20) - mark == 5, "least privilege: attaches and mirrors")
    check(st.stop() == 0, "least privilege: exit 0 on SIGTERM")
    r = m.lab.run(m.node, ["setpriv", "--bounding-set", "-all,+bpf,+net_admin", "--inh-caps", "-all", binary,
                           "--interface", m.node_if, "--config", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0 and "missing privileges: CAP_PERFMON" in r.stderr,
          f"without CAP_PERFMON: one clear line ({r.stderr.strip()})")

    m.close()
    return finish("operate")


if __name__ == "__main__":
    sys.exit(main())
