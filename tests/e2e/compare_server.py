#!/usr/bin/env python3
"""A tiny JSON service in two versions, for the compare end-to-end test.

  GET /users/<n>   200 {"id": n, "name": "user n", "plan": ...}  v1 "gold", v2 "silver"
  GET /orders/<n>  {"order": n, "items": 2}                       v1 200, v2 500
  GET /time        {"now": <ns since the epoch>, "ok": true}      differs on every call
                   and between the servers: a guest's clock may tick coarser than
                   the time between two servers' answers (TCG qemu), so the last
                   three digits are the server's own (port, version), not the clock's
  anything else    404

HTTP/1.1 with keep-alive, over TLS with --tls-cert and --tls-key. Prints "ready"
once listening.
Usage: compare_server.py --port N --version v1|v2 [--bind ADDR] [--tls-cert PEM --tls-key PEM]
"""
import argparse
import http.server
import json
import re
import socketserver
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    version = "v1"
    tag = 0  # < 1000, distinct per server of a test

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, body = 404, {"error": "not found"}
        m = re.fullmatch(r"/users/(\d+)", self.path)
        if m:
            n = int(m.group(1))
            status, body = 200, {"id": n, "name": f"user {n}", "plan": "gold" if self.version == "v1" else "silver"}
        m = re.fullmatch(r"/orders/(\d+)", self.path)
        if m:
            status = 200 if self.version == "v1" else 500
            body = {"order": int(m.group(1)), "items": 2}
        if self.path == "/time":
            status, body = 200, {"now": time.time_ns() // 1000 * 1000 + self.tag, "ok": True}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", choices=["v1", "v2"], required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    Handler.version = a.version
    Handler.tag = (a.port % 100) * 2 + (a.version == "v2")
    srv = Server((a.bind, a.port), Handler)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
