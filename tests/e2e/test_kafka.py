#!/usr/bin/env python3
"""End-to-end: shadowtap mirrors a workload and records it into a 3-broker Kafka cluster.

  cli (198.18.0.1, 2001:db8::1) --veth-- node (198.18.0.2; primary :8000, h2c primary :8080, shadowtap,
                                               kafka_mock_cluster: librdkafka's mock brokers on 127.0.0.1)
                                         node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000)

shadowtap runs with its Kafka settings in a TOML --config file (record = "kafka://...", the
record-kafka-* keys) and NODE_NAME set. The topic is read back with kcat, as an analytics consumer
would, and checked:
  1. brokers up: every HTTP/1 request of a mixed workload (keep-alive, pipelined, chunked, IPv6, many
     connections, credentials) and every HTTP/2 request arrives exactly once, as the .jsonl object of
     what the client sent (credentials redacted), valid against docs/kafka-record.schema.json, keyed
     by its connection: one key per client connection, in one partition, in the order sent; headers
     node (from NODE_NAME) and rule;
  2. brokers down (the mock cluster's brokers set down): the mirror still gets every request, the
     recorder's bounded producer queue fills and the rest is dropped at once, counted as undelivered
     queue_full, the queued ones time out (msg_timed_out); nothing is counted written;
  3. SIGTERM while down: shadowtap exits 0 within --drain-timeout-ms (plus the detach), the messages
     still queued are purged and counted, and offered = written + dropped + malformed + write_error;
  4. brokers up again: the topic holds exactly the records counted written, each once.

Usage: test_kafka.py --shadowtap PATH --mock-cluster PATH
"""
import argparse
import base64
import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netlab  # noqa: E402
from harness import PY, PORT, HOST, MirrorLab, check, finish, read_records, wait_count  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "docs", "kafka-record.schema.json")
H2_PORT = 8080
TOPIC = "shadowtap.requests"
PARTITIONS = 6
QUEUE_MESSAGES = 200   # queue.buffering.max.messages given to shadowtap
TIMEOUT_MS = 8000      # message.timeout.ms given to shadowtap
DRAIN_MS = 1500
MARK = "[REDACTED]"
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
RECORD_KEYS = ("method", "target", "version", "headers", "body_length", "body_sha256")


# ---------------------------------------------------------------- client side (runs in cli)

def credentials_client(out_path):
    """Four keep-alive connections, ten requests each (some pipelined), all with credentials."""
    import client as clientlib
    w = clientlib.Workload(HOST)
    w.next_id = 10000
    for c in range(4):
        conn = clientlib.Conn("198.18.0.2", PORT)
        batch = []
        for n in range(10):
            i = w.rid()
            if n % 3 == 2:
                body = f"body-{i}".encode()  # bodies are recorded as sent
                req = (f"POST /r/{i}?token=secret-t{i}&keep=1 HTTP/1.1\r\nHost: {HOST}\r\n"
                       f"Authorization: Bearer secret-{i}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            else:
                req = (f"GET /r/{i}?token=secret-t{i}&keep=1 HTTP/1.1\r\nHost: {HOST}\r\n"
                       f"Authorization: Bearer secret-{i}\r\nCookie: session=secret-c{i}; theme=dark\r\n"
                       f"X-Api-Key: secret-k{i}\r\nAccept: */*\r\n\r\n").encode()
            batch.append((req, False))
            if n % 4 != 1:  # pairs sent pipelined in one write now and then
                w.record(f"cred{c}", batch, conn.exchange(batch))
                batch = []
        if batch:
            w.record(f"cred{c}", batch, conn.exchange(batch))
        conn.close()
    with open(out_path, "w") as f:
        json.dump(w.results, f)


# ---------------------------------------------------------------- expectations

def request_id(target):
    m = re.match(r"/r/(\d+)", target)
    return int(m.group(1)) if m else None


def expected_record(raw):
    """What the JSON lines object must hold for a request the client sent: method, target with the
    token redacted, header fields in order (values without surrounding whitespace, secrets redacted),
    and the application body's length and SHA-256."""
    head, _, wire_body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if "?" in target:
        path, _, query = target.partition("?")
        target = path + "?" + "&".join(f"token={MARK}" if p.startswith("token=") else p for p in query.split("&"))
    headers = []
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        value = value.strip(" \t")
        if name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        headers.append([name, MARK if name.lower() in SECRET_HEADERS else value])
    body = wire_body
    if chunked:
        body, rest = b"", wire_body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
    return {"method": method, "target": target, "version": version, "headers": headers,
            "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}


def consume(lab, ns, bootstrap, raw=False):
    """Every message of the topic, read with kcat from the beginning to the end (raw: kcat's output)."""
    r = lab.run(ns, ["kcat", "-C", "-b", bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-J", "-q"],
                capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("      kcat:", r.stderr.strip()[:500])
    return r.stdout if raw else [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def headers_of(msg):
    h = msg.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))


def wait_stats(st, cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = st.stats()
        if cond(s):
            return s
        time.sleep(0.2)
    return st.stats()


def nghttp(lab, ns, *args):
    return lab.run(ns, ["nghttp", "-n", *args], capture_output=True, text=True, timeout=60).returncode


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap")
    ap.add_argument("--mock-cluster")
    ap.add_argument("--credentials-client")
    args = ap.parse_args()
    if args.credentials_client:
        return credentials_client(args.credentials_client)
    netlab.require_root_or_skip("the Kafka recording end-to-end test")
    for tool in ("kcat", "nghttp"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            print(f"FAIL: {tool} is missing (scripts/install-deps.sh installs kcat and nghttp2-client)",
                  file=sys.stderr)
            return 1
    try:
        import jsonschema
    except ImportError:
        print("FAIL: python3-jsonschema is missing (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 1
    with open(SCHEMA) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))

    m = MirrorLab("stkf")
    lab, cli, node, workdir = m.lab, m.cli, m.node, m.workdir
    try:
        p = lab.spawn(node, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", str(H2_PORT),
                             "--record", os.path.join(workdir, "primary-h2.jsonl")], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("h2 recording server did not start")
        cluster = lab.spawn(node, [args.mock_cluster, "3", TOPIC, str(PARTITIONS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = cluster.stdout.readline().strip()
        if not line.startswith("bootstrap "):
            raise RuntimeError(f"kafka_mock_cluster did not start: {line!r}")
        bootstrap = line.split(" ", 1)[1]
        check(len(bootstrap.split(",")) == 3, f"mock cluster: 3 brokers at {bootstrap}")

        def brokers(cmd):
            cluster.stdin.write(cmd + "\n")
            cluster.stdin.flush()
            return cluster.stdout.readline().strip() == f"ok {cmd}"

        # The Kafka settings in the TOML file: its keys are the long flag names.
        config = os.path.join(workdir, "shadowtap.toml")
        with open(config, "w") as f:
            f.write(f'record = "kafka://{bootstrap}/{TOPIC}"\n'
                    f'record-redact = "header:x-api-key,query:token"\n'
                    f'record-kafka-client-id = "shadowtap-e2e"\n'
                    f'record-kafka-opt = ["queue.buffering.max.messages={QUEUE_MESSAGES}", '
                    f'"message.timeout.ms={TIMEOUT_MS}", "message.max.bytes=4000000"]\n'
                    f'drain-timeout-ms = {DRAIN_MS}\n')
        st = m.shadowtap(args.shadowtap, prefix=("env", "NODE_NAME=e2e-node-7"), argv=[
            "--interface", m.node_if, "--config", config,
            "--rule", f"port={PORT},mirror=httpbin-mirror:{PORT}",
            "--rule", f"port={H2_PORT}"])  # recorded only
        check("recording captured requests to kafka://" in st.text(), "shadowtap records to Kafka")

        # ---- 1. brokers up: mirrored and recorded, each request once, per connection in order
        results = m.client("mix")
        out = os.path.join(workdir, "cred.json")
        r = lab.run(cli, [PY, os.path.abspath(__file__), "--credentials-client", out], timeout=120)
        if r.returncode != 0:
            raise RuntimeError("credentials client failed")
        with open(out) as f:
            results += json.load(f)
        url = f"http://198.18.0.2:{H2_PORT}"
        auth = ["-H", ":authority: grpc.svc:8080", "-H", "authorization: Bearer secret-h2"]
        upload = os.path.join(workdir, "upload.bin")
        with open(upload, "wb") as f:
            f.write(bytes(range(256)) * 64)
        rc = [nghttp(lab, cli, *auth, f"{url}/h2/a", f"{url}/h2/b", f"{url}/h2/c"),
              nghttp(lab, cli, *auth, "-d", upload, f"{url}/h2/upload")]
        check(rc == [0, 0], f"nghttp clients succeeded ({rc})")
        n_h1 = len(results)
        n_h2 = 4
        total = n_h1 + n_h2
        mirrored = wait_count(m.mirror_rec, n_h1, 30)
        check(mirrored == n_h1, f"the mirror got the {n_h1} HTTP/1 requests ({mirrored})")
        s = wait_stats(st, lambda s: s.value("shadowtap_record_items_total", outcome="written") >= total, 30)
        written1 = s.value("shadowtap_record_items_total", outcome="written")
        check(written1 == total, f"{total} requests recorded and acknowledged by the brokers ({written1})")

        text = consume(lab, node, bootstrap, raw=True)
        msgs = [json.loads(l) for l in text.splitlines() if l.strip()]
        check(len(msgs) == total, f"kcat reads {len(msgs)} messages for {total} requests")
        values = [json.loads(msg["payload"]) for msg in msgs]
        h1 = [(msg, v) for msg, v in zip(msgs, values) if v["version"] == "HTTP/1.1"]
        h2 = [(msg, v) for msg, v in zip(msgs, values) if v["version"] == "HTTP/2"]
        by_id = collections.Counter(request_id(v["target"]) for _, v in h1)
        sent = {request_id(base64.b64decode(x["request"]).split(b" ")[1].decode()): x for x in results}
        check(set(by_id) == set(sent) and all(c == 1 for c in by_id.values()),
              f"every HTTP/1 request arrived exactly once ({len(by_id)} ids, {sum(by_id.values())} messages)")
        same = [v for _, v in h1 if request_id(v["target"]) in sent
                and {k: v.get(k) for k in RECORD_KEYS} ==
                expected_record(base64.b64decode(sent[request_id(v["target"])]["request"]))]
        check(len(same) == n_h1, f"each message is the JSON lines object of what the client sent, redacted "
                                 f"({len(same)} of {n_h1})")
        errors = [f"{v.get('target')}: {e.message}" for v in values for e in validator.iter_errors(v)]
        check(not errors, f"every message matches docs/kafka-record.schema.json {errors[:3]}")
        broken = [dict(values[0], flow=None), {k: v for k, v in values[0].items() if k != "body_sha256"},
                  dict(values[0], headers=[["a"]]), dict(values[0], extra=1)]
        check(all(not validator.is_valid(b) for b in broken), "the schema refuses broken records")
        example = subprocess.run([PY, os.path.join(HERE, "..", "..", "docs", "kafka_consumer_example.py")],
                                 input=text, capture_output=True, text=True, timeout=60)
        want = f"total: {total} requests from 1 nodes over {len({msg['key'] for msg in msgs})} connections"
        check(example.returncode == 0 and want in example.stdout,
              f"docs/kafka_consumer_example.py reads kcat's output: {want!r}")
        check(len(h2) == n_h2 and sorted(dict(v["headers"])[":path"] for _, v in h2) ==
              ["/h2/a", "/h2/b", "/h2/c", "/h2/upload"], f"the {n_h2} HTTP/2 requests arrived once each")
        check(all(v["rule"] == 2 and headers_of(msg).get("rule") == "2" for msg, v in h2)
              and all(v["rule"] == 1 and headers_of(msg).get("rule") == "1" for msg, v in h1),
              "header rule and the object's rule name the rule that captured it")
        check(all(headers_of(msg).get("node") == "e2e-node-7" for msg in msgs), "header node is NODE_NAME")
        check(all(msg["key"] == v["flow"] for msg, v in zip(msgs, values)), "each message's key is its connection")
        payloads = "".join(msg["payload"] for msg in msgs)
        check("secret" not in payloads and payloads.count(MARK) >= 40 * 2,
              "no credential reached Kafka (Authorization, Cookie, X-Api-Key, token redacted)")
        # Keyed by connection: the ids under one key are exactly one client connection's, in the
        # order sent, all in one partition (kcat reads a partition in offset order).
        per_key = collections.defaultdict(list)
        partitions = collections.defaultdict(set)
        for msg, v in h1:
            per_key[msg["key"]].append(request_id(v["target"]))
            partitions[msg["key"]].add(msg["partition"])
        per_conn = collections.defaultdict(list)
        for x in results:
            per_conn[x["conn"]].append(request_id(base64.b64decode(x["request"]).split(b" ")[1].decode()))
        check(sorted(map(sorted, per_key.values())) == sorted(map(sorted, per_conn.values())),
              f"one key per client connection ({len(per_key)} keys, {len(per_conn)} connections)")
        check(all(ids == sorted(ids) for ids in per_key.values()) and all(ids == sorted(ids) for ids in per_conn.values()),
              "each connection's requests in the order sent")
        check(all(len(p) == 1 for p in partitions.values()), "each connection in one partition")
        check(len({msg["partition"] for msg in msgs}) >= 3, "connections spread over the partitions")

        # ---- 2. brokers down: capture and mirroring go on, the recorder drops and counts
        check(brokers("down"), "mock cluster: brokers set down")
        before = st.stats()
        mirrored_before = len(read_records(m.mirror_rec))
        down_n = 400
        m.client("conns", count=down_n)
        mirrored = wait_count(m.mirror_rec, mirrored_before + down_n, 30) - mirrored_before
        check(mirrored == down_n, f"brokers down: the mirror still got all {down_n} requests ({mirrored})")
        undelivered = lambda s, r: s.value("shadowtap_record_kafka_undelivered_total", reason=r)  # noqa: E731
        s = wait_stats(st, lambda s: undelivered(s, "queue_full") + undelivered(s, "msg_timed_out") >= down_n,
                       TIMEOUT_MS / 1000 + 20)
        qf, to = undelivered(s, "queue_full"), undelivered(s, "msg_timed_out")
        check(qf >= down_n - QUEUE_MESSAGES and qf + to == down_n,
              f"brokers down: {qf} dropped at once (producer queue of {QUEUE_MESSAGES} full), {to} timed out")
        check(s.value("shadowtap_record_items_total", outcome="written") == written1,
              "brokers down: nothing more counted as delivered")
        check(s.value("shadowtap_record_kafka_errors_total") > before.value("shadowtap_record_kafka_errors_total"),
              "brokers down: client errors counted")
        check(s.value("shadowtap_record_kafka_producer_queue_messages") <= QUEUE_MESSAGES,
              "the producer queue gauge within its bound")

        # ---- 3. SIGTERM while down: the queued rest gets the drain time, then is purged and counted
        last_n = 30
        m.client("conns", count=last_n)
        s = wait_stats(st, lambda s: s.value("shadowtap_record_kafka_producer_queue_messages") == last_n, 15)
        check(s.value("shadowtap_record_kafka_producer_queue_messages") == last_n,
              f"{last_n} more requests wait in the producer")
        t0 = time.time()
        rc = st.stop()
        took = time.time() - t0
        check(rc == 0 and took < DRAIN_MS / 1000 + 5, f"SIGTERM: exit {rc} after {took:.1f}s (drain {DRAIN_MS} ms)")
        s = st.stats()
        purged = sum(undelivered(s, r) for r in ("purge_queue", "purge_inflight", "unreported_at_exit"))
        check(purged == last_n, f"the {last_n} still queued at exit are counted as purged ({purged})")
        items = {o: s.value("shadowtap_record_items_total", outcome=o)
                 for o in ("written", "dropped_queue_full", "malformed", "write_error")}
        offered = total + down_n + last_n
        check(sum(items.values()) == offered and items["write_error"] == s.value(
            "shadowtap_record_kafka_undelivered_total"),
              f"every record has one outcome: {items} for {offered} requests")
        check("record: " in st.text() and "delivered to Kafka" in st.text(), "the summary has the Kafka line")

        # ---- 4. brokers up: exactly what was counted written is in the topic, once
        check(brokers("up"), "mock cluster: brokers up again")
        msgs = consume(lab, node, bootstrap)
        once = collections.Counter(msg["payload"] for msg in msgs)
        check(len(msgs) == items["written"] and max(once.values()) == 1,
              f"the topic holds the {items['written']} records counted written, each once ({len(msgs)})")
        brokers("quit")
        if harness.FAILURES or os.environ.get("SHADOWTAP_E2E_SHOW_LOG"):
            print("---- shadowtap's log (last 40 lines)\n" + "\n".join(st.text().splitlines()[-40:]))
    finally:
        m.close()
    return finish("kafka")


if __name__ == "__main__":
    sys.exit(main())
