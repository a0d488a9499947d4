#!/usr/bin/env python3
"""Compare mode and recording for HTTP/2 (issue 10), in network namespaces:

  cli (198.18.0.1) --veth-- node (198.18.0.2: h2c primary "v1" :8000, shadowtap on the veth)
  node (198.18.1.1) --veth-- mir (198.18.1.2: h2c mirror "v2" :8000, h2c secondary "v1" :8001)

The servers are h2_recording_server.py --app v1|v2: v2 differs from v1 in one
endpoint's body field (GET /users/<n>: $.plan) and one endpoint's status
(GET /orders/<n>: 500); GET /time differs on every call. Each client
connection (nghttp, prior knowledge) sends all its requests as concurrent
streams, so responses come back interleaved. shadowtap runs one rule with
compare=true and a secondary, and records to HAR at the same time.

Checked: every exchange is compared, per endpoint exactly the two regressions
are "different" and the timestamp is "noisy"; the diff lines name $.plan and
the status; the HAR holds every request as HTTP/2 with its pseudo-headers;
`shadowtap replay` of that HAR sends every request to the mirror again over
HTTP/2 with ":authority" suffixed.

Usage: test_h2_compare.py --shadowtap PATH
Exits 77 (skip) without root, unless CI=true.
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import HERE, PY, Shadowtap, add_workers_arg, check, finish, use_workers  # noqa: E402
from test_compare import check_diff_lines, check_endpoints, compare_counts, metric, scrape  # noqa: E402

PORT = 8000
CONNECTIONS = 4
ROUNDS = 5  # per connection: /users/<n>, /orders/<n>, /time each round, all as concurrent streams
AUTHORITY = "shop:8000"


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def field(rec, name):
    return next((v for n, v in rec["headers"] if n == name), None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)  # --workers 2: each worker opens its own h2c pool on its first HTTP/2 request
    args = ap.parse_args()
    use_workers(args.workers)
    netlab.require_root_or_skip("the HTTP/2 compare end-to-end test")
    if subprocess.run(["sh", "-c", "command -v nghttp"], capture_output=True).returncode != 0:
        print("skip: nghttp not installed (scripts/install-deps.sh installs nghttp2-client)")
        return 77

    lab = netlab.Lab("sth2c")
    workdir = subprocess.run(["mktemp", "-d", "/tmp/st-h2cmp-XXXXXX"], capture_output=True, text=True).stdout.strip()
    try:
        cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, node_if = lab.link(cli, node, ["198.18.0.1/24"], ["198.18.0.2/24"], "c")
        lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        lab.hosts_file(node, {"shop-mirror": "198.18.1.2", "shop-secondary": "198.18.1.2"})
        recs = {}
        for name, ns, port, app in (("primary", node, PORT, "v1"), ("mirror", mir, PORT, "v2"),
                                    ("secondary", mir, PORT + 1, "v1")):
            recs[name] = os.path.join(workdir, f"{name}.jsonl")
            p = lab.spawn(ns, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", str(port),
                               "--record", recs[name], "--app", app], stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{name} server did not start")

        diffs = os.path.join(workdir, "diffs.jsonl")
        har_dir = os.path.join(workdir, "rec")
        os.makedirs(har_dir)
        st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, argv=[
            "--interface", node_if,
            "--rule", f"port={PORT},mirror=shop-mirror:{PORT},compare=true,secondary=shop-secondary:{PORT + 1}",
            "--compare-output", diffs, "--record", os.path.join(har_dir, "traffic.har")])

        total = CONNECTIONS * ROUNDS * 3
        clients = []
        for c in range(CONNECTIONS):
            urls = [f"http://198.18.0.2:{PORT}{path}" for r in range(ROUNDS)
                    for path in (f"/users/{c * 100 + r}", f"/orders/{c * 100 + r}", f"/time?r={r}")]  # nghttp fetches a URL once
            clients.append(lab.spawn(cli, ["nghttp", "-n", "-H", f":authority: {AUTHORITY}", *urls],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        rcs = [p.wait(timeout=60) for p in clients]
        check(rcs == [0] * CONNECTIONS, f"{CONNECTIONS} nghttp clients, {total} requests as concurrent streams ({rcs})")

        deadline, counts, metrics = time.time() + 30, {}, ""
        while time.time() < deadline:
            metrics = scrape(lab, node)
            counts = compare_counts(metrics)
            if sum(counts.values()) >= total:
                break
            time.sleep(0.2)
        check(len(records(recs["primary"])) == total, f"primary answered {total} HTTP/2 requests")
        users, orders, clock = check_endpoints(counts, metrics, total, CONNECTIONS * ROUNDS)
        check(len(records(recs["secondary"])) == total, f"the secondary got all {total} requests")
        check(metric(metrics, "shadowtap_compare_response_streams_total", '{protocol="h2"}') == CONNECTIONS,
              f"metrics: {CONNECTIONS} primary response streams decoded as HTTP/2")
        check(metric(metrics, "shadowtap_compare_h2_response_streams_total", '{outcome="response"}') == total,
              f"metrics: {total} HTTP/2 primary responses decoded")

        rc = st.stop(signal.SIGTERM)
        log = st.text()
        check(rc == 0, f"shadowtap exited cleanly ({rc})")
        stats = st.stats()
        begun, compared = (stats.value("shadowtap_compare_exchanges_begun_total"),
                           stats.value("shadowtap_compare_exchanges_total"))
        check(begun == total and compared == total and "final: compare: " in log,
              f"the final counters count every exchange compared ({compared} of {begun}, {total} sent)")

        check_diff_lines(diffs, users, orders, clock)

        # The HAR: every request, as HTTP/2, with its pseudo-headers.
        entries = []
        for f in sorted(glob.glob(os.path.join(har_dir, "traffic-*.har"))):
            with open(f) as fh:
                entries += json.load(fh)["log"]["entries"]
        reqs = [e["request"] for e in entries]
        check(len(reqs) == total, f"HAR: {len(reqs)} entries for {total} HTTP/2 requests")
        check(all(r["httpVersion"] in ("HTTP/2", "h2", "HTTP/2.0") for r in reqs), "HAR: httpVersion HTTP/2")
        check(all(any(h["name"] == ":authority" and h["value"] == AUTHORITY for h in r["headers"]) for r in reqs),
              "HAR: :authority recorded as the client sent it")
        check(sorted(r["url"].split(str(PORT), 1)[-1] for r in reqs) ==
              sorted(field(p, ":path") for p in records(recs["primary"])), "HAR: the primary's paths, each once")

        # Replay the HAR to the mirror: HTTP/2 again, :authority suffixed.
        before = len(records(recs["mirror"]))
        files = sorted(glob.glob(os.path.join(har_dir, "traffic-*.har")))
        r = lab.run(node, [args.shadowtap, "replay", *files, "--mirror", f"198.18.1.2:{PORT}", "--speed", "0"],
                    capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"shadowtap replay of the HAR exited 0 ({r.returncode}) {r.stderr.strip()[-300:]}")
        deadline = time.time() + 20
        while len(records(recs["mirror"])) < before + total and time.time() < deadline:
            time.sleep(0.1)
        again = records(recs["mirror"])[before:]
        check(len(again) == total, f"replay: the mirror got the {total} requests again ({len(again)})")
        check(all(field(a, ":authority") == "shop-shadow:8000" for a in again),
              "replay: every request over HTTP/2 with :authority suffixed")
        check(sorted(field(a, ":path") for a in again) == sorted(field(p, ":path") for p in records(recs["primary"])),
              "replay: the same paths")
    finally:
        lab.close()
        subprocess.run(["rm", "-rf", workdir])
    return finish("test_h2_compare")


if __name__ == "__main__":
    sys.exit(main())
