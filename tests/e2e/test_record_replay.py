#!/usr/bin/env python3
"""End-to-end: record live traffic to HAR, JSON lines and pcap, then replay it with `shadowtap replay`.

  cli (198.18.0.1, 2001:db8::1) --veth-- node (198.18.0.2, 2001:db8::2; primary :8000; shadowtap)
                                         node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000, replay target :9000)

For each format, shadowtap records a mixed workload (GET, POST with a 1 MiB binary body, chunked with
extensions and trailers, pipelined, keep-alive, IPv6, many connections, plus requests carrying
Authorization, Cookie, a configured X-Api-Key header and a configured `token` query parameter):
  - pcap: `tcpdump -r` reads it with no checksum complaint, and the TCP payloads of every client
    connection, reassembled from the file, hold exactly the bytes the client sent;
  - HAR: every file parses as JSON and has the HAR 1.2 required fields;
  - HAR and JSON lines: `shadowtap replay --speed 0 --connections 1` sends every request to a
    recording server, which receives the client's bytes except the Host suffix and the redacted
    values, each original connection's requests in their original order;
  - JSON lines at --speed 1 keeps the recorded pacing; a HAR cut by SIGKILL is still replayed.
Skips (77) while `shadowtap --help` does not list --record.

Usage: test_record_replay.py --shadowtap PATH
"""
import argparse
import atexit
import base64
import collections
import glob
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import Shadowtap, add_workers_arg, use_workers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
HOST = "httpbin:8000"
PORT = 8000
REPLAY_PORT = 9000
MARK = b"[REDACTED]"
FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


# ---------------------------------------------------------------- expected bytes

def shadow_host(request: bytes) -> bytes:
    """The host part of the Host value gets -shadow, before the port (as test_mirror.py)."""
    head, sep, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"host":
            v = value.strip()
            if v.startswith(b"["):
                host, port = v[:v.index(b"]") + 1], v[v.index(b"]") + 2:]
            else:
                host, _, port = v.partition(b":")
            new = host + b"-shadow" + (b":" + port if port else b"")
            lines[i] = name + colon + value.replace(v, new, 1)
            break
    return b"\r\n".join(lines) + sep + body


def redact(request: bytes) -> bytes:
    """Default redaction plus --record-redact header:x-api-key,query:token."""
    head, sep, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    if b"?" in target:
        path, _, query = target.partition(b"?")
        pairs = [(p.split(b"=")[0] + b"=" + MARK) if p.startswith(b"token=") else p for p in query.split(b"&")]
        target = path + b"?" + b"&".join(pairs)
    out = [b" ".join((method, target, version))]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if name.lower() in (b"authorization", b"proxy-authorization", b"cookie", b"set-cookie", b"x-api-key"):
            line = name + b": " + MARK
        out.append(line)
    return b"\r\n".join(out) + sep + body


def request_id(request: bytes) -> int:
    m = re.match(rb"[A-Z]+ /r/(\d+)", request)
    return int(m.group(1)) if m else -1


# ---------------------------------------------------------------- extra client

def extra_client(out_path):
    """Runs inside the client namespace: requests with credentials, one keep-alive connection."""
    import client as clientlib
    w = clientlib.Workload(HOST)
    w.next_id = 10000
    reqs = []
    for n in range(3):
        i = w.rid()
        reqs.append(((f"GET /r/{i}?token=t0p{n}&keep=1 HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer secret-{n}\r\nCookie: session=abc{n}; theme=dark\r\n"
                      f"X-Api-Key: key-{n}\r\nAccept: */*\r\n\r\n").encode(), False))
    i = w.rid()
    reqs.append(((f"POST /r/{i} HTTP/1.1\r\nHost: {HOST}\r\nProxy-Authorization: Basic cDpx\r\n"
                  f"Content-Length: 11\r\n\r\nhello world").encode(), False))
    c = clientlib.Conn("198.18.0.2", PORT)
    for r in reqs:
        w.record("creds", [r], c.exchange([r]))
    c.close()
    with open(out_path, "w") as f:
        json.dump(w.results, f)


# ---------------------------------------------------------------- helpers

def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(tuple(json.loads(l)["peer"]), base64.b64decode(json.loads(l)["raw"])) for l in f if l.strip()]


def run_client(lab, ns, workdir):
    """The mixed workload of client.py plus the credentials workload; returns the results."""
    results = []
    out = os.path.join(workdir, f"client-{time.monotonic_ns()}.json")
    r = lab.run(ns, [PY, os.path.join(HERE, "client.py"), "--v4", "198.18.0.2", "--v6", "2001:db8::2",
                     "--port", str(PORT), "--host-header", HOST, "--workload", "mix", "--out", out], timeout=300)
    if r.returncode != 0:
        raise RuntimeError("client mix failed")
    with open(out) as f:
        results += json.load(f)
    out2 = out + ".extra"
    r = lab.run(ns, [PY, os.path.abspath(__file__), "--extra-client", out2], timeout=60)
    if r.returncode != 0:
        raise RuntimeError("extra client failed")
    with open(out2) as f:
        results += json.load(f)
    return results


def wait_for_file_growth(pattern, timeout=10):
    last, since, deadline = -1, time.time(), time.time() + timeout
    while time.time() < deadline:
        size = sum(os.path.getsize(p) for p in glob.glob(pattern))
        if size != last:
            last, since = size, time.time()
        elif size > 0 and time.time() - since > 1.0:
            return size
        time.sleep(0.1)
    return last


def har_required_fields_ok(har):
    log = har.get("log", {})
    if log.get("version") != "1.2" or not isinstance(log.get("creator", {}).get("name"), str):
        return False
    for e in log.get("entries", []):
        if not all(k in e for k in ("startedDateTime", "time", "request", "response", "cache", "timings")):
            return False
        rq, rs = e["request"], e["response"]
        if not all(k in rq for k in ("method", "url", "httpVersion", "cookies", "headers", "queryString",
                                     "headersSize", "bodySize")):
            return False
        if not all(k in rs for k in ("status", "statusText", "httpVersion", "cookies", "headers", "content",
                                     "redirectURL", "headersSize", "bodySize")):
            return False
        if not all(k in e["timings"] for k in ("send", "wait", "receive")):
            return False
    return isinstance(log.get("entries"), list)


def pcap_streams(path):
    """Client-to-server TCP payload per connection, reassembled by sequence number (LINKTYPE_RAW)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    segs = collections.defaultdict(list)
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if pkt[0] >> 4 == 4:
            ihl = (pkt[0] & 15) * 4
            src, dst, tcp = socket.inet_ntop(socket.AF_INET, pkt[12:16]), socket.inet_ntop(socket.AF_INET, pkt[16:20]), pkt[ihl:]
        else:
            src, dst, tcp = socket.inet_ntop(socket.AF_INET6, pkt[8:24]), socket.inet_ntop(socket.AF_INET6, pkt[24:40]), pkt[40:]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            segs[(src, sport, dst, dport)].append((seq, payload))
    streams = {}
    for key, pieces in segs.items():
        # A retransmission may repeat or overlap what was already captured, cut
        # differently (TSO/GSO): keep each stream byte once, as TCP does.
        out, nxt = bytearray(), None
        for seq, payload in sorted(pieces, key=lambda x: (x[0], -len(x[1]))):  # no wrap in a short test
            if nxt is None:
                nxt = seq
            if seq + len(payload) <= nxt:
                continue
            if seq > nxt:
                out += b"\0" * (seq - nxt)  # a hole: bytes never captured (makes the comparison fail)
                nxt = seq
            out += payload[nxt - seq:]
            nxt = seq + len(payload)
        streams[key] = bytes(out)
    return linktype, streams


def replay(lab, ns, binary, files, *extra):
    t0 = time.time()
    r = lab.run(ns, [binary, "replay", *files, "--mirror", f"198.18.1.2:{REPLAY_PORT}", *extra],
                capture_output=True, text=True, timeout=300)
    return r, time.time() - t0


def summary_value(text, label):
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)\s*$", text, re.M)
    return float(m.group(1)) if m else None


def check_replayed(name, got, expected_by_id, sent_order):
    """got: requests in arrival order. Same multiset as expected; per original connection, same order."""
    check(collections.Counter(got) == collections.Counter(expected_by_id.values()),
          f"{name}: replay target received the {len(expected_by_id)} requests, bytes equal except "
          f"host suffix and redacted values")
    if collections.Counter(got) != collections.Counter(expected_by_id.values()):
        missing = collections.Counter(expected_by_id.values()) - collections.Counter(got)
        extra = collections.Counter(got) - collections.Counter(expected_by_id.values())
        for r in list(missing)[:3]:
            print("  missing:", r[:300])
        for r in list(extra)[:3]:
            print("  unexpected:", r[:300])
    pos = {request_id(r): i for i, r in enumerate(got)}
    ok = all(all(pos.get(a, -1) < pos.get(b, -1) for a, b in zip(ids, ids[1:])) for ids in sent_order.values())
    check(ok, f"{name}: each original connection's requests arrived in their original order")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap")
    ap.add_argument("--extra-client")
    add_workers_arg(ap)  # --workers 2: the workers feed the one recorder
    args = ap.parse_args()
    use_workers(args.workers)
    if args.extra_client:
        return extra_client(args.extra_client)
    help_text = subprocess.run([args.shadowtap, "--help"], capture_output=True, text=True).stdout
    if "--record" not in help_text:
        print("SKIP: this shadowtap has no --record flag yet (recording is not wired into the agent)",
              file=sys.stderr)
        return 77
    netlab.require_root_or_skip("the record/replay end-to-end test")
    if subprocess.run(["which", "tcpdump"], capture_output=True).returncode != 0:
        print("FAIL: tcpdump is missing (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 1

    lab = netlab.Lab()
    workdir = tempfile.mkdtemp(prefix="st-e2e-rec-")
    atexit.register(shutil.rmtree, workdir, True)  # removed also on failure
    cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
    _, node_if = lab.link(cli, node, ["198.18.0.1/24", "2001:db8::1/64"], ["198.18.0.2/24", "2001:db8::2/64"], "c")
    lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
    lab.hosts_file(node, {"httpbin-mirror": "198.18.1.2"})
    servers = ((node, PORT, "primary.jsonl", "v1"), (mir, PORT, "mirror.jsonl", "v1-mirroring"),
               (mir, REPLAY_PORT, "replayed.jsonl", "replay-target"))
    for ns, port, rec, name in servers:
        p = lab.spawn(ns, [PY, os.path.join(HERE, "recording_server.py"), "--port", str(port),
                           "--record", os.path.join(workdir, rec), "--name", name], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name} server did not start")
    replayed_path = os.path.join(workdir, "replayed.jsonl")

    recorded = {}
    for fmt in ("har", "jsonl", "pcap"):
        path = os.path.join(workdir, f"rec-{fmt}", f"traffic.{fmt}")
        os.makedirs(os.path.dirname(path))
        extra = ["--record", path, "--record-redact",
                 "none" if fmt == "pcap" else "header:x-api-key,query:token"]
        st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, *extra)
        results = run_client(lab, cli, workdir)
        time.sleep(1.0)
        rc = st.stop()
        check(rc == 0, f"{fmt}: shadowtap recorded and exited cleanly ({rc})")
        files = sorted(glob.glob(os.path.join(os.path.dirname(path), f"traffic-*.{fmt}")))
        check(len(files) >= 1, f"{fmt}: recording files written ({len(files)})")
        recorded[fmt] = (files, results)

    sent = [base64.b64decode(r["request"]) for r in recorded["pcap"][1]]
    # pcap: tcpdump reads it; our own reassembly of the file gives the client's bytes per connection.
    files, results = recorded["pcap"]
    total_packets = 0
    for f in files:
        td = subprocess.run(["tcpdump", "-r", f, "-nn", "-vv"], capture_output=True, text=True)
        lines = [l for l in td.stdout.splitlines() if " > " in l]
        total_packets += len(lines)
        check(td.returncode == 0 and "incorrect" not in td.stdout,
              f"pcap: tcpdump -r {os.path.basename(f)} reads {len(lines)} packets, no bad checksum")
    check(total_packets > 0, "pcap: tcpdump saw packets")
    streams = {}
    for f in files:
        linktype, s = pcap_streams(f)
        check(linktype == 101, f"pcap: LINKTYPE_RAW ({linktype})")
        for k, v in s.items():
            streams[k] = streams.get(k, b"") + v
    per_conn = collections.defaultdict(bytes)
    for r in results:
        per_conn[r["conn"]] += base64.b64decode(r["request"])
    same = collections.Counter(streams.values()) == collections.Counter(per_conn.values())
    check(same, f"pcap: every connection's payload ({len(per_conn)} connections) is byte-identical to what the "
                f"client sent")
    if not same:
        print("      captured stream lengths:", sorted(len(v) for v in streams.values()))
        print("      sent stream lengths:    ", sorted(len(v) for v in per_conn.values()))

    # HAR files: JSON with the HAR 1.2 required fields; a clean exit closes every file.
    har_entries = 0
    for f in recorded["har"][0]:
        with open(f) as fh:
            try:
                har = json.load(fh)
            except ValueError:
                har = None
        check(har is not None and har_required_fields_ok(har), f"har: {os.path.basename(f)} is valid HAR 1.2")
        har_entries += len(har["log"]["entries"]) if har else 0
    check(har_entries == len(recorded["har"][1]), f"har: {har_entries} entries for {len(recorded['har'][1])} requests")
    with open(recorded["jsonl"][0][0]) as fh:
        first = [json.loads(l) for l in fh if l.strip()]
    check(all(isinstance(o.get("headers"), list) and "body_sha256" in o for o in first), "jsonl: one object per line")
    check(not any(b"secret-" in open(f, "rb").read() or b"abc0" in open(f, "rb").read()
                  for f in recorded["har"][0] + recorded["jsonl"][0]), "har/jsonl: no credential in the files")

    # Replay HAR and JSON lines, as fast as allowed over one connection: total order.
    for fmt in ("har", "jsonl"):
        files, results = recorded[fmt]
        sent = [base64.b64decode(r["request"]) for r in results]
        expected = {request_id(r): shadow_host(redact(r)) for r in sent}
        order = collections.defaultdict(list)
        for r in results:
            order[r["conn"]].append(request_id(base64.b64decode(r["request"])))
        before = len(read_records(replayed_path))
        r, _ = replay(lab, node, args.shadowtap, files, "--speed", "0", "--connections", "1")
        check(r.returncode == 0, f"{fmt}: shadowtap replay exited 0 ({r.returncode}) {r.stderr.strip()[:200]}")
        deadline = time.time() + 10
        while len(read_records(replayed_path)) < before + len(sent) and time.time() < deadline:
            time.sleep(0.1)
        got = [raw for _, raw in read_records(replayed_path)[before:]]
        check_replayed(f"{fmt} replay", got, expected, order)
        check(summary_value(r.stdout, "2xx") == len(sent), f"{fmt}: summary counts {len(sent)} 2xx responses")
        check(summary_value(r.stdout, "errors") == 0 and summary_value(r.stdout, "dropped") == 0,
              f"{fmt}: summary shows no error and no drop")

    # Original pacing: the JSON lines replay at --speed 1 takes about as long as the recording spans.
    files, results = recorded["jsonl"]
    times = []
    for f in files:
        with open(f) as fh:
            times += [json.loads(l)["time"] for l in fh if l.strip()]
    import datetime
    ts = sorted(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times)
    span = ts[-1] - ts[0]
    before = len(read_records(replayed_path))
    r, took = replay(lab, node, args.shadowtap, files, "--speed", "1", "--connections", "4")
    check(r.returncode == 0 and took >= span * 0.9,
          f"jsonl --speed 1: replay took {took:.2f}s for a recording spanning {span:.2f}s")
    got = [raw for _, raw in read_records(replayed_path)[before:]]
    check(len(got) == len(results), f"jsonl --speed 1: {len(got)} of {len(results)} requests received")

    # A HAR cut by SIGKILL: not valid JSON, but replay reads every complete entry.
    path = os.path.join(workdir, "rec-crash", "crash.har")
    os.makedirs(os.path.dirname(path))
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--record", path)
    out = os.path.join(workdir, "conns.json")
    lab.run(cli, [PY, os.path.join(HERE, "client.py"), "--v4", "198.18.0.2", "--port", str(PORT),
                  "--host-header", HOST, "--workload", "conns", "--count", "30", "--out", out], timeout=120)
    wait_for_file_growth(os.path.join(os.path.dirname(path), "crash-*.har"))
    st.stop(signal.SIGKILL)
    files = sorted(glob.glob(os.path.join(os.path.dirname(path), "crash-*.har")))
    text = open(files[-1]).read() if files else ""
    try:
        json.loads(text)
        valid = True
    except ValueError:
        valid = False
    check(files and not valid and not text.rstrip().endswith("]}}"), "crash: the HAR file lacks its closing line")
    r, _ = replay(lab, node, args.shadowtap, files, "--speed", "0")
    check(r.returncode == 0 and summary_value(r.stdout, "files cut by a crash") == 1
          and summary_value(r.stdout, "2xx") == 30,
          "crash: shadowtap replay reads the cut HAR and sends its 30 requests")

    lab.close()
    print("e2e: all checks passed" if not FAILURES else f"e2e: {len(FAILURES)} checks failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
