#!/usr/bin/python3
"""A real gRPC service and client for the end-to-end tests (Debian's python3-grpcio,
cleartext HTTP/2 with prior knowledge, which is how gRPC talks without TLS).

Messages are raw bytes (no protobuf codegen needed): the wire format is still
gRPC's (5-byte length-prefixed messages, te: trailers, grpc-status trailers).

  grpc_app.py server --port 50051 --record FILE
      Serves /shop.Orders/Get (unary), /shop.Orders/Upload (client streaming) and
      /shop.Orders/Watch (server streaming). Records each call as one JSON line
      {"method", "metadata": [[k, v]...], "messages": [base64...]}; prints "ready".
  grpc_app.py client --target HOST:PORT --authority NAME:PORT
      Calls each method once (the upload with 5 messages, one of 100 kB) and prints
      one JSON line {"ok": true, "replies": N}.
"""
import argparse
import base64
import json
import sys
import threading
from concurrent import futures

import grpc

UPLOAD = [b"part-%d" % i for i in range(4)] + [bytes((i * 7) & 0xff for i in range(100_000))]


def identity(b):
    return b


def serve(args):
    lock = threading.Lock()

    def record(method, context, messages):
        line = json.dumps({"method": method, "metadata": [[k, v if isinstance(v, str) else base64.b64encode(v).decode()]
                                                          for k, v in context.invocation_metadata()],
                           "messages": [base64.b64encode(m).decode() for m in messages]})
        with lock, open(args.record, "a") as f:
            f.write(line + "\n")

    def get(request, context):
        record("/shop.Orders/Get", context, [request])
        return b"order:" + request

    def upload(request_iterator, context):
        messages = list(request_iterator)
        record("/shop.Orders/Upload", context, messages)
        return b"stored %d" % len(messages)

    def watch(request, context):
        record("/shop.Orders/Watch", context, [request])
        for i in range(3):
            yield b"event-%d" % i

    handler = grpc.method_handlers_generic_handler("shop.Orders", {
        "Get": grpc.unary_unary_rpc_method_handler(get, identity, identity),
        "Upload": grpc.stream_unary_rpc_method_handler(upload, identity, identity),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, identity, identity),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"0.0.0.0:{args.port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def client(args):
    opts = [("grpc.default_authority", args.authority), ("grpc.enable_retries", 0)]
    with grpc.insecure_channel(args.target, options=opts) as ch:
        md = [("x-trace", "trace-42"), ("x-tenant", "acme")]
        get = ch.unary_unary("/shop.Orders/Get", request_serializer=identity, response_deserializer=identity)
        upload = ch.stream_unary("/shop.Orders/Upload", request_serializer=identity, response_deserializer=identity)
        watch = ch.unary_stream("/shop.Orders/Watch", request_serializer=identity, response_deserializer=identity)
        replies = [get(b"id-7", metadata=md, timeout=10), upload(iter(UPLOAD), metadata=md, timeout=10)]
        replies += list(watch(b"since-0", metadata=md, timeout=10))
    ok = replies == [b"order:id-7", b"stored 5", b"event-0", b"event-1", b"event-2"]
    print(json.dumps({"ok": ok, "replies": len(replies)}), flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--record", required=True)
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--authority", required=True)
    args = ap.parse_args()
    return serve(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
