#!/usr/bin/env python3
"""h2c (HTTP/2 cleartext) benchmark of shadowtap, run by `scripts/bench.sh h2` as root.

  impact    h2load at a fixed moderate rate: latency (median, p99, p99.9 of the
            per-request times in h2load's --log-file) and throughput with no
            shadowtap, with shadowtap mirroring to a healthy h2c mirror, and with
            the mirror down (nothing listening: connections refused)
  fidelity  share of the client's completed requests that the mirror answered,
            at increasing rates until it drops below 99 % (or the last rate);
            where the others were lost (shadowtap's counters); shadowtap CPU and
            peak RSS per rate
  grpc      gRPC-shaped requests (POST, content-type application/grpc, te:
            trailers, a length-prefixed message body) at the impact rate: latency
            without and with shadowtap, and the mirror's share

Hosts are network namespaces joined by veth pairs, addresses only from
198.18.0.0/15:

  client ns {tag}-c  c0 198.18.0.1 ──veth── s0 198.18.0.2  server ns {tag}-s
            (h2load)                         primary nghttpd --no-tls :8080,
                                             shadowtap (tcx) on s0 ingress, /metrics on 127.0.0.1
            mirror ns {tag}-m  m0 198.18.1.2 ──veth── s1 198.18.1.1 (server ns)
            mirror nghttpd --no-tls :8080

Both nghttpd serve the same small files (a 3-byte /hello, a 64-byte gRPC-ish
reply under /helloworld.Greeter/SayHello), one worker each. Every process is
started here and ended by its PID; the namespaces are deleted at exit (also on
SIGINT/SIGTERM); scripts/bench.sh deletes them again by tag if this process
was killed outright. Results go to OUT/h2.json.

`h2bench.py report OUT RESULTS.md` writes the "HTTP/2 cleartext" section of
RESULTS.md from OUT/h2.json (between marker comments, before the hand-written
analysis), so it survives report.py regenerating the rest of the file.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netbench  # noqa: E402
from netbench import cpu_seconds, proc_status  # noqa: E402
from report import fratio, fus, med  # noqa: E402

C_ADDR, S_ADDR, S_MADDR, M_ADDR = "198.18.0.1", "198.18.0.2", "198.18.1.1", "198.18.1.2"
PORT = 8080
METRICS = "127.0.0.1:9477"
AUTHORITY = f"service:{PORT}"
PLAIN_PATH = "/hello"
GRPC_PATH = "/helloworld.Greeter/SayHello"
BEGIN, END = "<!-- h2c-bench:begin -->", "<!-- h2c-bench:end -->"


def log(msg):
    print(f"[h2bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*args, check=True):
    return subprocess.run(args, check=check, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def percentile(sorted_xs, q):
    if not sorted_xs:
        return None
    i = min(len(sorted_xs) - 1, max(0, int(round(q * (len(sorted_xs) - 1)))))
    return sorted_xs[i]


class Lab(netbench.Lab):
    """netbench's three namespaces (client, server, mirror) and process handling,
    plus nghttpd's document root and shadowtap's binary."""

    def __init__(self, tag, shadowtap, workdir):
        super().__init__(tag, None, workdir)
        self.shadowtap_bin = shadowtap

    def setup(self):
        super().setup()
        docroot = os.path.join(self.dir, "docroot")
        os.makedirs(os.path.join(docroot, GRPC_PATH.strip("/").split("/")[0]))
        with open(os.path.join(docroot, PLAIN_PATH.lstrip("/")), "w") as f:
            f.write("ok\n")
        with open(os.path.join(docroot, GRPC_PATH.lstrip("/")), "wb") as f:
            msg = b"\x0a\x3a" + b"h" * 58  # field 1, 58 bytes: a 60-byte message
            f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
        self.docroot = docroot

    def stop(self, name, sig=signal.SIGTERM, timeout=20):
        return super().stop(name, sig, timeout)

    def start_nghttpd(self, name, ns, addr):
        self.spawn(name, ns, ["nghttpd", "--no-tls", "-n", "1", "-d", self.docroot, "-a", addr, str(PORT)],
                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, f"{name}.stderr"), "w"))
        self.wait_port(ns, addr, PORT)

    def mirror(self, up):
        """Healthy mirror, or down: nghttpd stopped, so connects are refused (RST)."""
        running = "mirror" in self.procs
        if up and not running:
            self.start_nghttpd("mirror", self.ns["m"], M_ADDR)
        elif not up and running:
            self.stop("mirror")

    def start_shadowtap(self, attach):
        logpath = os.path.join(self.dir, f"shadowtap-{time.monotonic_ns()}.log")
        f = open(logpath, "w")
        argv = [self.shadowtap_bin, "-i", self.if_s0, "--attach", attach,
                "--rule", f"port={PORT},mirror={M_ADDR}:{PORT}",
                "--metrics-address", METRICS, "--summary-interval", "0"]
        p = self.spawn("shadowtap", self.ns["s"], argv, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"shadowtap exited at start: {open(logpath).read()[-2000:]}")
            if "mirroring TCP port" in open(logpath).read():
                return p, logpath
            time.sleep(0.05)
        raise RuntimeError("shadowtap did not attach within 15 s")

    def scrape(self):
        r = self.run(self.ns["s"], ["curl", "-s", "--max-time", "5", f"http://{METRICS}/metrics"],
                     capture_output=True, timeout=20)
        out = {}
        for line in r.stdout.splitlines():
            mm = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
            if mm:
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', mm.group(2) or ""))
                out[(mm.group(1), labels)] = float(mm.group(3))
        return out


def total(metrics, name, **want):
    return sum(v for (n, labels), v in metrics.items()
               if n == name and all((k, str(x)) in labels for k, x in want.items()))


H2_OUTCOMES = ("response_2xx", "response_3xx", "response_4xx", "response_5xx", "response_other", "connect_error",
               "reset", "connection_error", "response_timeout", "rejected", "queue_full", "dropped_oldest",
               "rate_limited", "dropped_shutdown", "pool_unavailable")


def counters(mt):
    """The counters a request can end in, from one /metrics scrape, flat."""
    c = {
        "rule_requests": total(mt, "shadowtap_requests_total", rule=1),
        "rule_h2_requests": total(mt, "shadowtap_h2_requests_total", rule=1),
        "not_mirrored": total(mt, "shadowtap_requests_not_mirrored_total", rule=1),
        "h2_queue": total(mt, "shadowtap_mirror_queue_requests", rule=1, protocol="h2"),
        "h2_in_flight": total(mt, "shadowtap_mirror_in_flight_requests", rule=1, protocol="h2"),
        "all_outcomes": total(mt, "shadowtap_mirror_requests_total", rule=1),
        "all_queue": total(mt, "shadowtap_mirror_queue_requests", rule=1),
        "all_in_flight": total(mt, "shadowtap_mirror_in_flight_requests", rule=1),
        "kernel_records_lost": total(mt, "shadowtap_kernel_records_lost_total"),
        "kernel_truncated": total(mt, "shadowtap_kernel_segments_truncated_total"),
        "flow_gaps": total(mt, "shadowtap_flow_gaps_total"),
        "detected_h2": total(mt, "shadowtap_connections_detected_total", protocol="h2_prior_knowledge"),
        "detected_http1": total(mt, "shadowtap_connections_detected_total", protocol="http1"),
        "detected_midstream": total(mt, "shadowtap_connections_detected_total", protocol="midstream_http1"),
        "h2_conn_failed": total(mt, "shadowtap_h2_connections_failed_total"),
        "h2_streams_opened": total(mt, "shadowtap_h2_streams_opened_total"),
        "h2_invalid_frames": total(mt, "shadowtap_h2_invalid_frames_total"),
        "grpc_ok": total(mt, "shadowtap_mirror_grpc_responses_total", rule=1, status="ok"),
        "grpc_error": total(mt, "shadowtap_mirror_grpc_responses_total", rule=1, status="error"),
    }
    for o in ("request", "reset", "refused", "headers_too_large", "body_too_large", "buffer_full", "malformed",
              "abandoned"):
        c[f"stream_{o}"] = total(mt, "shadowtap_h2_streams_total", outcome=o)
    for o in H2_OUTCOMES:
        c[f"h2_{o}"] = total(mt, "shadowtap_mirror_requests_total", rule=1, protocol="h2", outcome=o)
    c["h2_answered"] = sum(c[f"h2_response_{k}"] for k in ("2xx", "3xx", "4xx", "5xx", "other"))
    # Every framed request of the rule is in exactly one place (the e2e test's invariant).
    c["accounted"] = c["not_mirrored"] + c["all_outcomes"] + c["all_queue"] + c["all_in_flight"]
    return c


def wait_drained(lab, timeout=5.0):
    """Scrapes until the h2 pool has nothing queued or in flight (or timeout)."""
    deadline = time.time() + timeout
    while True:
        mt = lab.scrape()
        c = counters(mt)
        if (c["h2_queue"] == 0 and c["h2_in_flight"] == 0) or time.time() >= deadline:
            return c
        time.sleep(0.2)


def h2load(lab, name, seconds, clients, streams, rps_per_client, grpc_body=None):
    logfile = os.path.join(lab.dir, f"{name}-{time.monotonic_ns()}.tsv")
    # A count of requests (-n), not a duration (-D): with -D, h2load counts as
    # "started" the requests it has queued when the time is up, and most of
    # them never reach the socket (in the run of 2026-12-06 shadowtap decoded
    # exactly the requests h2load had done in 25 of the 27 runs with it, up to
    # clients x streams short of "started"). With -n every request started is
    # sent and answered.
    total = max(clients * streams, int(round(rps_per_client * clients * seconds)))
    argv = ["h2load", "-n", str(total), "-c", str(clients), "-m", str(streams), "-t", "1",
            "--rps", str(rps_per_client), "-H", f":authority: {AUTHORITY}", f"--log-file={logfile}"]
    if grpc_body:
        argv += ["-d", grpc_body, "-H", "content-type: application/grpc", "-H", "te: trailers",
                 "-H", "grpc-timeout: 5S", f"http://{S_ADDR}:{PORT}{GRPC_PATH}"]
    else:
        argv += [f"http://{S_ADDR}:{PORT}{PLAIN_PATH}"]
    r = lab.run(lab.ns["c"], argv, capture_output=True, timeout=seconds + 60)
    out = r.stdout
    m_fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    m_req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", out)
    if not m_fin or not m_req:
        raise RuntimeError(f"h2load failed (rc {r.returncode}): {out[-1500:]}\n{r.stderr[-1500:]}")
    lat = []
    with open(logfile) as f:
        for ln in f:
            parts = ln.split("\t")
            if len(parts) >= 3 and parts[1].strip() == "200":
                lat.append(int(parts[2]))
    os.remove(logfile)
    lat.sort()
    wall = float(m_fin.group(1)) / (1000.0 if m_fin.group(2) == "ms" else 1.0)
    total_, started, done, ok, failed, errored, timeout = (int(x) for x in m_req.groups())
    return {"wall_s": wall, "rps": float(m_fin.group(3)), "total": total_, "started": started, "done": done,
            "succeeded": ok, "failed": failed, "errored": errored, "timeout": timeout,
            "p50_us": percentile(lat, 0.50), "p99_us": percentile(lat, 0.99), "p999_us": percentile(lat, 0.999),
            "mean_us": statistics.fmean(lat) if lat else None, "samples": len(lat)}


def measured(lab, args, case, name, seconds, clients, streams, rate, grpc_body=None):
    """One h2load run under `case` (none | ok | refused); shadowtap's counters, CPU, RSS."""
    lab.mirror(case != "refused")
    time.sleep(0.3)  # let the previous case's shadowtap exit (detach, free) settle first
    st = lab.start_shadowtap(args.attach) if case != "none" else None
    time.sleep(0.3)
    if st:
        c0, t0 = cpu_seconds(st[0].pid), time.time()
    res = h2load(lab, name, seconds, clients, streams, max(1, rate // clients), grpc_body)
    if st:
        c1, t1 = cpu_seconds(st[0].pid), time.time()
        c = wait_drained(lab, timeout=5.0 if case == "ok" else 1.0)
        mem = proc_status(st[0].pid)
        rc = lab.stop("shadowtap", signal.SIGINT)
        res["shadowtap"] = c
        res["shadowtap_exit"] = rc
        res["cpu_pct"] = 100.0 * (c1 - c0) / max(t1 - t0, 1e-9)
        res["peak_rss_kb"] = mem.get("VmHWM")
        # Denominator: requests h2load sent (started; with -n, all of them done).
        res["share"] = c["h2_answered"] / res["started"] if res["started"] else 0.0
        c["not_decoded"] = max(0, res["started"] - c["stream_request"])
        last = [ln for ln in open(st[1]).read().splitlines() if "final:" in ln]
        res["final_summary"] = last[-1][-600:] if last else ""
    return res


def fmt_run(key, r):
    s = (f"{key:16s} {r['rps']:8.0f} req/s, {r['succeeded']}/{r['total']} ok, p50 {r['p50_us']} us "
         f"p99 {r['p99_us']} us")
    if "shadowtap" in r:
        c = r["shadowtap"]
        s += (f" | mirror answered {c['h2_answered']:.0f} ({100 * r['share']:.2f} %), decoded "
              f"{c['stream_request']:.0f}, queue_full {c['h2_queue_full']:.0f}, connect_error "
              f"{c['h2_connect_error']:.0f}, CPU {r['cpu_pct']:.0f} %, peak RSS {r['peak_rss_kb']} kB")
    return s


def impact(lab, args):
    cases = ["none", "ok", "refused"]
    res = {k: [] for k in cases}
    for run in range(args.runs):
        for case in cases:
            r = measured(lab, args, case, f"impact-{case}", args.seconds, args.clients, args.streams, args.rate)
            res[case].append(r)
            log(f"run {run + 1} impact {fmt_run(case, r)}")
    lab.mirror(True)
    return {"cases": cases, "results": res}


def fidelity(lab, args):
    steps = []
    for rate in args.rates:
        clients = max(args.clients, rate // 5000)
        runs = []
        for run in range(args.runs):
            r = measured(lab, args, "ok", f"fid-{rate}", args.fidelity_seconds, clients, args.fidelity_streams, rate)
            runs.append(r)
            log(f"run {run + 1} fidelity {fmt_run(str(rate) + ' req/s', r)}")
        steps.append({"rate": rate, "clients": clients, "streams": args.fidelity_streams, "runs": runs})
        share = med([r["share"] for r in runs])
        if share is not None and share < 0.99:
            log(f"share {100 * share:.2f} % < 99 % at {rate} req/s: stopping here")
            break
    return {"steps": steps}


def grpc(lab, args):
    body = os.path.join(lab.dir, "grpc-request.bin")
    msg = b"\x0a\x05world" + b"\x12\x80\x01" + b"g" * 128  # two fields, 139 bytes
    with open(body, "wb") as f:
        f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    cases = ["none", "ok"]
    res = {k: [] for k in cases}
    for run in range(args.runs):
        for case in cases:
            r = measured(lab, args, case, f"grpc-{case}", args.grpc_seconds, args.clients, args.streams, args.rate,
                         grpc_body=body)
            res[case].append(r)
            log(f"run {run + 1} grpc {fmt_run(case, r)}")
    return {"cases": cases, "body_bytes": os.path.getsize(body), "results": res}


# --- report ---
def ratio(runs, base, key):
    n = min(len(runs), len(base))
    return med([runs[i][key] / base[i][key] for i in range(n) if base[i].get(key) and runs[i].get(key) is not None])


def latency_table(out, part, labels):
    res = part["results"]
    base = res["none"]
    out.append("| case | req/s (median) | ratio | succeeded / total | p50 | ratio | p99 | ratio | p99.9 | ratio "
               "| share (mirror answered / sent) | shadowtap CPU | peak RSS | p99 of each run |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in part["cases"]:
        rs = res[case]
        ok = sum(r["succeeded"] for r in rs)
        tot = sum(r["total"] for r in rs)
        if case == "none":
            share = cpu = rss = ""
        else:
            share = f"{100 * med([r['share'] for r in rs]):.2f} %"
            cpu = f"{med([r['cpu_pct'] for r in rs]):.0f} %"
            rss = f"{med([r['peak_rss_kb'] for r in rs]) / 1024:.0f} MiB"
        out.append(f"| {labels[case]} | {med([r['rps'] for r in rs]):,.0f} | {fratio(ratio(rs, base, 'rps'))} | "
                   f"{ok:,} / {tot:,} | {fus(med([r['p50_us'] for r in rs]))} | {fratio(ratio(rs, base, 'p50_us'))} | "
                   f"{fus(med([r['p99_us'] for r in rs]))} | {fratio(ratio(rs, base, 'p99_us'))} | "
                   f"{fus(med([r['p999_us'] for r in rs]))} | {fratio(ratio(rs, base, 'p999_us'))} | {share} | "
                   f"{cpu} | {rss} | {', '.join(fus(r['p99_us']) for r in rs)} |")
    out.append("")


LOSS_KEYS = [("not_decoded", "sent but not decoded"), ("kernel_records_lost", "kernel records lost (ring full)"), ("flow_gaps", "flow gaps"),
             ("h2_conn_failed", "h2 connections failed"), ("stream_reset", "streams reset by client"),
             ("stream_buffer_full", "streams buffer_full"), ("stream_abandoned", "streams abandoned"),
             ("stream_malformed", "streams malformed"), ("h2_queue_full", "pool queue_full"),
             ("h2_dropped_oldest", "pool dropped_oldest"), ("h2_rate_limited", "pool rate_limited"),
             ("h2_pool_unavailable", "pool_unavailable"), ("h2_connect_error", "connect_error"),
             ("h2_reset", "mirror reset"), ("h2_connection_error", "connection_error"),
             ("h2_response_timeout", "response_timeout"), ("h2_rejected", "rejected"),
             ("h2_dropped_shutdown", "dropped_shutdown")]


def render(d, commands):
    out = [BEGIN, "## 6. HTTP/2 cleartext (h2c)\n"]
    out.append(f"_Measured {d['date']} by `{commands or 'python3 tests/bench/h2bench.py ...'}`; "
               f"machine: {d.get('machine', '?')}; load average before the run {d.get('loadavg', '?')}. "
               f"{d.get('note', '')}_\n")
    a = d["args"]
    out.append(f"Namespaces: client (h2load, one thread) → server (primary `nghttpd --no-tls`, 1 worker, serving a "
               f"3-byte file) with shadowtap (`--attach {a['attach']}`, one rule, defaults) on the server veth's "
               f"ingress → mirror namespace (the same `nghttpd`, 1 worker). h2load sends prior-knowledge h2c with "
               f"`:authority: {AUTHORITY}`; request times are h2load's `--log-file` per-request times (start of "
               f"request to end of response; h2load paces with `--rps` per client, so a stall delays later requests "
               f"rather than being charged from their due time). Baseline: **no shadowtap**, same run. "
               f"{a['runs']} runs, cases interleaved within each run; absolute values are medians over runs, ratios "
               f"are to the baseline of the same run, median over runs. **Share** = h2 responses counted by "
               f"shadowtap's pool (`shadowtap_mirror_requests_total{{protocol=\"h2\",outcome=~\"response_.*\"}}`, "
               f"scraped from /metrics once the pool has drained) / requests h2load sent (\"started\"; h2load runs "
               f"a count of requests, `-n` = rate × seconds, so every request started is sent and answered). A "
               f"response from "
               f"the mirror proves it received the request; the mirror nghttpd keeps no log of its own.\n")
    if d.get("impact"):
        im = d["impact"]
        out.append(f"### 6a. Production impact, `h2load -c {a['clients']} -m {a['streams']} --rps "
                   f"{a['rate'] // a['clients']}` ({a['rate']:,} req/s) for {a['seconds']:.0f} s\n")
        latency_table(out, im, {"none": "no shadowtap (baseline)", "ok": "shadowtap, mirror ok",
                                "refused": "shadowtap, mirror down (refused)"})
        base = im["results"]["none"]
        p99 = {k: ratio(im["results"][k], base, "p99_us") for k in ("ok", "refused")}
        spread = [r["p99_us"] for r in base if r["p99_us"]]
        out.append(f"- p99 with shadowtap: {fratio(p99['ok'])} of the baseline with the mirror ok, "
                   f"{fratio(p99['refused'])} with the mirror down. The baseline's own p99 ranged "
                   f"{fus(min(spread)) if spread else 'n/a'} – {fus(max(spread)) if spread else 'n/a'} across runs.")
        ref = im["results"]["refused"]
        out.append(f"- Mirror down: shadowtap counted (median per run) connect_error "
                   f"{med([r['shadowtap']['h2_connect_error'] for r in ref]):,.0f}, queue_full "
                   f"{med([r['shadowtap']['h2_queue_full'] for r in ref]):,.0f}, pool_unavailable "
                   f"{med([r['shadowtap']['h2_pool_unavailable'] for r in ref]):,.0f}, still queued/in flight at "
                   f"the scrape {med([r['shadowtap']['h2_queue'] + r['shadowtap']['h2_in_flight'] for r in ref]):,.0f}.")
        out.append("")
    if d.get("fidelity"):
        fd = d["fidelity"]
        out.append(f"### 6b. Fidelity, CPU and memory at increasing rates ({a['fidelity_seconds']:.0f} s per step, "
                   f"`-m {a['fidelity_streams']}`, mirror ok; stops after the first rate whose median is below "
                   f"99 %)\n")
        out.append("| rate asked | clients | achieved req/s | sent | decoded by shadowtap | mirror answered | "
                   "**share** | shadowtap CPU | peak RSS | losses counted (median per run, non-zero only) | "
                   "share of each run |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        best = first_below = None
        for st in fd["steps"]:
            rs = st["runs"]
            share = med([r["share"] for r in rs])
            losses = []
            for k, label in LOSS_KEYS:
                v = med([r["shadowtap"].get(k, 0) for r in rs])
                if v:
                    losses.append(f"{label} {v:,.0f}")
            out.append(f"| {st['rate']:,} | {st['clients']} | {med([r['rps'] for r in rs]):,.0f} | "
                       f"{med([r['started'] for r in rs]):,.0f} | "
                       f"{med([r['shadowtap']['stream_request'] for r in rs]):,.0f} | "
                       f"{med([r['shadowtap']['h2_answered'] for r in rs]):,.0f} | **{100 * share:.2f} %** | "
                       f"{med([r['cpu_pct'] for r in rs]):.0f} % | {med([r['peak_rss_kb'] for r in rs]) / 1024:.0f} MiB | "
                       f"{', '.join(losses) or 'none'} | {', '.join('%.2f %%' % (100 * r['share']) for r in rs)} |")
            if share >= 0.99 and first_below is None:
                best = st["rate"]
            elif share < 0.99 and first_below is None:
                first_below = st["rate"]
        out.append("")
        out.append(f"- Highest rate with a median share ≥ 99 %: **{best:,} req/s**." if best else
                   "- No rate reached a 99 % share.")
        short = [st for st in fd["steps"] if med([r["rps"] for r in st["runs"]]) < 0.95 * st["rate"]]
        for st in short:
            out.append(f"- At {st['rate']:,} req/s asked, h2load achieved only "
                       f"{med([r['rps'] for r in st['runs']]):,.0f}: the client, both nghttpd and shadowtap share "
                       f"{os.cpu_count()} CPUs and the machine is saturated there, so that step measures the machine "
                       f"as much as shadowtap.")
        if first_below:
            out.append(f"- Below 99 % from **{first_below:,} req/s**; the losses column says where they were counted.")
        else:
            out.append(f"- Still ≥ 99 % at the highest rate tried ({fd['steps'][-1]['rate']:,} req/s asked); "
                       f"the limit is above it (or h2load/the primary saturate first: compare achieved with asked).")
        out.append("")
    if d.get("grpc"):
        g = d["grpc"]
        out.append(f"### 6c. gRPC-shaped requests (POST `{GRPC_PATH}`, `content-type: application/grpc`, "
                   f"`te: trailers`, a {g['body_bytes']}-byte length-prefixed message; {a['rate']:,} req/s, "
                   f"{a['grpc_seconds']:.0f} s)\n")
        latency_table(out, g, {"none": "no shadowtap (baseline)", "ok": "shadowtap, mirror ok"})
        oks = g["results"]["ok"]
        out.append(f"- nghttpd answers with the file at the path (200, no `grpc-status` trailer), so shadowtap's "
                   f"gRPC status counters stay at {med([r['shadowtap']['grpc_ok'] + r['shadowtap']['grpc_error'] for r in oks]):.0f}; "
                   f"h2load cannot send request trailers, so the trailer path is covered by tests/e2e/test_h2.py, "
                   f"not here.")
        out.append("")
    if d.get("anomalies"):
        out.append("### Counters that did not add up\n")
        out.extend(f"- {x}" for x in d["anomalies"])
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def anomalies(d):
    """Checks that every request is accounted for; returns human-readable findings."""
    found = []
    groups = []
    for part in ("impact", "grpc"):
        if d.get(part):
            for case, rs in d[part]["results"].items():
                groups += [(f"{part}/{case} run {i + 1}", r) for i, r in enumerate(rs)]
    if d.get("fidelity"):
        for st in d["fidelity"]["steps"]:
            groups += [(f"fidelity {st['rate']} run {i + 1}", r) for i, r in enumerate(st["runs"])]
    for name, r in groups:
        c = r.get("shadowtap")
        if not c:
            continue
        if c["rule_requests"] != c["accounted"]:
            found.append(f"{name}: requests_total {c['rule_requests']:.0f} != not_mirrored + outcomes + queued + "
                         f"in flight {c['accounted']:.0f}")
        if c["stream_request"] != c["rule_h2_requests"]:
            found.append(f"{name}: h2 streams decoded {c['stream_request']:.0f} != rule h2 requests "
                         f"{c['rule_h2_requests']:.0f}")
        if c["stream_request"] > r["started"]:
            found.append(f"{name}: shadowtap decoded {c['stream_request']:.0f} requests, more than h2load started "
                         f"({r['started']})")
        if r.get("shadowtap_exit") not in (0, None):
            found.append(f"{name}: shadowtap exited with {r['shadowtap_exit']}")
    return found


def report(results_dir, dest):
    try:
        with open(os.path.join(results_dir, "h2.json")) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return 0
    try:
        with open(os.path.join(results_dir, "commands-h2.txt")) as f:
            commands = "; ".join(ln.strip() for ln in f if ln.strip())
    except OSError:
        commands = ""
    section = render(d, commands)
    text = open(dest).read() if os.path.exists(dest) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        # Before the hand-written analysis that report.py appends, else at the end.
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            first = open(os.path.join(here, "analysis.md")).readline().rstrip("\n")
        except OSError:
            first = ""
        at = text.find("\n" + first + "\n") if first else -1
        if at >= 0:
            text = text[:at + 1] + section + "\n" + text[at + 1:]
        else:
            text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    with open(dest, "w") as f:
        f.write(text)
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "report":
        if len(sys.argv) != 4:
            print("usage: h2bench.py report RESULTS_DIR RESULTS.md", file=sys.stderr)
            return 2
        return report(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="*", default=["impact", "fidelity", "grpc"],
                    help="impact, fidelity, grpc (default: all three)")
    ap.add_argument("--build", required=True, help="build dir holding agent/shadowtap")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=f"h2b{os.getpid() % 100000}")
    ap.add_argument("--attach", default="tcx", choices=["tc", "tcx", "xdp", "auto"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10, help="impact: h2load duration per case")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--rate", type=int, default=2000, help="impact/grpc: total req/s (split over the clients)")
    ap.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")],
                    default=[5000, 20000, 40000, 60000])
    ap.add_argument("--fidelity-seconds", type=float, default=3)
    ap.add_argument("--fidelity-streams", type=int, default=32)
    ap.add_argument("--grpc-seconds", type=float, default=4)
    ap.add_argument("--note", default="", help="free text for the RESULTS.md section")
    args = ap.parse_args()
    for p in args.parts:
        if p not in ("impact", "fidelity", "grpc"):
            ap.error(f"unknown part {p}")
    if os.geteuid() != 0:
        print("h2bench needs root (network namespaces, BPF)", file=sys.stderr)
        return 77
    for tool in ("h2load", "nghttpd", "curl"):
        if not shutil.which(tool):
            print(f"h2bench: {tool} missing (scripts/install-deps.sh: nghttp2-client, nghttp2-server, curl)",
                  file=sys.stderr)
            return 1
    binary = os.path.join(os.path.abspath(args.build), "agent", "shadowtap")
    if not os.access(binary, os.X_OK):
        print(f"h2bench: {binary} missing; build the shadowtap target first", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ver = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
    data = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args),
            "machine": f"{os.cpu_count()} CPUs ({cpu}), kernel {os.uname().release}, {ver}",
            "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]), "note": args.note}
    workdir = tempfile.mkdtemp(prefix="shadowtap-h2bench-")
    os.chmod(workdir, 0o755)
    lab = Lab(args.tag, binary, workdir)
    t0 = time.time()
    try:
        lab.setup()
        lab.start_nghttpd("primary", lab.ns["s"], S_ADDR)
        lab.mirror(True)
        for part in args.parts:
            log(f"--- {part}")
            data[part] = {"impact": impact, "fidelity": fidelity, "grpc": grpc}[part](lab, args)
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    data["elapsed_s"] = time.time() - t0
    data["anomalies"] = anomalies(data)
    for a in data["anomalies"]:
        log(f"anomaly: {a}")
    with open(os.path.join(args.out, "h2.json"), "w") as f:
        json.dump(data, f, indent=1)
    log(f"wrote {os.path.join(args.out, 'h2.json')} ({data['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
