#!/usr/bin/env python3
"""Mirror-side I/O, epoll vs io_uring (#16 item 2): mirror_io_bench in each mode,
alternating, into nginx in a network namespace, at a paced rate (requests handed
over in batches every --tick-us, as a worker's ring consume hands them to a pool)
and closed loop (rate 0).

  node (198.18.1.1; mirror_io_bench) --veth-- mir (198.18.1.2; nginx :8000, return 200)

Prints each run's JSON line, then per rate the medians of answered requests/s and
CPU-microseconds per request for each mode, and their ratio.

Usage (root): mirror_io.py --bench build/tests/bench/mirror_io_bench [--rates 20000,0] [--runs 3] [--seconds 4]
                           [--json io.json]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import netlab  # noqa: E402
from workers_bench import run_json, start_mirror  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--rates", default="20000,0", help="requests/s, comma-separated; 0: closed loop")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tick-us", type=int, default=1000)
    ap.add_argument("--json", help="write every run and the settings here (scripts/bench.sh: io.json)")
    args = ap.parse_args()
    netlab.require_root_or_skip("the mirror I/O benchmark")
    work = tempfile.mkdtemp(prefix="st-iobench-")
    lab = netlab.Lab("sio")
    rates = [float(x) for x in args.rates.split(",")]
    try:
        node = start_mirror(lab, work, 1)
        results = {}
        for _ in range(args.runs):
            for rate in rates:
                for mode in ("epoll", "uring"):
                    line = run_json(lab, node, [args.bench, "--mode", mode, "--mirror", "198.18.1.2:8000",
                                                "--rate", str(rate), "--tick-us", str(args.tick_us),
                                                "--seconds", str(args.seconds),
                                                "--connections", str(args.connections)], args.seconds)
                    if line is None:
                        return 1
                    results.setdefault((rate, mode), []).append(line)
        print(f"nproc {os.cpu_count()}, {args.connections} keep-alive connections, one request in flight on each, "
              f"batches every {args.tick_us} us, {args.runs} runs of {args.seconds:g} s each (medians)")
        for rate in rates:
            med = {m: (statistics.median(x["answered_per_s"] for x in results[(rate, m)]),
                       statistics.median(x["cpu_us_per_request"] for x in results[(rate, m)]))
                   for m in ("epoll", "uring")}
            label = "closed loop" if rate == 0 else f"{rate:.0f} req/s"
            print(f"{label}: epoll {med['epoll'][0]:.0f} req/s {med['epoll'][1]:.2f} CPU-us/req; "
                  f"uring {med['uring'][0]:.0f} req/s {med['uring'][1]:.2f} CPU-us/req; "
                  f"uring/epoll CPU per request {med['uring'][1] / med['epoll'][1]:.2f}x")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(),
                           "connections": args.connections, "runs": args.runs, "seconds": args.seconds,
                           "tick_us": args.tick_us, "rates": rates,
                           "results": [{"rate": r, "mode": m, "runs": rs} for (r, m), rs in results.items()]},
                          f, indent=1)
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
