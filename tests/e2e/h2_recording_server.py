#!/usr/bin/python3
"""HTTP/2 cleartext server for the end-to-end tests (Debian's python3-h2):
prior knowledge, or "Upgrade: h2c" from HTTP/1.1 (the upgrade request is
recorded as stream 1 with the fields an HTTP/2 server sees). Records every request as one JSON line
{"headers": [[name, value]...], "body": base64, "trailers": [[name, value]...]}
in the order the streams end, and answers 200 (gRPC-shaped requests get
grpc-status 0 trailers). With --app v1|v2 it is instead a tiny JSON service
for the compare tests (v2 differs from v1 on /users/<n> $.plan and on the
status of /orders/<n>; /time differs on every call). With --tls-cert and
--tls-key it speaks HTTP/2 over TLS instead (ALPN h2 only) and each line also
holds the connection's "sni" and "alpn". Prints "ready" once listening.
"""
import argparse
import base64
import json
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def upgrade(conn_sock, conn, head, streams):
    """Accepts an HTTP/1.1 "Upgrade: h2c" request (no body); returns the bytes after it."""
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    fields = [(n.strip().lower(), v.strip()) for n, _, v in (l.partition(":") for l in lines[1:])]
    settings = dict(fields).get("http2-settings", "")
    conn_sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    conn.initiate_upgrade_connection(settings)
    skip = {"host", "connection", "upgrade", "http2-settings", "keep-alive", "proxy-connection", "transfer-encoding"}
    headers = [[":method", method], [":scheme", "http"], [":authority", dict(fields).get("host", "")],
               [":path", target]] + [[n, v] for n, v in fields if n not in skip]
    streams[1] = {"headers": headers, "body": b"", "trailers": []}
    return rest


def app_response(app, path):
    """(status, body) of the compare tests' JSON service."""
    parts = path.split("?")[0].strip("/").split("/")
    if parts[0] == "users" and len(parts) == 2:
        return 200, json.dumps({"id": int(parts[1]), "name": f"user{parts[1]}",
                                "plan": "pro" if app == "v2" else "free"}).encode()
    if parts[0] == "orders" and len(parts) == 2:
        if app == "v2":
            return 500, b'{"error": "internal"}'
        return 200, json.dumps({"order": int(parts[1]), "items": list(range(200))}).encode()
    if parts[0] == "time":
        return 200, json.dumps({"now": time.time_ns()}).encode()
    return 404, b'{"error": "not found"}'


def serve(conn_sock, record, lock, app=None, tls=None):
    tls_fields = {}
    if tls:
        try:
            conn_sock = tls.wrap_socket(conn_sock, server_side=True)
        except (OSError, ssl.SSLError):
            conn_sock.close()
            return
        tls_fields = {"sni": getattr(conn_sock, "sni", None), "alpn": conn_sock.selected_alpn_protocol()}
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    streams = {}
    data = b""
    while len(data) < len(PREFACE) and PREFACE.startswith(data) and b"\r\n\r\n" not in data:
        chunk = conn_sock.recv(65536)
        if not chunk:
            conn_sock.close()
            return
        data += chunk
    if not data.startswith(PREFACE):
        while b"\r\n\r\n" not in data:
            chunk = conn_sock.recv(65536)
            if not chunk:
                conn_sock.close()
                return
            data += chunk
        data = upgrade(conn_sock, conn, data, streams)
        pending = [h2.events.StreamEnded()]
        pending[0].stream_id = 1
    else:
        conn.initiate_connection()
        pending = []
    conn_sock.sendall(conn.data_to_send())
    try:
        while True:
            if not data:
                data = conn_sock.recv(65536)
                if not data:
                    return
            events, data = pending + conn.receive_data(data), b""
            pending = []
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = {"headers": [list(h) for h in ev.headers], "body": b"", "trailers": []}
                elif isinstance(ev, h2.events.DataReceived):
                    streams[ev.stream_id]["body"] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    streams[ev.stream_id]["trailers"] = [list(h) for h in ev.headers]
                elif isinstance(ev, h2.events.StreamEnded):
                    s = streams.pop(ev.stream_id)
                    line = json.dumps({"headers": s["headers"], "body": base64.b64encode(s["body"]).decode(),
                                       "trailers": s["trailers"], **tls_fields})
                    with lock:
                        with open(record, "a") as f:
                            f.write(line + "\n")
                    grpc = any(n == "content-type" and v.startswith("application/grpc") for n, v in s["headers"])
                    if app:
                        path = dict((n, v) for n, v in s["headers"]).get(":path", "/")
                        status, payload = app_response(app, path)
                        conn.send_headers(ev.stream_id, [(":status", str(status)), ("content-type", "application/json"),
                                                         ("content-length", str(len(payload)))])
                        # Several DATA frames, so the response side is assembled too.
                        for i in range(0, len(payload), 100):
                            conn.send_data(ev.stream_id, payload[i:i + 100], end_stream=i + 100 >= len(payload))
                    elif grpc:
                        conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                        conn.send_data(ev.stream_id, b"\x00\x00\x00\x00\x00")
                        conn.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
                    else:
                        conn.send_headers(ev.stream_id, [(":status", "200"), ("content-length", "2")])
                        conn.send_data(ev.stream_id, b"ok", end_stream=True)
                elif isinstance(ev, h2.events.StreamReset):
                    streams.pop(ev.stream_id, None)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    conn_sock.sendall(conn.data_to_send())
                    return
            conn_sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        conn_sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--app", choices=("v1", "v2"), help="answer as the compare tests' JSON service")
    ap.add_argument("--tls-cert", help="PEM certificate: HTTP/2 over TLS (with --tls-key)")
    ap.add_argument("--tls-key", help="PEM key of --tls-cert")
    args = ap.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        tls.set_alpn_protocols(["h2"])

        def remember_sni(sock, name, _ctx):
            sock.sni = name
        tls.sni_callback = remember_sni
    lock = threading.Lock()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", args.port))
    srv.listen(128)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, args.record, lock, args.app, tls), daemon=True).start()


if __name__ == "__main__":
    main()
