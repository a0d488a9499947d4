#!/usr/bin/env python3
"""Writes tests/bench/RESULTS.md from the JSON files scripts/bench.sh leaves in
its results directory (meta.json, kernel.json, pipeline.json, impact.json,
fidelity.json, memory.json, workers.json, io.json, commands-<part>.txt). Parts without a file are reported as
not run. tests/bench/analysis.md (hand-written: profiles, before/after) is
appended as is.

Usage: report.py RESULTS_DIR OUTPUT.md
"""
import json
import os
import statistics
import sys
import time

GOAL_SMALL_RPS = 1_000_000
GOAL_BARE_RATIO = 3.0
GOAL_P99 = 1.05
# Issue 16: agent CPU per mirrored request at 20,000 req/s (CPU-seconds per million
# requests, i.e. CPU-microseconds per request), 10,000 idle connections' peak RSS,
# and the replay benchmark's scaling from 1 to 2 workers.
GOAL_CPU_RATE = 20000
GOAL_CPU_US = 3.0
GOAL_IDLE_MIB = 64
GOAL_SCALING = 1.8


def load(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fnum(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def fus(us):
    if us is None:
        return "n/a"
    if us >= 10_000:
        return f"{us / 1000:,.0f} ms"
    if us >= 1000:
        return f"{us / 1000:,.2f} ms"
    return f"{us:,.0f} µs"


def fratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def kernel_section(k, out, summary):
    out.append("## 1. Kernel cost per packet\n")
    if not k:
        out.append("Not run in this invocation (needs root).\n")
        return
    out.append(f"`kernel_bench`: `bpf_prog_test_run_opts` on a TCP/IPv4 frame, {k['repeat']:,} repeats per run, "
               f"{k['runs']} runs interleaved, median. The ring buffer (64 MiB) is drained between batches, so "
               f"it never fills: copied {k['copied']:,} of {k['expected_copied']:,} expected, ringbuf_full "
               f"{k['ringbuf_full']}. Baseline: the do-nothing TC program (one array-map increment) in the same run.\n")
    base = k["cases"][0]["ns"]
    out.append("| case | frame | ns/packet (median) | ratio to do-nothing | added ns | all runs (ns) |")
    out.append("|---|---:|---:|---:|---:|---|")
    for c in k["cases"]:
        out.append(f"| {c['name']} | {c['frame_bytes']} B | {c['ns']:.1f} | {c['ns'] / base:.2f}× | "
                   f"{c['ns'] - base:+.1f} | {', '.join(f'{x:.0f}' for x in c['all_ns'])} |")
    out.append("")
    by = {c["name"]: c["ns"] for c in k["cases"]}
    names = [c["name"] for c in k["cases"]]
    summary.append(f"In the kernel, an unmatched packet costs {by[names[1]]:.0f} ns and a copied 64 B / 1460 B "
                   f"segment {by[names[3]]:.0f} / {by[names[4]]:.0f} ns, against {base:.0f} ns for a "
                   f"do-nothing TC program ({by[names[1]] / base:.1f}× / {by[names[3]] / base:.1f}× / "
                   f"{by[names[4]] / base:.1f}×).")


def pipeline_section(p, out, summary, misses):
    out.append("## 2. Pipeline throughput (one core)\n")
    if not p:
        out.append("Not run in this invocation.\n")
        return
    out.append(f"`pipeline_bench`: a synthetic capture of 512 keep-alive connections open at once (100 requests "
               f"each, then FIN and a new connection), segments of at most 1448 payload bytes taken round-robin "
               f"over the connections, payloads laid out in capture order in one buffer like ring-buffer "
               f"records. Fed as `flow::Segment`s through `flow::FlowTable` → `http::RequestFramerFactory` → "
               f"`http::hostHasSuffix` + `http::takeRewrittenRequest` (exactly what `Pipeline::onRequest` does "
               f"before queueing) into a sink that only counts. Baseline: bare `llhttp_execute` over the same "
               f"request bytes, back to back in one contiguous buffer, with only an `on_message_complete` "
               f"counter. {p['runs']} runs interleaved, median; the ratio is pipeline time / bare-parse time "
               f"(lower is better, goal ≤ {GOAL_BARE_RATIO:.0f}×).\n")
    out.append("| workload | requests | MB | bare llhttp req/s | bare MB/s | **pipeline req/s** | **pipeline MB/s** "
               "| **time vs bare** | time vs bare + one copy | flow only MB/s | flow + framing req/s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in p["workloads"]:
        n, mb = w["requests"], w["bytes"] / 1e6
        out.append(f"| {w['name']} | {n:,} | {mb:.0f} | {n / w['bare_s']:,.0f} | {mb / w['bare_s']:,.0f} | "
                   f"**{n / w['full_s']:,.0f}** | **{mb / w['full_s']:,.0f}** | **{w['full_s'] / w['bare_s']:.2f}×** | "
                   f"{w['full_s'] / w.get('bare_copy_s', w['bare_s']):.2f}× | "
                   f"{mb / w['flow_s']:,.0f} | {n / w['framing_s']:,.0f} |")
    out.append("")
    small = p["workloads"][0]
    rps = small["requests"] / small["full_s"]
    ratio = small["full_s"] / small["bare_s"]
    worst = max(p["workloads"], key=lambda w: w["full_s"] / w["bare_s"])
    lines = []
    lines.append(f"- Goal ≥ {GOAL_SMALL_RPS:,} small requests/s/core: **{'met' if rps >= GOAL_SMALL_RPS else 'MISSED'}** "
                 f"({rps:,.0f}).")
    for w in p["workloads"]:
        r = w["full_s"] / w["bare_s"]
        lines.append(f"- Goal within {GOAL_BARE_RATIO:.0f}× of bare parse, {w['name']}: "
                     f"**{'met' if r <= GOAL_BARE_RATIO else 'MISSED'}** ({r:.2f}×).")
        if r > GOAL_BARE_RATIO:
            misses.append(f"pipeline is {r:.1f}× the bare-parse time on '{w['name']}' (goal ≤ 3×)")
    if any(not w.get("counts_ok", True) for w in p["workloads"]):
        lines.append("- **Request counts did not match** between generator, bare parse and pipeline: see the log.")
    lines.append("- Bare llhttp never touches body bytes when no `on_body` callback is set (it only advances "
                 "past Content-Length), so on 16 KiB bodies it runs at memory-bandwidth-free speed; any mirror must "
                 "at least copy the request once, hence the second ratio against bare parse + one "
                 "`std::string` copy per request (timed separately, same run).")
    out.extend(lines)
    out.append("")
    summary.append(f"The user-space pipeline (reassembly → framing → Host rewrite) handles {rps / 1e6:.2f} M small "
                   f"requests/s on one core ({ratio:.2f}× the bare llhttp time), and "
                   f"{worst['requests'] / worst['full_s']:,.0f} req/s on its worst workload ('{worst['name']}', "
                   f"{worst['full_s'] / worst['bare_s']:.1f}× bare llhttp, which skips body bytes without touching them).")


def impact_section(im, out, summary, misses):
    out.append("## 3. Production impact\n")
    if not im:
        out.append("Not run in this invocation (needs root).\n")
        return
    out.append(f"Namespaces: client (wrk, `rate_client`) → server (primary nginx, 1 worker, `return 200`) with "
               f"shadowtap on the server veth's ingress; mirror nginx in a third namespace. Cases: **none** (no "
               f"mirroring), **shadowtap** (100 % to the mirror), **nginx-mirror** (an nginx reverse proxy, 1 worker, "
               f"in front of the primary with `mirror` to the same mirror; `proxy_connect_timeout 1s`, "
               f"`proxy_read_timeout 5s`, i.e. shadowtap's defaults). Mirror states: **ok**, **slow** (nginx "
               f"`echo_sleep 0.2`: answers after 200 ms), **gone** (mirror stopped and its address removed, a "
               f"permanent neighbour entry on the server: packets to it are silently dropped, no RST, no ICMP). "
               f"Per case and run: `wrk -t1 -c{im['conns']} -d{im['seconds']:.0f}s` (closed loop: throughput), "
               f"then `rate_client` at a constant {im['rate']:,} req/s over {im['conns']} keep-alive connections "
               f"for {im['seconds']:.0f} s (open loop, latency from each request's due time, so stalls are "
               f"charged in full). {im['runs']} runs, each run measures every case in the order shown; ratios "
               f"are to **none** of the same run, median over runs; absolute values are medians.\n")
    res = im["results"]
    base = res["none/ok"]
    out.append(f"| case / mirror | wrk req/s | ratio | wrk p99 | p50 @ {im['rate']:,}/s | ratio | p99 | ratio | "
               f"p99.9 | ratio | completed | shadowtap CPU (wrk / const) | shadowtap queue_full, mirror errors |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    p99_ratios = {}
    for key in im["cases"]:
        r = res[key]
        n = min(len(r["wrk"]), len(base["wrk"]))

        def ratio(metric, src):
            return med([r[src][i][metric] / base[src][i][metric] for i in range(n) if base[src][i][metric]])

        wrps = med([x["rps"] for x in r["wrk"]])
        p50 = med([x["p50_us"] for x in r["rate"]])
        p99 = med([x["p99_us"] for x in r["rate"]])
        p999 = med([x["p999_us"] for x in r["rate"]])
        done = f"{sum(x['completed'] for x in r['rate']):,}/{sum(x['sent'] + x['unsent'] for x in r['rate']):,}"
        p99r = ratio("p99_us", "rate")
        p99_ratios[key] = p99r
        st = r.get("shadowtap") or []
        if st:
            cpu = f"{med([c.get('cpu_pct_wrk') for c in st]):.0f} % / {med([c.get('cpu_pct_rate') for c in st]):.0f} %"
            qf = f"{med([c.get('queue_full', 0) for c in st]):,.0f}, {med([c.get('mirror.errors', 0) for c in st]):,.0f}"
        else:
            cpu, qf = "", ""
        out.append(f"| {key} | {fnum(wrps)} | {fratio(ratio('rps', 'wrk'))} | {fus(med([x['p99_us'] for x in r['wrk']]))} | "
                   f"{fus(p50)} | {fratio(ratio('p50_us', 'rate'))} | {fus(p99)} | {fratio(p99r)} | {fus(p999)} | "
                   f"{fratio(ratio('p999_us', 'rate'))} | {done} | {cpu} | {qf} |")
    out.append("")
    st_keys = [k for k in im["cases"] if k.startswith("shadowtap/")]
    ok = all(p99_ratios[k] is not None and p99_ratios[k] <= GOAL_P99 for k in st_keys)
    out.append(f"- Goal: shadowtap's p99 (constant rate) within 5 % of no mirroring in every mirror state: "
               f"**{'met' if ok else 'MISSED'}** ("
               + ", ".join(f"{k.split('/')[1]} {fratio(p99_ratios[k])}" for k in st_keys) + ").")
    bp99 = [x["p99_us"] for x in base["rate"]]
    spread = max(bp99) / min(bp99) if bp99 and min(bp99) > 0 else None
    if spread is not None and spread > GOAL_P99:
        out.append(f"- **Caveat: the no-mirroring baseline's own p99 varied {spread:.1f}× between runs "
                   f"({', '.join(fus(x) for x in bp99)})** on this shared 2-core machine, so a 5 % goal cannot "
                   f"be judged from these runs: ratios below 1.00× are noise, not a speed-up. What the table does "
                   f"show beyond noise is the difference in kind between shadowtap (same order as no mirroring in "
                   f"every mirror state) and nginx `mirror` (seconds with a slow or gone mirror).")
        if ok:
            misses.append(f"shadowtap's p99 goal (within 5 %) could not be confirmed: the baseline p99 itself "
                          f"varied {spread:.1f}× between runs on this shared machine")
    if not ok:
        misses.append("shadowtap's p99 is more than 5 % above no mirroring in: " +
                      ", ".join(f"{k.split('/')[1]} ({fratio(p99_ratios[k])})" for k in st_keys
                                if p99_ratios[k] is None or p99_ratios[k] > GOAL_P99))
    wr = {k: med([res[k]["wrk"][i]["rps"] / base["wrk"][i]["rps"] for i in range(min(len(res[k]["wrk"]), len(base["wrk"])))])
          for k in im["cases"]}
    out.append("- Closed-loop throughput on this 2-core machine is bounded by CPU that wrk, the primary, "
               "shadowtap and the mirror nginx all share: the shadowtap and nginx-mirror rows with a working "
               "mirror include the mirror's own CPU, which a real deployment runs elsewhere.")
    out.append("")
    summary.append(
        f"In production, at a constant {im['rate']:,} req/s shadowtap's p99 is "
        + ", ".join(f"{fratio(p99_ratios[k])}" for k in st_keys)
        + " of no mirroring with the mirror ok / slow / gone, while nginx's in-path `mirror` gives "
        + ", ".join(f"{fratio(p99_ratios[k])}" for k in im["cases"] if k.startswith("nginx-mirror/"))
        + f"; closed-loop throughput is {fratio(wr.get('shadowtap/ok'))} / {fratio(wr.get('shadowtap/slow'))} / "
          f"{fratio(wr.get('shadowtap/gone'))} of no mirroring with shadowtap and "
          f"{fratio(wr.get('nginx-mirror/ok'))} / {fratio(wr.get('nginx-mirror/slow'))} / "
          f"{fratio(wr.get('nginx-mirror/gone'))} with nginx `mirror`.")


def fidelity_section(fd, out, summary, misses):
    out.append("## 4. Mirror fidelity\n")
    if not fd:
        out.append("Not run in this invocation (needs root).\n")
        return
    out.append(f"`rate_client` sends GETs with a unique path at constant rates for {fd['seconds']:.0f} s each "
               f"(keep-alive, max(32, rate/500) connections) to the primary; shadowtap (defaults) mirrors "
               f"100 %; it is stopped (SIGINT, drain ≤ 2 s) after each step. The mirror nginx logs "
               f"`$http_host $request_uri $request_length`; a request counts as delivered when its path arrives "
               f"with host `service-shadow` and exactly the original length + 7 (`-shadow`), i.e. byte-identical "
               f"except Host as far as nginx can tell. Share = distinct delivered / requests sent in production "
               f"(the baseline, same step). CPU = shadowtap's utime+stime over the step's wall time (100 % = one "
               f"core); CPU-s per million = its CPU time over the step / delivered requests × 10⁶ (= CPU-µs per "
               f"mirrored request). {fd['runs']} runs, median.\n")
    out.append("| rate (req/s) | achieved | sent | delivered | **share** | dup / bad | shadowtap CPU | CPU-s per million | "
               "ringbuf_full | flow gaps | dropped_by_gap | parse_errors | queue_full | mirror errors | dropped_shutdown |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_million = {}
    best_full, first_loss = None, None
    for rate in fd["rates"]:
        steps = fd["steps"][str(rate)]
        if not steps:
            continue
        share = med([s["share"] for s in steps])
        c = lambda k: fnum(med([s["shadowtap"].get(k, 0) for s in steps]))
        per_million[rate] = med([s["cpu_s"] / s["delivered"] * 1e6 for s in steps if s.get("delivered")])
        out.append(f"| {rate:,} | {fnum(med([s['client']['achieved_rps'] for s in steps]))} | "
                   f"{fnum(med([s['sent'] for s in steps]))} | {fnum(med([s['delivered'] for s in steps]))} | "
                   f"**{100 * share:.2f} %** | {fnum(med([s['dup'] for s in steps]))} / {fnum(med([s['bad'] for s in steps]))} | "
                   f"{med([s['cpu_pct'] for s in steps]):.0f} % | {fnum(per_million[rate], 1)} | "
                   f"{c('kernel.ringbuf_full')} | {c('flows.gaps')} | "
                   f"{c('http.dropped_by_gap')} | {c('http.parse_errors')} | {c('queue_full')} | {c('mirror.errors')} | "
                   f"{c('mirror.dropped_shutdown')} |")
        all_full = all(s["delivered"] == s["sent"] for s in steps)
        if all_full and first_loss is None:
            best_full = rate
        if not all_full and first_loss is None:
            first_loss = rate
    out.append("")
    out.append(f"- Highest rate with 100.0 % delivered in every run: **{fnum(best_full) if best_full else 'none'} req/s**; "
               f"loss begins at: **{fnum(first_loss) + ' req/s' if first_loss else 'not reached in the rates tried'}**.")
    # Per-run accounting of lost requests.
    lossy = [s for r in fd["rates"] for s in fd["steps"][str(r)] if s["delivered"] != s["sent"]]
    if lossy:
        out.append("- Lost requests and the counters that explain them (per run with loss):")
        for s in lossy:
            c = s["shadowtap"]
            lost = s["sent"] - s["delivered"]
            out.append(f"  - {s['rate']:,} req/s: lost {lost:,} of {s['sent']:,}; kernel ringbuf_full "
                       f"{c.get('kernel.ringbuf_full', 0):,} records, flow gaps {c.get('flows.gaps', 0):,}, "
                       f"http dropped_by_gap {c.get('http.dropped_by_gap', 0):,}, parse_errors "
                       f"{c.get('http.parse_errors', 0):,}, queue_full {c.get('queue_full', 0):,}, mirror errors "
                       f"{c.get('mirror.errors', 0):,}, dropped_shutdown {c.get('mirror.dropped_shutdown', 0):,}; "
                       f"shadowtap framed {c.get('http.requests', 0):,} and got {c.get('mirror.responses', 0):,} "
                       f"mirror responses.")
    out.append("")
    cpu = per_million.get(GOAL_CPU_RATE)
    if cpu is not None:
        out.append(f"- Agent CPU per mirrored request at {GOAL_CPU_RATE:,} req/s: **{cpu:.1f} CPU-s per million "
                   f"requests** (goal ≤ {GOAL_CPU_US:g}, issue 16; the figure before issue 16 was 12.2 on this "
                   f"kind of machine, 9.5 on a 16-core one).\n")
        summary.append(f"At {GOAL_CPU_RATE:,} req/s the agent spent {cpu:.1f} CPU-s per million mirrored requests.")
        if cpu > GOAL_CPU_US:
            misses.append(f"agent CPU per mirrored request at {GOAL_CPU_RATE:,} req/s is {cpu:.1f} µs "
                          f"(goal ≤ {GOAL_CPU_US:g}; where the time goes: analysis, sections 12 and 14)")
    summary.append(f"The mirror received 100.0 % of requests byte-identical except Host up to "
                   f"{fnum(best_full) if best_full else 'none'} req/s"
                   + (f", loss begins at {fnum(first_loss)} req/s (every lost request is in a counter, see §4)"
                      if first_loss else f" (no loss at any rate tried, up to {fnum(fd['rates'][-1])} req/s)") + ".")


def memory_section(m, out, summary, misses):
    out.append("## 5. Memory\n")
    if not m:
        out.append("Not run in this invocation (needs root).\n")
        return
    idle, outage = m["idle"], m["outage"]
    b, h = idle["before_kb"], idle["held_kb"]
    per_flow = (h.get("VmRSS", 0) - b.get("VmRSS", 0)) * 1024 / max(idle["connections"], 1)
    out.append(f"Peak RSS is `VmHWM` of `/proc/PID/status`; the baseline is the same process before the load. "
               f"shadowtap runs with its defaults (ring buffer 16 MiB, `--max-flows 65536`, `--max-buffer-mib 256`, "
               f"`--max-flow-buffer-mib 4`, `--mirror-queue 4096`, `--mirror-queue-mib 64`, "
               f"`--mirror-connections 16`).\n")
    out.append("| scenario | baseline RSS | RSS under load | peak RSS (VmHWM) | ratio peak / baseline | notes |")
    out.append("|---|---:|---:|---:|---:|---|")
    out.append(f"| {idle['connections']:,} idle connections, each with a partial request | {b.get('VmRSS', 0) / 1024:.1f} MiB | "
               f"{h.get('VmRSS', 0) / 1024:.1f} MiB | {h.get('VmHWM', 0) / 1024:.1f} MiB | "
               f"{h.get('VmHWM', 0) / max(b.get('VmRSS', 1), 1):.2f}× | {idle['client']}; flows active "
               f"{idle['flows_active_while_held']}; ≈ {per_flow:,.0f} B per tracked connection |")
    s, hk, ok = outage["start_kb"], outage["healthy_kb"], outage["outage_kb"]
    peak_sample = max((v for _, v in outage["rss_samples_kb"]), default=0)
    c = outage["counters_end_of_outage"]
    out.append(f"| {outage['seconds']} s mirror outage under {outage['rate']:,} req/s of {outage['body'] // 1024} KiB POSTs "
               f"| {s.get('VmRSS', 0) / 1024:.1f} MiB | {peak_sample / 1024:.1f} MiB (highest 1 s sample) | "
               f"{ok.get('VmHWM', 0) / 1024:.1f} MiB | {ok.get('VmHWM', 0) / max(s.get('VmRSS', 1), 1):.2f}× | "
               f"healthy phase peak {hk.get('VmHWM', 0) / 1024:.1f} MiB; during the outage queue_full "
               f"{c.get('queue_full', 0):,}, mirror errors {c.get('mirror.errors', 0):,} |")
    out.append("")
    out.append(f"RSS during the outage, 1 s samples (MiB): "
               + ", ".join(f"{v / 1024:.0f}" for _, v in outage["rss_samples_kb"]) + "\n")
    growth = (ok.get("VmHWM", 0) - s.get("VmRSS", 0)) / 1024
    out.append(f"- The outage grows RSS by {growth:.0f} MiB over the start, against a configured bound for the "
               f"queued requests of 64 MiB (`--mirror-queue-mib`) plus at most one request per mirror connection; "
               f"the RSS stays flat once the queue is full (new requests are dropped and counted as queue_full).")
    if outage["seconds"] < 60:
        out.append(f"- The outage was shortened from 1 minute to {outage['seconds']} s to keep the whole suite under "
                   f"10 minutes; the RSS samples above show it flat well before the end.")
    out.append("")
    if idle["connections"] >= 10000 and h.get("VmHWM", 0) / 1024 > GOAL_IDLE_MIB:
        misses.append(f"{idle['connections']:,} idle connections peaked at {h.get('VmHWM', 0) / 1024:.1f} MiB RSS "
                      f"(goal ≤ {GOAL_IDLE_MIB} MiB)")
    summary.append(f"shadowtap tracked {idle['connections']:,} idle connections in {h.get('VmHWM', 0) / 1024:.0f} MiB "
                   f"peak RSS (≈ {per_flow:,.0f} B each) and peaked at {ok.get('VmHWM', 0) / 1024:.0f} MiB during a "
                   f"{outage['seconds']} s mirror outage under load (bounded by the 64 MiB mirror queue).")


def workers_section(w, out, summary, misses):
    out.append("## 5b. Workers: the `replay` benchmark, 1 vs 2 workers\n")
    if not w:
        out.append("Not run in this invocation (needs root).\n")
        return
    n = w["workers"]
    rs = {k: w["results"][str(k)] for k in (1, n)}
    out.append(f"`workers_bench` runs the agent's per-worker pipeline (flow table, protocol sniffer and HTTP/1 framer, "
               f"router, the worker's own mirror pool, `--mirror-io {w['io']}`) with one thread per worker, fed by a "
               f"synthetic segment source ({w['connections']} keep-alive client connections split over the workers, "
               f"GETs back to back), into nginx (`return 200`, {w['nginx_processes']} worker process"
               f"{'es' if w['nginx_processes'] > 1 else ''}) in a network namespace; closed loop, every request "
               f"answered by the mirror. {w['runs']} runs of {w['seconds']:g} s, 1 and {n} workers alternating, "
               f"median. CPU-µs per request is the benchmark process's (workers, pools, source), not nginx's.\n")
    out.append("| workers | answered requests/s | per worker | CPU-µs per request | cores used by the process | "
               "mirror errors | dropped at submit |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for k in (1, n):
        r = rs[k]
        medians[k] = med([x["answered_per_s"] for x in r])
        out.append(f"| {k} | {fnum(medians[k])} | {fnum(medians[k] / k)} | "
                   f"{fnum(med([x['cpu_us_per_request'] for x in r]), 1)} | "
                   f"{fnum(med([x['cpu_cores_used'] for x in r]), 2)} | "
                   f"{fnum(sum(x['mirror_errors'] for x in r))} | {fnum(sum(x['submit_dropped'] for x in r))} |")
    scaling = medians[n] / medians[1] if medians[1] else None
    out.append("")
    line = f"- Scaling {n} vs 1 worker: **{fratio(scaling)}** (goal ≥ {GOAL_SCALING:g}×) on {w['nproc']} CPUs."
    if w["nproc"] < 3 * n:
        line += (f" The benchmark and the mirror nginx share those CPUs: one worker, its pool and nginx already "
                 f"keep them busy, so the figure to take is from a machine with at least {2 * n} free cores for "
                 f"the benchmark (a worker and a pool thread each) and {n} more for nginx (`scripts/bench.sh "
                 f"workers` gives nginx {n} processes from 6 CPUs up).")
    out.append(line + "\n")
    summary.append(f"The replay benchmark answered {fnum(medians[1])} requests/s with 1 worker and "
                   f"{fnum(medians[n])} with {n} ({fratio(scaling)}, {w['nproc']} CPUs).")
    if scaling is not None and scaling < GOAL_SCALING:
        misses.append(f"workers scale {fratio(scaling)} from 1 to {n} (goal ≥ {GOAL_SCALING:g}×; "
                      f"{w['nproc']} CPUs" + (" shared with the mirror)" if w["nproc"] < 3 * n else ")"))


def io_section(io, out, summary):
    out.append("## 5c. Mirror I/O: epoll vs io_uring\n")
    if not io:
        out.append("Not run in this invocation (needs root).\n")
        return
    out.append(f"`mirror_io_bench` is one mirror pool alone ({io['connections']} keep-alive connections to nginx in a "
               f"network namespace, one request in flight on each), handed requests in batches every "
               f"{io['tick_us']} µs as a worker's ring consume hands them over, at a paced rate and closed loop; "
               f"`--mirror-io epoll` and `uring` alternate, {io['runs']} runs of {io['seconds']:g} s, median. "
               f"CPU is the benchmark process's.\n")
    out.append("| rate | epoll req/s | epoll CPU-µs per request | io_uring req/s | io_uring CPU-µs per request | "
               "**io_uring / epoll CPU** |")
    out.append("|---|---:|---:|---:|---:|---:|")
    by = {(r["rate"], r["mode"]): r["runs"] for r in io["results"]}
    for rate in io["rates"]:
        e, u = by.get((rate, "epoll"), []), by.get((rate, "uring"), [])
        ce, cu = med([x["cpu_us_per_request"] for x in e]), med([x["cpu_us_per_request"] for x in u])
        label = "closed loop" if rate == 0 else f"{rate:,.0f} req/s"
        out.append(f"| {label} | {fnum(med([x['answered_per_s'] for x in e]))} | {fnum(ce, 2)} | "
                   f"{fnum(med([x['answered_per_s'] for x in u]))} | {fnum(cu, 2)} | "
                   f"**{fratio(cu / ce if ce and cu else None)}** |")
        if rate != 0 and ce and cu:
            summary.append(f"At {rate:,.0f} req/s one mirror pool spends {cu:.2f} CPU-µs per request through "
                           f"io_uring against {ce:.2f} through epoll ({cu / ce:.2f}×).")
    out.append("")


def main():
    d, dest = sys.argv[1], sys.argv[2]
    meta = load(d, "meta.json") or {}
    out, summary, misses = [], [], []
    body = []
    kernel_section(load(d, "kernel.json"), body, summary)
    pipeline_section(load(d, "pipeline.json"), body, summary, misses)
    impact_section(load(d, "impact.json"), body, summary, misses)
    fidelity_section(load(d, "fidelity.json"), body, summary, misses)
    memory_section(load(d, "memory.json"), body, summary, misses)
    workers_section(load(d, "workers.json"), body, summary, misses)
    io_section(load(d, "io.json"), body, summary)

    out.append("# shadowtap benchmark results\n")
    out.append("_Generated by `scripts/bench.sh`; do not edit by hand (hand-written notes go in "
               "`tests/bench/analysis.md`, appended at the end)._\n")
    para = " ".join(summary)
    if misses:
        para += " **Goals missed:** " + "; ".join(misses) + "."
    else:
        para += " Every goal measured here is met."
    out.append("**Summary.** " + para + "\n")
    out.append("## Machine and run\n")
    out.append(f"- Date: {meta.get('date', 'n/a')}")
    out.append(f"- Machine: {meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')}), {meta.get('mem', '?')} RAM, "
               f"kernel {meta.get('kernel', '?')}, {meta.get('os', '?')}")
    out.append(f"- Shared machine: {meta.get('note', 'other work may have been running; figures are medians of interleaved runs')}")
    out.append(f"- Source: {meta.get('git', '?')}; build: Release (`{meta.get('build_dir', 'build-bench')}`)")
    out.append(f"- Tools: {meta.get('tools', '?')}")
    for part in ("kernel", "pipeline", "impact", "fidelity", "memory", "workers", "io"):
        j = load(d, f"{part}.json")
        if j:
            when = j.get("date") or time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(
                os.path.getmtime(os.path.join(d, f"{part}.json"))))
            out.append(f"- `{part}` measured {when}")
    out.append("\nCommands (as run by `scripts/bench.sh`):\n")
    out.append("```sh")
    for part in ("setup", "kernel", "pipeline", "impact", "fidelity", "memory", "workers", "io"):
        try:
            with open(os.path.join(d, f"commands-{part}.txt")) as f:
                out.extend(ln.rstrip("\n") for ln in f)
        except OSError:
            pass
    out.append("```\n")
    out.extend(body)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, "analysis.md")) as f:
            out.append(f.read())
    except OSError:
        pass
    with open(dest, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
