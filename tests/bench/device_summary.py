#!/usr/bin/env python3
"""Issue 16's goals from the results of tests/bench/device.sh run (a folder of
netbench.py and workers_bench.py outputs), as Markdown for tests/bench/analysis.md.

Usage: device_summary.py RESULTS_DIR
"""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import GOAL_CPU_US as GOAL_CPU, GOAL_SCALING, fnum, load, med  # noqa: E402  (one definition of each)

GOAL_CLOSED_LOOP = 0.95   # production throughput with mirroring / without
GOAL_MIRRORED = 0.999     # share mirrored in the closed loop
FULL = 0.999              # a fidelity step "delivers 100 %" at this share or more (and sends what it should)


def load_path(path):
    return load(os.path.dirname(path), os.path.basename(path))


def f1(x):
    return "n/a" if x is None else f"{x:.1f}"


def ms(x):
    """A latency bucket bound in ms (netbench's mirror.latency_*_ms), n/a when not recorded."""
    return "n/a" if x is None else f"≤ {x:g} ms"


def rps(x):
    return fnum(x)


def steps(fid):
    """Every step of a fidelity.json, in rate order."""
    out = []
    for rate in fid.get("rates", []):
        out.extend(fid["steps"].get(str(rate), []))
    return out


def per_million(step):
    return step["cpu_s"] / step["delivered"] * 1e6 if step.get("delivered") else None


def cpu_section(d, out, verdicts):
    plain = [load_path(p) for p in sorted(glob.glob(os.path.join(d, "cpu-plain-*", "fidelity.json")))]
    rx = [load_path(p) for p in sorted(glob.glob(os.path.join(d, "cpu-rx-*", "fidelity.json")))]
    plain = [s for f in plain if f for s in steps(f)]
    rx = [s for f in rx if f for s in steps(f)]
    if not plain and not rx:
        out.append("CPU per request: no results.\n")
        return
    rate = (plain or rx)[0]["rate"]
    out.append(f"### Agent CPU per mirrored request at {rate:,} req/s, one worker\n")
    out.append("| variant | CPU-s per million, runs | median | shares delivered |")
    out.append("|---|---|---:|---|")
    for name, ss in (("veth as it is", plain), ("mirror's receive in its own thread", rx)):
        pm = [per_million(s) for s in ss]
        shares = ", ".join(f"{100 * s['share']:.2f} %" for s in ss)
        out.append(f"| {name} | {', '.join(f1(x) for x in pm)} | **{f1(med(pm))}** | {shares} |")
    pairs = [per_million(b) / per_million(a) for a, b in zip(plain, rx) if per_million(a) and per_million(b)]
    if pairs:
        out.append(f"| paired ratio | {', '.join('%.2f' % x for x in pairs)} | {med(pairs):.2f}× | |")
    a, b = med([per_million(s) for s in plain]), med([per_million(s) for s in rx])
    best = min(x for x in (a, b, float("inf")) if x is not None)
    out.append("")
    verdicts.append(f"- CPU per mirrored request at {rate:,} req/s: {f1(a)} CPU-s per million, {f1(b)} with the "
                    f"mirror's receive in its own thread (goal ≤ {GOAL_CPU:g}): "
                    f"{'met' if best <= GOAL_CPU else 'missed'}.")


def full(s):
    """The step delivered ≥ FULL of what it sent, and the client sent ≥ 97 % of its schedule."""
    return s["share"] >= FULL and s["client"]["achieved_rps"] >= 0.97 * s["rate"]


def ceiling(ss):
    """(highest rate delivered in full below the first rate that was not, whether one was not)."""
    best = None
    for s in sorted(ss, key=lambda s: s["rate"]):
        if not full(s):
            return best, True
        best = s["rate"]
    return best, False


def ceiling_section(d, out, verdicts):
    runs = {}
    for p in sorted(glob.glob(os.path.join(d, "ceil-w*", "fidelity.json"))):
        f = load_path(p)
        if f:
            runs[int(os.path.basename(os.path.dirname(p))[len("ceil-w"):])] = f
    if not runs:
        out.append("Fidelity above one worker: no results.\n")
        return
    any_f = next(iter(runs.values()))
    out.append(f"### Fidelity above one worker's ceiling (nproc {any_f.get('nproc')}, nginx processes "
               f"{any_f.get('nginx_processes')}, client threads {any_f.get('client_threads')})\n")
    out.append("| workers | rate | achieved | sent | delivered | share | agent CPU | queue_full | ring full | gaps | "
               "connects | saturated | mirror p50 / p99 |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ceilings = {}
    for w in sorted(runs):
        ss = steps(runs[w])
        for s in ss:
            c = s["shadowtap"]
            out.append(f"| {w} | {s['rate']:,} | {s['client']['achieved_rps']:,.0f} | {s['sent']:,} | "
                       f"{s['delivered']:,} | {100 * s['share']:.2f} % | {s['cpu_pct']:.0f} % | "
                       f"{c.get('queue_full', 0):,} | {c.get('kernel.ringbuf_full', 0):,} | {c.get('flows.gaps', 0):,} | "
                       f"{c.get('mirror.connect_attempts', 0):,} | {c.get('mirror.growth_saturated', 0):,} | "
                       f"{ms(c.get('mirror.latency_p50_ms'))} / "
                       f"{ms(c.get('mirror.latency_p99_ms'))} |")
        ceilings[w] = ceiling(ss)
    out.append("")
    for w, (c, fell) in sorted(ceilings.items()):
        reach = "no step" if c is None else f"{c:,} req/s"
        out.append(f"- {w} worker(s): 100 % delivered up to {reach}"
                   f"{'' if fell else ' (every step: the ceiling is above what was tried)'}")
    out.append("")
    wide = max(ceilings)
    if 1 in ceilings and wide > 1:
        (one, one_fell), (many, _) = ceilings[1], ceilings[wide]
        if one is None:
            lowest = min(s["rate"] for s in steps(runs[1]))
            verdict = (f"not shown: with one worker no step from the lowest ({lowest:,} req/s) on was sent at its "
                       f"rate and delivered in full, so the ceiling is below the steps tried (rerun with lower rates)")
        elif not one_fell:
            verdict = "not shown: one worker delivered every step in full, so its ceiling is above the steps tried"
        elif many is not None and many >= 2 * one:
            verdict = "met"
        else:
            verdict = "missed"
        fmt = lambda c: "none of the steps" if c is None else f"{c:,} req/s"
        verdicts.append(f"- 100 % delivered at ≥ 2× one worker's ceiling: 1 worker {fmt(one)}, {wide} workers "
                        f"{fmt(many)}: {verdict} (a step the client could not send at its rate does not count).")


def impact_section(d, out, verdicts):
    im = load(os.path.join(d, "impact"), "impact.json")
    if not im:
        out.append("Closed loop: no results.\n")
        return
    res = im["results"]
    none = res.get("none/ok", {}).get("wrk", [])
    tap = res.get("shadowtap/ok", {})
    out.append(f"### Closed loop (wrk, {im['conns']} connections, {im.get('client_threads')} threads, "
               f"{im['seconds']:g} s; nginx processes {im.get('nginx_processes')})\n")
    out.append("| run | no mirroring req/s | shadowtap req/s | ratio | mirrored | agent CPU |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    ratios, shares = [], []
    for i, (a, b) in enumerate(zip(none, tap.get("wrk", []))):
        c = tap["shadowtap"][i] if i < len(tap.get("shadowtap", [])) else {}
        produced = b["requests"] + tap["rate"][i]["sent"] if i < len(tap.get("rate", [])) else b["requests"]
        share = min(1.0, c.get("mirror.responses", 0) / produced) if produced else 0.0
        ratio = b["rps"] / a["rps"] if a["rps"] else None
        ratios.append(ratio)
        shares.append(share)
        out.append(f"| {i + 1} | {a['rps']:,.0f} | {b['rps']:,.0f} | {'n/a' if ratio is None else f'{ratio:.2f}×'} | "
                   f"{100 * share:.2f} % | {c.get('cpu_pct_wrk', 0):.0f} % |")
    out.append("")
    r, s = med(ratios), med(shares)
    if r is not None:
        verdicts.append(f"- Closed loop: {r:.2f}× of no mirroring with {100 * s:.2f} % mirrored (goal ≥ "
                        f"{GOAL_CLOSED_LOOP}× with ≥ {100 * GOAL_MIRRORED:.1f} %): "
                        f"{'met' if r >= GOAL_CLOSED_LOOP and s >= GOAL_MIRRORED else 'missed'}.")


def workers_section(d, out, verdicts):
    for p in sorted(glob.glob(os.path.join(d, "workers-*.json"))):
        w = load_path(p)
        if not w:
            continue
        n = w["workers"]
        med_rps = {k: med([x["answered_per_s"] for x in v]) for k, v in w["results"].items()}
        med_cpu = {k: med([x["cpu_us_per_request"] for x in v]) for k, v in w["results"].items()}
        one, many = med_rps.get("1"), med_rps.get(str(n))
        scaling = many / one if one and many else None
        out.append(f"- replay, {w['connections']} connections, nginx processes {w['nginx_processes']}, nproc "
                   f"{w['nproc']}, {w['runs']} runs of {w['seconds']:g} s: 1 worker {rps(one)} req/s "
                   f"({f1(med_cpu.get('1'))} CPU-µs each), {n} workers {rps(many)} req/s "
                   f"({rps(many and many / n)} per worker, {f1(med_cpu.get(str(n)))} CPU-µs each): "
                   f"**{'n/a' if scaling is None else f'{scaling:.2f}×'}**")
        if n == 2 and scaling is not None:
            verdicts.append(f"- replay scaling, 2 workers vs 1: {scaling:.2f}× (goal ≥ {GOAL_SCALING}): "
                            f"{'met' if scaling >= GOAL_SCALING else 'missed'}.")
    out.append("")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    out, verdicts = [], []
    cpu_section(d, out, verdicts)
    ceiling_section(d, out, verdicts)
    impact_section(d, out, verdicts)
    out.append("### The replay benchmark\n")
    workers_section(d, out, verdicts)
    print("### Goals\n")
    print("\n".join(verdicts) if verdicts else "- no results")
    print()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
