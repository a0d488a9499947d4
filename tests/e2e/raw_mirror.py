"""A mirror that parses nothing: it records the exact bytes of each connection.

shadowtap never pipelines onto a mirror, and this server answers every
connection once with "Connection: close", so each connection carries exactly
one mirrored request. Its end is found without framing it: the request is
complete once no byte has come for --idle seconds. What the mirror received is
then known independently of any HTTP parser, ours included.

Usage: raw_mirror.py --port 8000 --record FILE [--idle 0.25]
Writes one JSON line per connection: {"t": time, "raw": base64}. Prints "ready".
"""
import argparse
import base64
import json
import socket
import sys
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def serve(conn, idle, out, lock):
    raw = bytearray()
    conn.settimeout(idle)
    try:
        while True:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            raw += data
        if raw:
            with lock:
                out.write(json.dumps({"t": time.time(), "raw": base64.b64encode(bytes(raw)).decode()}) + "\n")
            conn.settimeout(5)
            conn.sendall(RESPONSE)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--idle", type=float, default=0.25)
    args = ap.parse_args()
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", args.port))
    srv.listen(256)
    out = open(args.record, "a", buffering=1)
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, args.idle, out, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
