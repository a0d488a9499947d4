#!/usr/bin/env python3
"""Compare mode end to end (issue 9), in network namespaces:

  cli (198.18.0.1) --veth-- node (198.18.0.2: primary "v1" :8000, shadowtap on the veth)
  node (198.18.1.1) --veth-- mir (198.18.1.2: mirror "v2" :8000, secondary "v1" :8001)

v2 differs from v1 in exactly one endpoint's body field (GET /users/<n>: $.plan)
and one endpoint's status (GET /orders/<n>: 500); GET /time returns a timestamp
that differs on every call. shadowtap runs one rule with compare=true and
secondary=<the second v1>, so the kernel also captures the primary's responses
(egress) and the mirror's and secondary's responses are kept. Checked: every
request is compared, the metrics per endpoint, the JSON lines of differing
pairs, and that `shadowtap report` names exactly the two regressions and marks
the timestamp as noise.

With --workers N the same with N workers: the kernel sends a connection's
responses (egress) to the worker of its requests, so every exchange still pairs.
With --secondary-tls the secondary serves HTTPS only (:8443, a self-signed
certificate for shop-secondary) and the rule gives it its own keys,
secondary=shop-secondary:8443;tls=true;tls-ca=CERT: the noise still shows.

Usage: test_compare.py --shadowtap PATH [--workers N] [--secondary-tls]
Exits 77 (skip) without root, unless CI=true.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (HERE, PY, Shadowtap, add_workers_arg, check, check_workers, finish,  # noqa: E402
                     loaded_programs, use_workers)
from test_compare_report import Page  # noqa: E402

PORT = 8000
CONNECTIONS = 4
ROUNDS = 5  # per connection: /users/<i>, /orders/<i>, /time each round

CLIENT = r"""
import http.client, sys
conns, rounds = int(sys.argv[1]), int(sys.argv[2])
statuses = []
for c in range(conns):
    h = http.client.HTTPConnection("198.18.0.2", 8000, timeout=10)
    for r in range(rounds):
        n = c * 100 + r
        for path in (f"/users/{n}", f"/orders/{n}", "/time"):
            h.request("GET", path, headers={"Host": "shop:8000"})
            resp = h.getresponse()
            resp.read()
            statuses.append(resp.status)
    h.close()
print(len(statuses), sum(1 for s in statuses if s == 200))
"""


def scrape(lab, ns):
    code = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())"
    r = lab.run(ns, [PY, "-c", code], capture_output=True, text=True)
    return r.stdout


def compare_counts(metrics):
    """{(endpoint, result): value} of shadowtap_compare_exchanges_total."""
    out = {}
    for line in metrics.splitlines():
        m = re.match(r'shadowtap_compare_exchanges_total\{(.*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels["endpoint"], labels["result"])] = float(m.group(2))
    return out


def metric(metrics, name, labels=""):
    m = re.search(rf'^{name}{re.escape(labels)} (\S+)$', metrics, re.M)
    return float(m.group(1)) if m else None


def endpoint_like(counts, fragment):
    names = {e for e, _ in counts if fragment in e}
    return names.pop() if len(names) == 1 else None


def check_endpoints(counts, metrics, total, per):
    """Every exchange compared; per endpoint exactly the two regressions differ
    and the timestamp is noise. Returns the endpoint names (users, orders, time)."""
    check(sum(counts.values()) == total, f"all {total} exchanges compared ({sum(counts.values())})")
    users, orders, clock = (endpoint_like(counts, f) for f in ("/users/", "/orders/", "/time"))
    check(users is not None and orders is not None and clock is not None,
          f"one endpoint each for users, orders and time in the metrics ({sorted({e for e, _ in counts})})")
    check(counts.get((users, "different")) == per and counts.get((users, "equal")) == 0,
          f"{users}: all {per} different (body field)")
    check(counts.get((orders, "different")) == per and counts.get((orders, "equal")) == 0,
          f"{orders}: all {per} different (status)")
    check(counts.get((clock, "noisy")) == per and counts.get((clock, "different")) == 0,
          f"{clock}: all {per} noisy, none different "
          f"({ {r: v for (e, r), v in counts.items() if e == clock} })")
    for reason in ("no_primary", "no_mirror", "expired"):
        check(metric(metrics, "shadowtap_compare_exchanges_uncompared_total", f'{{reason="{reason}"}}') == 0,
              f"no exchange ended as {reason}")
    return users, orders, clock


def check_diff_lines(diffs, users, orders, clock):
    """The JSON lines: only the two regressions are 'different'; the timestamp is noise."""
    lines = [json.loads(l) for l in open(diffs) if l.strip()] if os.path.exists(diffs) else []
    diff_lines = [l for l in lines if l.get("type") == "diff"]
    different = {l["endpoint"] for l in diff_lines if l["outcome"] == "different"}
    check(different == {users, orders}, f"differing pairs are exactly users and orders ({different})")
    user_paths = {d["path"] for l in diff_lines if l["endpoint"] == users for d in l["differences"]
                  if not d.get("noisy")}
    check("$.plan" in user_paths and "status" not in user_paths, f"users differ in $.plan ({user_paths})")
    order_paths = {d["path"] for l in diff_lines if l["endpoint"] == orders for d in l["differences"]
                   if not d.get("noisy")}
    check("status" in order_paths, f"orders differ in status ({order_paths})")
    noisy = [l for l in diff_lines if l["endpoint"] == clock]
    check(all(l["outcome"] == "noisy" for l in noisy) and noisy and all("$.now" in l["noisy_fields"] for l in noisy),
          "time pairs are noisy in $.now")
    check(any(l.get("type") == "summary" for l in lines), "summary lines at exit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)
    ap.add_argument("--secondary-tls", action="store_true")
    args = ap.parse_args()
    use_workers(args.workers)
    netlab.require_root_or_skip("the compare end-to-end test")

    lab = netlab.Lab("stc")
    workdir = subprocess.run(["mktemp", "-d", "/tmp/st-compare-XXXXXX"], capture_output=True, text=True).stdout.strip()
    try:
        cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, node_if = lab.link(cli, node, ["198.18.0.1/24"], ["198.18.0.2/24"], "c")
        lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        lab.hosts_file(node, {"shop-mirror": "198.18.1.2", "shop-secondary": "198.18.1.2"})
        secondary, tls_args = f"shop-secondary:{PORT + 1}", []
        if args.secondary_tls:
            cert, key = os.path.join(workdir, "secondary.crt"), os.path.join(workdir, "secondary.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=shop-secondary", "-addext", "subjectAltName=DNS:shop-secondary",
                            "-keyout", key, "-out", cert], check=True, capture_output=True)
            secondary, tls_args = f"shop-secondary:8443;tls=true;tls-ca={cert}", ["--tls-cert", cert, "--tls-key", key]
        for ns, port, version, extra in ((node, PORT, "v1", []), (mir, PORT, "v2", []),
                                         (mir, 8443 if args.secondary_tls else PORT + 1, "v1", tls_args)):
            p = lab.spawn(ns, [PY, os.path.join(HERE, "compare_server.py"), "--port", str(port), "--version", version,
                               *extra], stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{version} server on :{port} did not start")

        diffs = os.path.join(workdir, "diffs.jsonl")
        st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, argv=[
            "--interface", node_if,
            "--rule", f"port={PORT},mirror=shop-mirror:{PORT},compare=true,secondary={secondary}",
            "--compare-output", diffs])
        total = CONNECTIONS * ROUNDS * 3
        r = lab.run(cli, [PY, "-c", CLIENT, str(CONNECTIONS), str(ROUNDS)], capture_output=True, text=True,
                    timeout=120)
        check(r.returncode == 0 and r.stdout.split() == [str(total), str(total)],
              f"the client got {total} responses from v1, all 200 ({r.stdout.strip()} {r.stderr.strip()[-300:]})")

        # Wait until every exchange has been compared.
        deadline, counts, metrics = time.time() + 30, {}, ""
        while time.time() < deadline:
            metrics = scrape(lab, node)
            counts = compare_counts(metrics)
            if sum(counts.values()) >= total:
                break
            time.sleep(0.2)
        users, orders, clock = check_endpoints(counts, metrics, total, CONNECTIONS * ROUNDS)
        check((metric(metrics, "shadowtap_kernel_egress_segments_copied_total") or 0) > 0,
              "the kernel copied response segments (egress)")

        egress = st.held_programs("st_capture_egr")
        check(len(egress) >= 1, f"shadowtap holds its egress program ({sorted(egress)})")
        rc = st.stop(signal.SIGTERM)
        log = st.text()
        check(rc == 0, f"shadowtap exited cleanly ({rc})")
        stats = st.stats()
        begun, compared = (stats.value("shadowtap_compare_exchanges_begun_total"),
                           stats.value("shadowtap_compare_exchanges_total"))
        check(begun == total and compared == total and "final: compare: " in log,
              f"the final counters count every exchange compared ({compared} of {begun}, {total} sent)")
        check(not loaded_programs(egress), "no egress program of ours left loaded")
        # With --secondary-tls the secondary speaks only HTTPS: its responses came over verified TLS.
        check("shadowtap_compare_exchanges_without_secondary_total" in stats.data and
              stats.value("shadowtap_compare_exchanges_without_secondary_total") == 0,
              "every exchange had the secondary's response (its noise known)")
        secondary_got = {o: stats.value("shadowtap_compare_secondary_requests_total", outcome=o)
                         for o in ("response", "error", "dropped")}
        check(secondary_got == {"response": total, "error": 0, "dropped": 0},
              f"the secondary answered all {total} requests ({secondary_got})")
        if args.secondary_tls:
            check("noise from shop-secondary:8443 over TLS" in log, "the rule's description says the secondary is TLS")
        check_workers(stats, args.workers)
        if args.workers > 1:
            per = [stats.value("shadowtap_worker_requests_total", worker=w) for w in range(args.workers)]
            # 4 connections: all on one worker one run in 8, so the spread is shown, not asserted.
            check(sum(per) == total, f"the workers decoded every request ({per} of {total}), all compared")

        check_diff_lines(diffs, users, orders, clock)

        # The report names exactly the two regressions and marks the timestamp as noise.
        html_path = os.path.join(workdir, "report.html")
        r = subprocess.run([args.shadowtap, "report", diffs, "-o", html_path], capture_output=True, text=True)
        check(r.returncode == 0, f"shadowtap report succeeded ({r.stderr.strip()})")
        page = Page()
        page.feed(open(html_path).read() if os.path.exists(html_path) else "")
        regressions = {s["endpoint"]: s["regressions"] for s in page.sections if s["regression"]}
        check(set(regressions) == {users, orders}, f"the report's regressions: {sorted(regressions)}")
        check("$.plan" in regressions.get(users, []), "the report names $.plan for users")
        check("status" in regressions.get(orders, []), "the report names the status for orders")
        time_sections = [s for s in page.sections if s["endpoint"] == clock]
        check(len(time_sections) == 1 and not time_sections[0]["regression"] and "$.now" in time_sections[0]["noisy"],
              "the report marks $.now of the time endpoint as noise, not as a regression")
    finally:
        lab.close()
        subprocess.run(["rm", "-rf", workdir])
    return finish("test_compare")


if __name__ == "__main__":
    sys.exit(main())
