#!/usr/bin/env python3
"""Workers scaling (#16 item 3): workers_bench with 1 and with N workers into a real
nginx mirror in a network namespace, alternating, several runs each.

  node (198.18.1.1; workers_bench) --veth-- mir (198.18.1.2; nginx :8000, return 200)

Prints each run's JSON line and the medians: answered requests/s, per worker, the
scaling ratio N vs 1, and CPU-microseconds per request.

Usage (root): workers_bench.py --bench build/tests/bench/workers_bench [--workers 2] [--runs 3] [--seconds 5]
                               [--rate 20000 --tick-us 1000] [--json workers.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import netlab  # noqa: E402

NGINX_CONF = """
daemon off;
master_process on;
worker_processes {procs};
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/tmp;
  proxy_temp_path {work}/tmp;
  fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp;
  scgi_temp_path {work}/tmp;
  server {{
    listen 198.18.1.2:8000 reuseport;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""

def start_mirror(lab, work, procs):
    """nginx (`return 200`, `procs` worker processes) on 198.18.1.2:8000 in namespace
    `mir`, linked to namespace `node` (198.18.1.1), which is returned."""
    node, mir = lab.netns("node"), lab.netns("mir")
    lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
    os.makedirs(os.path.join(work, "tmp"))
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, procs=procs))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    lab.spawn(mir, [nginx, "-c", conf, "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return node


def run_json(lab, node, argv, seconds):
    """Runs a benchmark binary in `node`; its last output line as JSON, printed too
    (None, and its output on stderr, when it fails)."""
    r = lab.run(node, argv, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        print(r.stdout, r.stderr, file=sys.stderr)
        return None
    line = json.loads(r.stdout.strip().splitlines()[-1])
    print(json.dumps(line), flush=True)
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--nginx-processes", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0,
                    help="requests/s for all workers, in batches every --tick-us (0: as fast as the mirror answers)")
    ap.add_argument("--tick-us", type=int, default=1000)
    ap.add_argument("--wake-batch", type=int, default=1, help="0: wake the pool at submit, as before #16 item 2")
    ap.add_argument("--io", choices=["epoll", "uring"], default="uring", help="the pools' mirror I/O (--mirror-io)")
    ap.add_argument("--json", help="write every run and the settings here (scripts/bench.sh: workers.json)")
    args = ap.parse_args()
    netlab.require_root_or_skip("the workers benchmark")
    work = tempfile.mkdtemp(prefix="st-wbench-")
    lab = netlab.Lab("swb")
    try:
        node = start_mirror(lab, work, args.nginx_processes)
        results = {1: [], args.workers: []}
        for _ in range(args.runs):
            for n in (1, args.workers):
                line = run_json(lab, node, [args.bench, "--workers", str(n), "--mirror", "198.18.1.2:8000",
                                            "--seconds", str(args.seconds), "--connections", str(args.connections),
                                            "--rate", str(args.rate), "--tick-us", str(args.tick_us),
                                            "--wake-batch", str(args.wake_batch), "--io", args.io], args.seconds)
                if line is None:
                    return 1
                results[n].append(line)
        med = {n: statistics.median(x["answered_per_s"] for x in rs) for n, rs in results.items()}
        cpu = {n: statistics.median(x["cpu_us_per_request"] for x in rs) for n, rs in results.items()}
        print(f"nproc {os.cpu_count()}, nginx worker processes {args.nginx_processes}, "
              f"{args.connections} keep-alive connections, {args.runs} runs of {args.seconds:g} s each")
        for n in (1, args.workers):
            print(f"{n} worker(s): {med[n]:.0f} requests/s answered ({med[n] / n:.0f} per worker), "
                  f"{cpu[n]:.1f} CPU-us per request")
        print(f"scaling {args.workers} vs 1: {med[args.workers] / med[1]:.2f}x")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(),
                           "nginx_processes": args.nginx_processes, "connections": args.connections,
                           "runs": args.runs, "seconds": args.seconds, "rate": args.rate, "io": args.io,
                           "workers": args.workers, "results": {str(n): rs for n, rs in results.items()}},
                          f, indent=1)
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
