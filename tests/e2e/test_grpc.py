#!/usr/bin/env python3
"""End-to-end: a real gRPC client and service (python3-grpcio, h2c) mirrored passively.

  cli (198.18.0.1) --veth-- node (198.18.0.2; gRPC service :50051; shadowtap)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; h2c recording mirror :50051)

The client makes a unary call, a client-streaming call (5 messages, one of
100 kB, so the request body spans many DATA frames) and a server-streaming
call, with metadata. Asserts: the client gets its real replies; the mirror gets
each call as one HTTP/2 request with ":authority" suffixed, every metadata
entry the service saw, content-type application/grpc and te: trailers, and a
body that is exactly the gRPC length-prefixed messages the service received;
the mirror's grpc-status is counted.

Usage: test_grpc.py --shadowtap PATH
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import PY, MirrorLab, check, finish  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 50051
METRICS = "127.0.0.1:9466"
AUTHORITY = f"orders.shop:{PORT}"


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def field(rec, name):
    return next((v for n, v in rec["headers"] if n == name), None)


def framed(messages):
    """gRPC's wire form of uncompressed messages: flag 0, 4-byte big-endian length, bytes."""
    return b"".join(b"\x00" + len(m).to_bytes(4, "big") + m for m in messages)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    args = ap.parse_args()
    netlab.require_root_or_skip("the end-to-end gRPC test")
    for module in ("grpc", "h2"):
        if subprocess.run([PY, "-c", f"import {module}"], capture_output=True).returncode != 0:
            print(f"skip: python3 module {module} missing (scripts/install-deps.sh installs python3-grpcio, "
                  "python3-h2)")
            return 77

    m = MirrorLab("stgrpc")
    lab, cli, node, mir, workdir = m.lab, m.cli, m.node, m.mir, m.workdir
    try:
        primary_rec = os.path.join(workdir, "primary-grpc.jsonl")
        mirror_rec = os.path.join(workdir, "mirror-grpc.jsonl")
        p = lab.spawn(node, [PY, os.path.join(HERE, "grpc_app.py"), "server", "--port", str(PORT),
                             "--record", primary_rec], stdout=subprocess.PIPE, text=True)
        check(p.stdout.readline().strip() == "ready", "gRPC service started")
        p = lab.spawn(mir, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", str(PORT),
                            "--record", mirror_rec], stdout=subprocess.PIPE, text=True)
        check(p.stdout.readline().strip() == "ready", "h2c recording mirror started")

        st = m.shadowtap(args.shadowtap, "--metrics-address", METRICS, argv=[
            "--interface", m.node_if, "--rule", f"port={PORT},mirror=httpbin-mirror:{PORT}"])
        r = lab.run(cli, [PY, os.path.join(HERE, "grpc_app.py"), "client", "--target", f"198.18.0.2:{PORT}",
                          "--authority", AUTHORITY], capture_output=True, text=True, timeout=60)
        out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
        check(r.returncode == 0 and out.get("ok") is True,
              f"gRPC client: unary, client-streaming and server-streaming replies correct ({r.stdout.strip()} "
              f"{r.stderr.strip()[-300:]})")

        deadline = time.time() + 20
        while len(records(mirror_rec)) < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        prim, mirr = records(primary_rec), records(mirror_rec)
        check(len(prim) == 3, f"the service handled 3 calls ({len(prim)})")
        check(len(mirr) == 3, f"the mirror got 3 HTTP/2 requests ({len(mirr)})")
        by_path = {field(x, ":path"): x for x in mirr}
        for call in prim:
            got = by_path.get(call["method"])
            name = call["method"].rsplit("/", 1)[-1]
            if not check(got is not None, f"{name}: mirrored"):
                continue
            check(field(got, ":authority") == f"orders.shop-shadow:{PORT}", f"{name}: :authority suffixed")
            check(field(got, ":method") == "POST" and field(got, "content-type") == "application/grpc"
                  and field(got, "te") == "trailers", f"{name}: POST, application/grpc, te: trailers")
            missing = [k for k, v in call["metadata"] if [k, v] not in got["headers"]]
            check(not missing, f"{name}: every metadata entry the service saw is on the mirrored request "
                               f"(missing {missing})")
            messages = [base64.b64decode(x) for x in call["messages"]]
            check(base64.b64decode(got["body"]) == framed(messages),
                  f"{name}: body is exactly the {len(messages)} length-prefixed message(s) the service received")

        r = lab.run(node, ["curl", "-s", f"http://{METRICS}/metrics"], capture_output=True, text=True, timeout=20)
        ok = re.search(r'^shadowtap_mirror_grpc_responses_total\{rule="1",status="ok"\} (\S+)$', r.stdout, re.M)
        check(ok is not None and float(ok.group(1)) == 3, "metrics: 3 mirror responses with grpc-status 0")
        check(st.stop() == 0, "shadowtap exits 0 on SIGTERM")
    finally:
        m.close()
    return finish("test_grpc")


if __name__ == "__main__":
    sys.exit(main())
