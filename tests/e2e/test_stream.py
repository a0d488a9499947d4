#!/usr/bin/env python3
"""End-to-end: uploads of any size are streamed to the mirror (issue 19, item 1).

  cli (198.18.0.1; curl) --veth-- node (198.18.0.2; hashing primary :8000; shadowtap)
                                  node (198.18.1.1) --veth-- mir (198.18.1.2; hashing mirror :8000)

Both servers are hashing_server.py: they keep each request's head and the sha256 of
its body (as framed on the wire, and decoded), never the body. For each size
(--sizes, in MiB) curl uploads a generated file once with Content-Length and once
chunked, paced with --limit-rate (--rate, MB/s) so the capture's ring buffer never
overflows on a loaded 2-core machine. Asserts:

- production is unchanged: curl gets 200, the primary's body hashes are the file's;
- the mirror got each request byte-identical except the host: the same body hashes
  and lengths as the primary (wire and decoded), and the primary's head with the
  shadow host;
- every upload was streamed (the framer's and the pool's counters), none aborted;
- the agent's peak RSS (VmHWM) grew by less than 64 MiB over its RSS before the
  uploads, whatever the size.

A gap mid-body is tested in tests/pipeline (WorkerStreamTest): a real capture on veth
has no loss to make one (no netem here; dropped segments are resent within the gap
timeout).

Usage: test_stream.py --shadowtap PATH [--sizes 256] [--rate 25] [--window-kib 16384]
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import PY, Shadowtap, check, finish, shadow_host  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PRIMARY, MIRROR, PORT = "198.18.0.2", "198.18.1.2", 8000
RSS_BUDGET = 64 << 20


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def make_file(path, mib):
    """Non-repeating content: a random MiB, each copy stamped with its index."""
    block = bytearray(os.urandom(1 << 20))
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(mib):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)
            h.update(block)
    return h.hexdigest()


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_records(path, n, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(records(path)) >= n:
            return records(path)
        time.sleep(0.2)
    return records(path)


def upload(lab, cli, url, path, chunked, rate, mib):
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-T", path, "-H", "Expect:",
            "-H", "Content-Type: application/octet-stream", *extra, "--limit-rate", f"{rate}M", url]
    return lab.run(cli, argv, capture_output=True, text=True, timeout=mib / rate * 3 + 60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    ap.add_argument("--sizes", default="256", help="upload sizes in MiB, comma-separated")
    ap.add_argument("--rate", type=int, default=25, help="curl --limit-rate, MB/s")
    ap.add_argument("--window-kib", type=int, default=16384, help="--stream-window-kib of the agent")
    args = ap.parse_args()
    netlab.require_root_or_skip("the streaming test")
    if shutil.which("curl") is None:
        print("SKIP: curl is not installed")
        return 1 if os.environ.get("CI") == "true" else 77

    lab = netlab.Lab("sst")
    workdir = tempfile.mkdtemp(prefix="st-stream-")
    try:
        cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, node_if = lab.link(cli, node, ["198.18.0.1/24"], [f"{PRIMARY}/24"], "c")
        lab.link(node, mir, ["198.18.1.1/24"], [f"{MIRROR}/24"], "m")
        lab.hosts_file(node, {"httpbin-mirror": MIRROR})
        primary_rec, mirror_rec = os.path.join(workdir, "primary.jsonl"), os.path.join(workdir, "mirror.jsonl")
        for ns, addr, rec in ((node, PRIMARY, primary_rec), (mir, MIRROR, mirror_rec)):
            p = lab.spawn(ns, [PY, os.path.join(HERE, "hashing_server.py"), "--addr", addr, "--port", str(PORT),
                               "--record", rec], stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("hashing server did not start")
        window = ["--stream-window-kib", str(args.window_kib)]
        st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, *window)
        url = f"http://{PRIMARY}:{PORT}/upload"
        # A small request first: the agent's connections and buffers exist before the baseline.
        r = lab.run(cli, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "warm", url],
                    capture_output=True, text=True, timeout=30)
        check(r.stdout == "200", f"warm-up request answered 200 ({r.stdout!r} {r.stderr.strip()})")
        wait_records(mirror_rec, 1, 10)
        time.sleep(1)
        rss_before = status_kib(st.proc.pid, "VmRSS") << 10
        hwm_before = status_kib(st.proc.pid, "VmHWM") << 10
        print(f"agent RSS before the uploads: {rss_before >> 20} MiB (peak so far {hwm_before >> 20} MiB)")

        expected = 1
        for mib in [int(s) for s in args.sizes.split(",")]:
            path = os.path.join(workdir, f"upload-{mib}.bin")
            digest = make_file(path, mib)
            for mode in ("content-length", "chunked"):
                t0 = time.time()
                r = upload(lab, cli, url, path, mode == "chunked", args.rate, mib)
                took = time.time() - t0
                expected += 1
                what = f"{mib} MiB {mode}"
                check(r.returncode == 0 and r.stdout == "200",
                      f"{what}: production answered 200 in {took:.1f} s ({r.stdout!r} {r.stderr.strip()})")
                prim = wait_records(primary_rec, expected, 30)
                mirr = wait_records(mirror_rec, expected, 30)
                if not check(len(prim) >= expected and len(mirr) >= expected,
                             f"{what}: the primary ({len(prim)}) and the mirror ({len(mirr)}) each got {expected}"
                             " requests so far"):
                    continue
                p, m = prim[-1], mirr[-1]
                check(p["complete"] and p["body_sha256"] == digest, f"{what}: the primary got the file whole")
                check(m["complete"], f"{what}: the mirror got a complete request ({m['wire_bytes']} body bytes)")
                check(m["wire_sha256"] == p["wire_sha256"] and m["wire_bytes"] == p["wire_bytes"]
                      and m["body_sha256"] == digest,
                      f"{what}: the mirror's body is byte-identical ({m['wire_bytes']} wire bytes, sha256"
                      f" {m['wire_sha256'][:16]})")
                want_head = shadow_host(base64.b64decode(p["head"]))
                check(base64.b64decode(m["head"]) == want_head, f"{what}: the mirror's head is the primary's with the"
                      " shadow host")
                if mode == "chunked":
                    check(b"transfer-encoding: chunked" in base64.b64decode(m["head"]).lower(),
                          f"{what}: sent chunked")
                print(f"{what}: {mib / took:.1f} MiB/s through the agent")
            os.remove(path)

        hwm = status_kib(st.proc.pid, "VmHWM") << 10
        check(hwm - rss_before < RSS_BUDGET,
              f"agent peak RSS {hwm >> 20} MiB grew by {(hwm - rss_before) >> 20} MiB over {rss_before >> 20} MiB"
              f" (< {RSS_BUDGET >> 20} MiB)")
        time.sleep(1.5)
        st.stop()
        s = st.stats()
        uploads = expected - 1
        check(s.value("shadowtap_http_requests_streamed_total") == uploads, f"{uploads} requests streamed")
        check(s.value("shadowtap_http_streams_ended_total", end="complete") == uploads,
              f"{uploads} streams complete ({s.data.get('shadowtap_http_streams_ended_total', {}).get('samples')})")
        check(s.value("shadowtap_mirror_streamed_requests_total", stage="body_sent") == uploads,
              f"{uploads} bodies sent whole to the mirror"
              f" ({s.data.get('shadowtap_mirror_streamed_requests_total', {}).get('samples')})")
        outcomes = s.outcomes()
        check(outcomes.get("response_2xx", 0) == expected and not any(k.startswith("aborted") for k in outcomes),
              f"every request answered by the mirror, none aborted: {outcomes}")
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return finish("e2e stream")


if __name__ == "__main__":
    sys.exit(main())
