#!/usr/bin/env python3
"""A slow mirror (issue 21): the fixed pool of 16 connections against the adaptive pool
(the defaults: 16 to 1024 as the mirror's latency needs), at a constant production rate
to a mirror that answers after 200 ms (nginx, echo_sleep 0.2). Run by scripts/bench.sh
(part `slow`) as root; the hosts are netbench.py's (namespaces, 198.18.0.0/15 only).

Per run, interleaved:
  none       no shadowtap: production latency with no mirroring
  fixed16    shadowtap --mirror-max-connections 16 (floor = max: the pool before #21)
  adaptive   shadowtap with the defaults
  gone       the mirror gone (packets to it vanish), shadowtap with the defaults:
             connect attempts while production runs

Reports per case: production p50/p99 (rate_client, open loop, from each request's due
time), requests delivered to the mirror (distinct unique paths in its access log, with
the right Host and length, by 3 s after the load plus the 2 s drain at exit), agent CPU over the load, peak RSS, most connections open,
connect attempts. Writes OUT/slow.json and prints a Markdown table.

Usage: slowbench.py --build build-bench --out build-bench/bench-results [--runs 3]
       [--seconds 5] [--rate 2000] [--conns 32] [--gone-seconds 5]
"""
import argparse
import json
import os
import shutil
import subprocess
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netbench  # noqa: E402
from netbench import HOST, PRIMARY_PORT, Lab, count_mirror, cpu_seconds, log, proc_status, rate_client  # noqa: E402

# After the load, time given to the agent before SIGINT (which drains for 2 s more).
GRACE_S = 3.0
CASES = {
    "fixed16": ("--mirror-max-connections", "16"),
    "adaptive": (),
}


def stats_value(logpath, name, **labels):
    try:
        with open(logpath + ".stats.json") as f:
            stats = json.load(f)
    except (OSError, ValueError):
        return 0
    return int(sum(s.get("value", 0) for s in stats.get(name, {}).get("samples", [])
                   if all(s["labels"].get(k) == v for k, v in labels.items())))


def wait_delivered(logpath, offset, prefix, expect_len, want, grace=GRACE_S):
    """Gives the agent up to `grace` seconds after the load to deliver what it holds (less
    once everything arrived): the same for every case, so a pool that cannot keep up is not
    credited with draining its queue for as long as it likes."""
    deadline = time.time() + grace
    while time.time() < deadline and count_mirror(logpath, offset, prefix, expect_len)[0] < want:
        time.sleep(0.2)


def loaded(lab, st, seconds, rate, conns, prefix):
    """rate_client against the primary while the agent's stats are sampled: (client, cpu %, peak conns, peak RSS kB)."""
    out = os.path.join(lab.dir, f"rate-{time.monotonic_ns()}.json")
    argv = [os.path.join(lab.build, "tests", "bench", "rate_client"), "--addr", netbench.S_ADDR,
            "--port", str(PRIMARY_PORT), "--rate", str(rate), "--duration", str(seconds), "--connections", str(conns),
            "--host", HOST, "--drain-ms", "3000", "--json", out]
    if prefix:
        argv += ["--unique", "--path", prefix]
    p = subprocess.Popen(["ip", "netns", "exec", lab.ns["c"], *argv], stdout=subprocess.DEVNULL)
    pid = st[0].pid if st else None
    cpu0, t0 = (cpu_seconds(pid), time.time()) if pid else (0, 0)
    peak_conns = 0
    cpu1, t1 = cpu0, t0
    while p.poll() is None:
        time.sleep(0.5)
        if pid:
            peak_conns = max(peak_conns, stats_value(st[1], "shadowtap_mirror_connections"))
            if time.time() - t0 <= seconds + 0.1:
                cpu1, t1 = cpu_seconds(pid), time.time()  # over the load, not the client's drain
    rss = proc_status(pid).get("VmHWM", 0) if pid else 0
    with open(out) as f:
        rc = json.load(f)
    return rc, (100.0 * (cpu1 - cpu0) / max(t1 - t0, 1e-9)) if pid else 0.0, peak_conns, rss


def expect_len_of(prefix):
    def expect_len(seq):
        req = (f"GET {prefix}/{seq} HTTP/1.1\r\nHost: {HOST}\r\n"
               "User-Agent: shadowtap-rate-client\r\nAccept: */*\r\n\r\n")
        return len(req) + len("-shadow")
    return expect_len


def run_case(lab, args, run, case):
    netbench.set_state(lab, "slow")
    logpath = lab.mirror_log()
    prefix = f"/s{run}{case}"
    st = None if case == "none" else lab.start_shadowtap(extra=("--summary-interval", "1", *CASES[case]))
    offset = os.path.getsize(logpath) if os.path.exists(logpath) else 0
    rc, cpu, peak, rss = loaded(lab, st, args.seconds, args.rate, args.conns, prefix)
    res = {"client": rc, "sent": rc["sent"]}
    if st:
        wait_delivered(logpath, offset, prefix, expect_len_of(prefix), rc["sent"])
        _, counters, _ = lab.stop_shadowtap("shadowtap", st[1])  # SIGINT: 2 s drain (--drain-timeout-ms)
        time.sleep(0.3)
        delivered = count_mirror(logpath, offset, prefix, expect_len_of(prefix))[0]
        res.update(delivered=delivered, share=delivered / max(rc["sent"], 1), cpu_pct=cpu, peak_conns=peak,
                   rss_kb=rss, connects=stats_value(st[1], "shadowtap_mirror_connect_attempts_total"),
                   holds=stats_value(st[1], "shadowtap_mirror_growth_holds_total"), shadowtap=counters)
        log(f"run {run + 1} {case:9s} p99 {rc['p99_us'] / 1000:7.2f} ms, delivered {delivered}/{rc['sent']} "
            f"({100 * res['share']:.1f} %), CPU {cpu:.1f} %, RSS {rss / 1024:.1f} MiB, up to {peak} connections, "
            f"{res['connects']} connects, queue_full {counters.get('queue_full')}")
    else:
        log(f"run {run + 1} {case:9s} p99 {rc['p99_us'] / 1000:7.2f} ms (no shadowtap)")
    return res


def run_gone(lab, args, run):
    netbench.set_state(lab, "gone")
    st = lab.start_shadowtap(extra=("--summary-interval", "1"))
    rc, cpu, peak, rss = loaded(lab, st, args.gone_seconds, args.rate, args.conns, None)
    connects_load = stats_value(st[1], "shadowtap_mirror_connect_attempts_total")
    _, counters, _ = lab.stop_shadowtap("shadowtap", st[1])
    res = {"client": rc, "cpu_pct": cpu, "peak_conns": peak, "rss_kb": rss,
           "connects_during_load": connects_load,
           "connects": stats_value(st[1], "shadowtap_mirror_connect_attempts_total"),
           "holds": stats_value(st[1], "shadowtap_mirror_growth_holds_total"), "shadowtap": counters}
    log(f"run {run + 1} gone      p99 {rc['p99_us'] / 1000:7.2f} ms, {connects_load} connects during "
        f"{args.gone_seconds} s of load ({res['connects']} until exit), up to {peak} connections, "
        f"{res['holds']} growth holds")
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(data):
    runs = data["results"]
    base_p99 = med([r["client"]["p99_us"] for r in runs["none"]])
    rows = ["| case | production p99 (ms) | p99 vs none | delivered to the mirror | agent CPU | peak RSS "
            "| connections (most open) | connects |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case in ("none", "fixed16", "adaptive", "gone"):
        rs = runs.get(case, [])
        if not rs:
            continue
        p99 = med([r["client"]["p99_us"] for r in rs])
        ratio = f"{p99 / base_p99:.2f}x" if base_p99 else "n/a"
        if case == "none":
            rows.append(f"| none (no shadowtap) | {p99 / 1000:.2f} | 1.00x | | | | | |")
            continue
        share = f"{100 * med([r['share'] for r in rs]):.1f} %" if case != "gone" else "(gone)"
        rows.append(f"| {case} | {p99 / 1000:.2f} | {ratio} | {share} | {med([r['cpu_pct'] for r in rs]):.1f} % "
                    f"| {med([r['rss_kb'] for r in rs]) / 1024:.1f} MiB | {med([r['peak_conns'] for r in rs]):.0f} "
                    f"| {med([r.get('connects_during_load', r['connects']) for r in rs]):.0f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=f"ssb{os.getpid() % 100000}")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--gone-seconds", type=float, default=5)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=32)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("slowbench needs root (network namespaces, BPF)", file=sys.stderr)
        return 77
    if not shutil.which("nginx") or not os.path.exists(netbench.ECHO_MODULE):
        print("slowbench: nginx or its echo module missing (scripts/install-deps.sh)", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="shadowtap-slowbench-")
    os.chmod(workdir, 0o755)
    lab = Lab(args.tag, os.path.abspath(args.build), workdir)
    results = {"none": [], "fixed16": [], "adaptive": [], "gone": []}
    try:
        lab.setup()
        lab.start_primary()
        for run in range(args.runs):
            for case in ("none", "fixed16", "adaptive"):
                results[case].append(run_case(lab, args, run, case))
            results["gone"].append(run_gone(lab, args, run))
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    data = {"runs": args.runs, "seconds": args.seconds, "gone_seconds": args.gone_seconds, "rate": args.rate,
            "conns": args.conns, "mirror_latency_ms": 200, "results": results}
    netbench.save(args.out, "slow", data)
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
