#!/usr/bin/env python3
"""A tiny analytics consumer of shadowtap's Kafka topic, standard library only.

Reads kcat's JSON envelopes on stdin, one message a line, and prints request counts per node,
rule, method and path (query left out), the busiest first, and a total line:

  kcat -C -b kafka-1:9092 -t shadowtap.requests -o beginning -e -J -q | python3 kafka_consumer_example.py

Each envelope is {"partition": P, "offset": O, "ts": MS, "key": CONNECTION, "headers": ["node", N,
"rule", R], "payload": RECORD}, RECORD being one captured request (docs/kafka-record.schema.json).
"""
import collections
import json
import sys


def main():
    per_endpoint = collections.Counter()
    body_bytes = collections.Counter()
    nodes, connections, total = set(), set(), 0
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        headers = msg.get("headers") or []
        meta = dict(zip(headers[0::2], headers[1::2]))
        request = json.loads(msg["payload"])
        path = request["target"].split("?", 1)[0]
        endpoint = (meta.get("node", "?"), request["rule"], request["method"], path)
        per_endpoint[endpoint] += 1
        body_bytes[endpoint] += request["body_length"]
        nodes.add(meta.get("node"))
        connections.add(msg["key"])
        total += 1
    print(f"{'count':>8} {'body bytes':>12}  node  rule  method  path")
    for (node, rule, method, path), n in per_endpoint.most_common(20):
        print(f"{n:>8} {body_bytes[(node, rule, method, path)]:>12}  {node}  {rule}  {method}  {path}")
    print(f"total: {total} requests from {len(nodes)} nodes over {len(connections)} connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
