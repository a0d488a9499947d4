"""Client side of the end-to-end tests: sends raw HTTP/1.1 requests and writes,
as JSON, every request it sent and the exact response bytes it got.

Usage: client.py --v4 ADDR [--v6 ADDR] --port P --host-header H --workload mix|conns [--count N] --out FILE
"""
import argparse
import base64
import concurrent.futures
import json
import random
import socket
import sys


def read_response(f, head=False):
    """Reads one response (our servers always send Content-Length) and returns its bytes."""
    raw = bytearray()
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    raw += line
    length = 0
    while True:
        line = f.readline()
        raw += line
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if not head and length:
        raw += f.read(length)
    return bytes(raw)


class Conn:
    def __init__(self, addr, port):
        self.sock = socket.create_connection((addr, port), timeout=30)
        self.f = self.sock.makefile("rb")

    def exchange(self, requests):
        """Sends all requests in one write (pipelined when several), reads all responses."""
        self.sock.sendall(b"".join(r for r, _ in requests))
        return [read_response(self.f, head) for _, head in requests]

    def close(self):
        self.f.close()
        self.sock.close()


class Workload:
    def __init__(self, host):
        self.host = host
        self.next_id = 0
        self.results = []

    def rid(self):
        self.next_id += 1
        return self.next_id

    def get(self, method="GET", extra=b""):
        i = self.rid()
        req = (f"{method} /r/{i}?q=%20x&y=1 HTTP/1.1\r\n"
               f"hOsT: {self.host}\r\nUser-Agent: st-e2e/1\r\nX-Dup: a\r\nX-Dup: b\r\n").encode() + extra + b"\r\n"
        return req, method == "HEAD"

    def post(self, body):
        i = self.rid()
        head = (f"POST /r/{i} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        return head + body, False

    def chunked(self, parts):
        i = self.rid()
        req = (f"POST /r/{i} HTTP/1.1\r\nHost: {self.host}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        for n, part in enumerate(parts):
            ext = b";ext=1" if n == 0 else b""
            req += f"{len(part):x}".encode() + ext + b"\r\n" + part + b"\r\n"
        req += b"0\r\nX-Trailer: done\r\n\r\n"
        return req, False

    def record(self, conn_label, requests, responses):
        for (req, _), resp in zip(requests, responses):
            self.results.append({"conn": conn_label, "request": base64.b64encode(req).decode(),
                                 "response": base64.b64encode(resp).decode()})


def run_mix(args, w):
    rnd = random.Random(7)
    big = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    c = Conn(args.v4, args.port)
    for batch in ([w.get()], [w.post(big)], [w.chunked([b"a" * 100, b"b" * 5000, b"c"])],
                  [w.get(), w.post(b"hello"), w.get("HEAD")], [w.get("DELETE")]):
        w.record("ka", batch, c.exchange(batch))
    c.close()
    if args.v6:
        c6 = Conn(args.v6, args.port)
        batch = [w.get(), w.post(b"v6 body")]
        w.record("v6", batch, c6.exchange(batch))
        c6.close()
    # Many connections at once, two keep-alive requests each.
    batches = [[w.get(), w.post(bytes(rnd.getrandbits(8) for _ in range(3000)))] for _ in range(24)]

    def one(n):
        conn = Conn(args.v4, args.port)
        out = [conn.exchange([r]) [0] for r in batches[n]]
        conn.close()
        return n, out

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        for n, out in ex.map(one, range(len(batches))):
            w.record(f"many{n}", batches[n], out)


def run_conns(args, w):
    reqs = [[w.get()] for _ in range(args.count)]

    def one(n):
        conn = Conn(args.v4, args.port)
        out = conn.exchange(reqs[n])
        conn.close()
        return n, out

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        for n, out in ex.map(one, range(len(reqs))):
            w.record(f"c{n}", reqs[n], out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--v4", required=True)
    ap.add_argument("--v6")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host-header", required=True)
    ap.add_argument("--workload", choices=["mix", "conns"], required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    w = Workload(args.host_header)
    (run_mix if args.workload == "mix" else run_conns)(args, w)
    with open(args.out, "w") as f:
        json.dump(w.results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
