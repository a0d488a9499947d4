"""A small HTTP/1.1 server for the end-to-end tests.

It records every request exactly as it arrived (request line, headers, body in
its original framing) as one JSON line with the bytes in base64, and answers
with a response that depends only on the request, so a client can compare the
responses it got with and without shadowtap byte for byte.

Usage: recording_server.py --port 8000 --record FILE [--name NAME]
Prints "ready" on stdout once listening.
"""
import argparse
import base64
import hashlib
import http.server
import json
import socket
import socketserver
import sys
import threading
import time


class TeeReader:
    """Wraps the connection's buffered reader and keeps every byte consumed."""

    def __init__(self, f):
        self.f = f
        self.buf = bytearray()

    def readline(self, *args):
        data = self.f.readline(*args)
        self.buf += data
        return data

    def read(self, *args):
        data = self.f.read(*args)
        self.buf += data
        return data

    def take(self):
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def close(self):
        self.f.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.rfile = TeeReader(self.rfile)

    def log_message(self, *args):
        pass

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            body = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.read_body()
        raw = self.rfile.take()
        self.server.record(self.client_address, raw)
        reply = json.dumps({
            "server": self.server.name,
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }, sort_keys=True).encode()
        self.send_response_only(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, name, record_path):
        self.address_family = socket.AF_INET6
        super().__init__(addr, Handler)
        self.name = name
        self.lock = threading.Lock()
        self.out = open(record_path, "a", buffering=1)

    def server_bind(self):
        # One dual-stack socket answers IPv4 and IPv6.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def record(self, peer, raw):
        line = json.dumps({"t": time.time(), "peer": list(peer[:2]),
                           "raw": base64.b64encode(raw).decode()})
        with self.lock:
            self.out.write(line + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--name", default="server")
    args = ap.parse_args()
    srv = Server(("::", args.port), args.name, args.record)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
