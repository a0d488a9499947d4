#!/usr/bin/env python3
"""What --tls costs an HTTPS primary under load (issue 18): the primary's closed-loop
throughput and p99 with and without shadowtap's uprobes. Run by scripts/bench.sh (part
`tls`, after tls_bench's ns per SSL_read) as root; the hosts are netbench.py's
(namespaces, 198.18.0.0/15 only).

nginx (1 worker) serves HTTPS on 198.18.0.2:8443 with a self-signed certificate;
wrk (closed loop, keep-alive, `-t1 -cN`) loads it from the client namespace through
a COPY of libssl.so.3 (LD_LIBRARY_PATH): the uprobes are on the node's library
file, and a real client is on another machine, so only the primary pays for them.
Per run, interleaved:
  none      no shadowtap
  probes    shadowtap --tls, its rule on another port: every SSL_read/SSL_write of
            nginx traps into the uprobes, no connection is followed
  mirror    shadowtap --tls with a rule on 8443 mirroring to a live nginx mirror:
            followed, plaintext copied, requests sent to the mirror
Reports per case: median req/s and p99 over the runs, and the median of each run's
ratio to that run's `none`; for `mirror`, the requests the mirror logged against
those wrk completed, and the agent's counters. Writes OUT/tlsload.json and prints a
Markdown table (written up by hand in tests/bench/analysis.md, section 9).

Usage: tlsload.py --build build-bench --out build-bench/bench-results [--runs 3]
       [--seconds 5] [--conns 16]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netbench import S_ADDR, Lab, cpu_seconds, log, save  # noqa: E402
from slowbench import stats_value  # noqa: E402

TLS_PORT = 8443
CASES = ("none", "probes", "mirror")
LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


def start_primary(lab):
    d = lab.dir
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=service",
                    "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"], check=True, capture_output=True)
    body = (f"ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n"
            '    location / { return 200 "primary ok\\n"; }')
    lab.start_nginx("primary", lab.ns["s"], f"listen {S_ADDR}:{TLS_PORT} ssl backlog=16384;", body,
                    port_check=(S_ADDR, TLS_PORT))


def wrk_https(lab, libdir, seconds, conns):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_report.lua")
    r = lab.run(lab.ns["c"], ["env", f"LD_LIBRARY_PATH={libdir}", "wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s",
                              "--timeout", "10s", "-H", "Host: service", "-s", script,
                              f"https://{S_ADDR}:{TLS_PORT}/"], capture_output=True)
    for ln in reversed(r.stdout.splitlines()):
        if ln.startswith("{"):
            return json.loads(ln)
    raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")


def mirror_lines(lab):
    try:
        with open(lab.mirror_log(), "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def run_case(lab, args, libdir, case):
    st = None
    if case != "none":
        # probes: the rule on a port nothing serves; mirror: on the primary's.
        st = lab.start_shadowtap(extra=("--tls", "--summary-interval", "0"),
                                 port=TLS_PORT if case == "mirror" else 9)
    before = mirror_lines(lab)
    c0, t0 = (cpu_seconds(st[0].pid), time.time()) if st else (0, 0)
    w = wrk_https(lab, libdir, args.seconds, args.conns)
    c1, t1 = (cpu_seconds(st[0].pid), time.time()) if st else (0, 0)
    out = {"rps": w["rps"], "p50_us": w["p50_us"], "p99_us": w["p99_us"], "requests": w["requests"],
           "errors": sum(v for k, v in w.items() if k.startswith("errors_"))}
    if st:
        if case == "mirror":  # what is still queued reaches the mirror (bounded wait)
            deadline = time.time() + 5
            last = -1
            while time.time() < deadline and mirror_lines(lab) != last:
                last = mirror_lines(lab)
                time.sleep(0.5)
        rc = lab.stop("shadowtap", signal.SIGINT, timeout=20)
        log_text = open(st[1]).read()
        out.update({
            "agent_cpu_pct": 100.0 * (c1 - c0) / max(t1 - t0, 1e-9),
            "exit": rc,
            "tls_followed": stats_value(st[1], "shadowtap_kernel_tls_connections_total", outcome="followed"),
            "tls_no_rule": stats_value(st[1], "shadowtap_kernel_tls_connections_total", outcome="no_rule"),
            "tls_calls_copied": stats_value(st[1], "shadowtap_kernel_tls_calls_copied_total"),
            "records_lost": stats_value(st[1], "shadowtap_kernel_records_lost_total"),
            "requests_parsed": stats_value(st[1], "shadowtap_http_requests_parsed_total"),
            "mirror_answered": stats_value(st[1], "shadowtap_mirror_requests_total", outcome="response_2xx"),
            "mirror_logged": mirror_lines(lab) - before,
            "log_errors": [ln for ln in log_text.splitlines() if "[error]" in ln][:5],
        })
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(res):
    base = res["none"]
    rows = {}
    for case in CASES:
        runs = res[case]
        rows[case] = {
            "rps": med([r["rps"] for r in runs]), "p99_us": med([r["p99_us"] for r in runs]),
            "rps_ratio": med([r["rps"] / b["rps"] for r, b in zip(runs, base)]),
            "p99_ratio": med([r["p99_us"] / b["p99_us"] for r, b in zip(runs, base)]),
            "all_rps": [round(r["rps"]) for r in runs],
        }
        if case == "mirror":
            # wrk counts responses inside its duration; the <= conns requests in flight when it
            # stops were sent (and mirrored) too, so the mirror may log a few more.
            rows[case]["mirror"] = {k: [r[k] for r in runs] for k in
                                    ("requests", "requests_parsed", "mirror_logged", "mirror_answered", "records_lost")}
        if case != "none":
            rows[case]["agent_cpu_pct"] = med([r["agent_cpu_pct"] for r in runs])
    return rows


def table(rows):
    out = ["| case | req/s (median) | ratio | p99 µs (median) | p99 ratio | agent CPU | all runs (req/s) |",
           "|---|---:|---:|---:|---:|---:|---|"]
    names = {"none": "no shadowtap (baseline)", "probes": "shadowtap --tls, not followed (rule on another port)",
             "mirror": "shadowtap --tls, followed and mirrored"}
    for case in CASES:
        r = rows[case]
        cpu = f"{r['agent_cpu_pct']:.0f} %" if "agent_cpu_pct" in r else "–"
        out.append(f"| {names[case]} | {r['rps']:,.0f} | {r['rps_ratio']:.2f}× | {r['p99_us']:,.0f} | "
                   f"{r['p99_ratio']:.2f}× | {cpu} | {', '.join(f'{x:,}' for x in r['all_rps'])} |")
    m = rows["mirror"].get("mirror")
    if m:
        out.append(f"\n`mirror` runs: wrk completed {m['requests']}, shadowtap framed {m['requests_parsed']}, the "
                   f"mirror logged {m['mirror_logged']} and answered {m['mirror_answered']} 2xx; records lost "
                   f"{m['records_lost']} (wrk does not count the requests in flight when it stops).")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=f"stl{os.getpid() % 100000}")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("tlsload.py: needs root (BPF, network namespaces)", file=sys.stderr)
        return 1
    for tool in ("nginx", "wrk", "openssl"):
        if not shutil.which(tool):
            print(f"tlsload.py: {tool} not installed (scripts/install-deps.sh --bench)", file=sys.stderr)
            return 1
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="st-tlsload-")
    lab = Lab(args.tag, args.build, workdir)
    try:
        lab.setup()
        libdir = os.path.join(workdir, "client-lib")
        os.makedirs(libdir)
        shutil.copy(LIBSSL, libdir)  # the client's own copy: not probed
        start_primary(lab)
        lab.start_mirror()
        res = {c: [] for c in CASES}
        for run in range(args.runs):
            for case in CASES:
                r = run_case(lab, args, libdir, case)
                res[case].append(r)
                extra = (f" followed {r['tls_followed']} copied {r['tls_calls_copied']} lost {r['records_lost']}"
                         f" mirror logged {r['mirror_logged']}" if case != "none" else "")
                log(f"run {run + 1} {case:7s} {r['rps']:9.0f} req/s p99 {r['p99_us']:8.0f} us "
                    f"errors {r['errors']}{extra}")
        rows = summarize(res)
        save(args.out, "tlsload", {"runs": args.runs, "seconds": args.seconds, "conns": args.conns,
                                   "loadavg": open("/proc/loadavg").read().split()[:3], "summary": rows,
                                   "results": res})
        print(table(rows))
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
