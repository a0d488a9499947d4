"""Sends raw byte strings, each on its own connection, whole or one byte per
TCP segment, and records what came back.

Usage: raw_client.py --addr A --port P --cases IN.json --out OUT.json [--parallel N]
IN: [{"id": str, "raw": base64, "bytewise": bool}, ...]
OUT: [{"id": str, "sent": bytes sent before the server closed, "statuses": [int, ...], "response": base64}, ...]
"""
import argparse
import base64
import concurrent.futures
import json
import re
import socket
import sys
import time

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def run_case(addr, port, case):
    raw = base64.b64decode(case["raw"])
    deadline = time.time() + 10
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = bytearray()
    sent = 0
    try:
        try:
            if case["bytewise"]:
                for i in range(len(raw)):
                    s.sendall(raw[i:i + 1])
                    sent += 1
                    time.sleep(0.001)  # each byte leaves as its own segment
            else:
                s.sendall(raw)
                sent = len(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused the request and closed: read what it said
        # Read until the server closes, or nothing more comes for a while.
        s.settimeout(0.6)
        end = time.time() + 5
        while time.time() < end:
            try:
                data = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not data:
                break
            got += data
    finally:
        s.close()
    return {"id": case["id"], "sent": sent, "statuses": [int(m) for m in STATUS.findall(bytes(got))],
            "response": base64.b64encode(bytes(got)).decode()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--parallel", type=int, default=8)
    args = ap.parse_args()
    with open(args.cases) as f:
        cases = json.load(f)
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda c: run_case(args.addr, args.port, c), cases))
    with open(args.out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
