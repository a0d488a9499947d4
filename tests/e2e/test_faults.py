#!/usr/bin/env python3
"""End-to-end fault tests: whatever the mirror does, production does not notice,
shadowtap's memory stays bounded, every mirrored request ends in exactly one
counted outcome, and delivery resumes once the mirror is healthy again.

  cli (198.18.0.1) --veth-- node (198.18.0.2; primary :8000; shadowtap)
                            node (198.18.1.1) --veth-- mir (198.18.1.2 and .3; fault server :8000)

The node resolves mirror-svc through /etc/netns/NODE/hosts. One shadowtap runs
through all faults, configured by a TOML file plus a --rule flag:
refused, black-holed, never answering, one byte per second, reset mid-response,
restarted during load, and the name moving to another address during load.
Then a second run mirrors to the primary itself (same interface and port) with
header switches: our own connection is declined, nothing loops.

Usage: test_faults.py --shadowtap PATH
(internal: test_faults.py --serve-mirror ... / --load ...)
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import Stats  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
SELF = os.path.abspath(__file__)
PORT = 8000
HOST = "httpbin:8000"
FAILURES = []
RSS_LIMIT_KIB = 160 * 1024


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


# ---------------------------------------------------------------- fault server

def serve_mirror(args):
    """Mirror with a behaviour read from a file at every request: ok, never,
    slow (one byte per second), reset (part of the response, then RST).
    Records 'local-address seq' per request."""
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", args.port))
    srv.listen(256)
    lock = threading.Lock()
    rec = open(args.record, "a", buffering=1)
    print("ready", flush=True)

    def mode():
        try:
            with open(args.mode_file) as f:
                return f.read().strip() or "ok"
        except OSError:
            return "ok"

    def handle(conn):
        local = conn.getsockname()[0].replace("::ffff:", "")
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                need = int(m.group(1)) if m else 0
                while len(buf) < need:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[need:]
                seq = re.search(rb"(?im)^x-seq:\s*(\S+)", head)
                with lock:
                    rec.write(f"{local} {seq.group(1).decode() if seq else '-'}\n")
                body = b"mirrored"
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                how = mode()
                if how == "never":
                    while conn.recv(65536):
                        pass
                    return
                if how == "slow":
                    for i in range(len(resp)):
                        conn.sendall(resp[i:i + 1])
                        time.sleep(1)
                    continue
                if how == "reset":
                    conn.sendall(resp[:20])
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                conn.sendall(resp)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


# ---------------------------------------------------------------- load client

def expected_response(method, path, body=b""):
    """What recording_server.py answers, computed independently of it."""
    import hashlib
    reply = json.dumps({"server": "v1", "method": method, "path": path, "host": HOST,
                        "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest()},
                       sort_keys=True).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(reply)) + reply


def read_response(f):
    raw = bytearray()
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    raw += line
    length = 0
    while True:
        line = f.readline()
        raw += line
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    raw += f.read(length)
    return bytes(raw)


def run_load(args):
    """--count requests at --rps over --conns keep-alive connections; every
    response must be byte-identical to what the primary answers directly."""
    conns = []
    for _ in range(args.conns):
        s = socket.create_connection((args.addr, args.port), timeout=10)
        conns.append((s, s.makefile("rb")))
    bad, sent, t0 = 0, 0, time.monotonic()
    for i in range(args.count):
        delay = t0 + i / args.rps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        seq = f"{args.tag}-{i}"
        path = f"/f/{seq}"
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: st-faults\r\n"
               f"X-Seq: {seq}\r\n\r\n").encode()
        s, f = conns[i % len(conns)]
        s.sendall(req)
        if read_response(f) != expected_response("GET", path):
            bad += 1
        sent += 1
    for s, f in conns:
        f.close()
        s.close()
    print(json.dumps({"sent": sent, "bad": bad, "seconds": time.monotonic() - t0}))
    return 0


# ---------------------------------------------------------------- the test

class Env:
    def __init__(self, binary):
        self.binary = binary
        self.lab = netlab.Lab("sf")
        self.work = tempfile.mkdtemp(prefix="st-faults-")
        atexit.register(shutil.rmtree, self.work, True)  # removed also on failure
        lab = self.lab
        self.cli, self.node, self.mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, self.node_if = lab.link(self.cli, self.node, ["198.18.0.1/24"], ["198.18.0.2/24"], "c")
        _, self.mir_if = lab.link(self.node, self.mir, ["198.18.1.1/24"], ["198.18.1.2/24", "198.18.1.3/24"], "m")
        self.set_mirror_address("198.18.1.2")
        self.primary_rec = os.path.join(self.work, "primary.jsonl")
        p = lab.spawn(self.node, [PY, os.path.join(HERE, "recording_server.py"), "--port", str(PORT),
                                  "--record", self.primary_rec, "--name", "v1"], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("primary did not start")
        self.mode_file = os.path.join(self.work, "mode")
        self.mirror_rec = os.path.join(self.work, "mirror.txt")
        open(self.mirror_rec, "w").close()
        self.mirror = None
        self.start_mirror()
        self.tags = 0

    def set_mirror_address(self, addr):
        # Written in place: `ip netns exec` bind-mounts this very file.
        self.lab.hosts_file(self.node, {"mirror-svc": addr})

    def start_mirror(self):
        self.mirror = self.lab.spawn(self.mir, [PY, SELF, "--serve-mirror", "--port", str(PORT), "--record",
                                                self.mirror_rec, "--mode-file", self.mode_file],
                                     stdout=subprocess.PIPE, text=True)
        if self.mirror.stdout.readline().strip() != "ready":
            raise RuntimeError("mirror did not start")

    def stop_mirror(self):
        self.mirror.kill()
        self.mirror.wait()

    def mode(self, m):
        with open(self.mode_file, "w") as f:
            f.write(m)

    def mirror_seqs(self, tag=None):
        with open(self.mirror_rec) as f:
            rows = [l.split() for l in f if l.strip()]
        return [(a, s) for a, s in rows if tag is None or s.startswith(tag + "-")]

    def primary_count(self):
        with open(self.primary_rec) as f:
            return sum(1 for l in f if l.strip())

    def load(self, count, rps, conns=4, primary_only=True):
        self.tags += 1
        tag = f"p{self.tags}"
        before = self.primary_count()
        r = self.lab.run(self.cli, [PY, SELF, "--load", "--addr", "198.18.0.2", "--port", str(PORT),
                                    "--count", str(count), "--rps", str(rps), "--conns", str(conns), "--tag", tag],
                         capture_output=True, text=True, timeout=120)
        res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"sent": 0, "bad": -1}
        check(res["sent"] == count and res["bad"] == 0,
              f"  [{tag}] primary answered all {count} requests byte-identically (sent {res['sent']}, bad {res['bad']})")
        time.sleep(0.3)
        if primary_only:
            check(self.primary_count() - before == count, f"  [{tag}] primary received exactly {count} requests")
        return tag


class Agent:
    def __init__(self, env, args, ready="mirroring TCP port", stdout_path=None):
        tag = time.monotonic_ns()
        self.log_path = os.path.join(env.work, f"shadowtap-{tag}.log")
        self.stats_path = os.path.join(env.work, f"shadowtap-{tag}.stats.json")
        self.log = open(self.log_path, "w")
        out = open(stdout_path, "w") if stdout_path else self.log
        self.proc = env.lab.spawn(env.node, [env.binary, *args, "--stats-file", self.stats_path], stdout=out,
                                  stderr=self.log if stdout_path else subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if ready in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("shadowtap did not start:\n" + self.text())

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def counters(self):
        """Counters of rule 1's HTTP/1 mirror (r_*) and a few global ones, from the latest stats dump."""
        s = Stats.load(self.stats_path)
        if not s.data:
            return {}
        o = s.outcomes(rule=1, protocol="http1")
        out = {"r_" + k: o.get(v, 0) for k, v in OUTCOME_OF.items()}
        out["r_responses"] = s.answered(rule=1, protocol="http1")
        out["r_bad_responses"] = o.get("bad_response", 0) + o.get("response_too_large", 0)
        out["r_requests"] = s.value("shadowtap_requests_total", rule=1)
        out["r_not_mirrored"] = s.value("shadowtap_requests_not_mirrored_total", rule=1)
        out["r_in_flight"] = (s.value("shadowtap_mirror_in_flight_requests", rule=1) +
                              s.value("shadowtap_mirror_queue_requests", rule=1))
        out["r_address_changes"] = s.value("shadowtap_mirror_address_changes_total", rule=1, protocol="http1")
        out["own_traffic_segments"] = s.value("shadowtap_flow_own_traffic_total")
        out["loop_skipped"] = s.value("shadowtap_requests_not_mirrored_total", reason="already_shadow")
        return out

    def settle(self, timeout=12):
        """Waits until nothing is queued or in flight and two summaries agree."""
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            time.sleep(1.05)
            c = self.counters()
            outcomes = sum(c.get("r_" + k, 0) for k in OUTCOMES)
            key = [c.get("r_" + k) for k in OUTCOMES + ["requests", "in_flight"]]
            if c and c.get("r_in_flight", 1) == 0 and outcomes == c.get("r_requests", -1) - c.get("r_not_mirrored", 0) \
                    and key == last:
                return c
            last = key
        return self.counters()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


OUTCOMES = ["responses", "connect_errors", "connect_timeouts", "resets", "timeouts", "bad_responses",
            "queue_full", "dropped_oldest", "rate_limited", "dropped_shutdown"]
# The test's names for rule 1's mirror outcomes (shadowtap_mirror_requests_total{outcome}).
OUTCOME_OF = {"connect_errors": "connect_error", "connect_timeouts": "connect_timeout", "resets": "reset",
              "timeouts": "response_timeout", "queue_full": "queue_full", "dropped_oldest": "dropped_oldest",
              "rate_limited": "rate_limited", "dropped_shutdown": "dropped_shutdown"}


def delta(a, b, k):
    return b.get(k, 0) - a.get(k, 0)


def phase(env, agent, name, count, rps, expect, during=None, lift=None):
    """Runs `count` requests under a fault, then checks: the counters of the
    phase add up to the requests mirrored, `expect` holds, RSS is bounded, and
    after the fault is lifted 20 requests are mirrored again."""
    print(f"--- {name}", flush=True)
    before = agent.settle()
    t = threading.Thread(target=during) if during else None
    if t:
        t.start()
    tag = env.load(count, rps)
    if t:
        t.join()
    after = agent.settle(timeout=15)
    d = {k: delta(before, after, "r_" + k) for k in OUTCOMES + ["requests", "address_changes"]}
    print("  counters:", {k: v for k, v in d.items() if v}, flush=True)
    check(d["requests"] == count, f"  {name}: rule counted {d['requests']} of {count} requests")
    check(sum(d[k] for k in OUTCOMES) == d["requests"],
          f"  {name}: every request has exactly one outcome ({sum(d[k] for k in OUTCOMES)} == {d['requests']})")
    got = env.mirror_seqs(tag)
    for what, ok in expect(d, got):
        check(ok, f"  {name}: {what}")
    rss = agent.rss_kib()
    check(rss < RSS_LIMIT_KIB, f"  {name}: shadowtap RSS {rss // 1024} MiB < {RSS_LIMIT_KIB // 1024} MiB")
    # Recovery.
    env.mode("ok")
    if lift:
        lift()
    base = agent.settle()
    rtag = env.load(20, 20, conns=2)
    deadline = time.time() + 15
    while time.time() < deadline and len(env.mirror_seqs(rtag)) < 20:
        time.sleep(0.2)
    after = agent.settle()
    check(len({s for _, s in env.mirror_seqs(rtag)}) == 20 and delta(base, after, "r_responses") == 20,
          f"  {name}: delivery resumed (mirror got {len(env.mirror_seqs(rtag))} of 20, "
          f"responses +{delta(base, after, 'r_responses')})")
    return d, got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap")
    ap.add_argument("--serve-mirror", action="store_true")
    ap.add_argument("--load", action="store_true")
    ap.add_argument("--port", type=int, default=PORT)
    ap.add_argument("--record")
    ap.add_argument("--mode-file")
    ap.add_argument("--addr")
    ap.add_argument("--count", type=int)
    ap.add_argument("--rps", type=float)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--tag")
    args = ap.parse_args()
    if args.serve_mirror:
        return serve_mirror(args)
    if args.load:
        return run_load(args)
    netlab.require_root_or_skip("the end-to-end fault test")
    started = time.monotonic()
    env = Env(args.shadowtap)

    toml = os.path.join(env.work, "shadowtap.toml")
    with open(toml, "w") as f:
        f.write(f'interface = ["{env.node_if}"]\n'
                'summary-interval = 1\n'
                'connect-timeout-ms = 500\n'
                'response-timeout-ms = 1000\n'
                'resolve-interval = 1\n'
                'ring-buffer-mib = 4\n'
                'rule = ["port=9999,mirror=127.0.0.1:9"]\n')  # replaced by the --rule flag below
    agent = Agent(env, ["--config", toml, "--rule", "port=8000,mirror=mirror-svc:8000,connections=8,queue=16"])
    check("rule 1: port=8000 -> mirror-svc:8000" in agent.text() and "port=9999" not in agent.text(),
          "config file read; --rule on the command line overrides the file's rule")

    phase(env, agent, "healthy mirror", 40, 40, lambda d, got: [
        ("all 40 answered 2xx", d["responses"] == 40),
        ("mirror got each request once", len(got) == 40 and len({s for _, s in got}) == 40)])

    # Refused: nothing listens.
    env.stop_mirror()
    phase(env, agent, "mirror refusing connections", 60, 40, lambda d, got: [
        ("connect errors counted, no responses", d["connect_errors"] >= 1 and d["responses"] == 0),
        ("mirror got nothing", len(got) == 0)],
        lift=env.start_mirror)

    # Black-holed: the mirror's side of the link is down, SYNs vanish.
    env.lab.run(env.mir, ["ip", "link", "set", env.mir_if, "down"], check=True)

    def link_up():
        env.lab.run(env.mir, ["ip", "link", "set", env.mir_if, "up"], check=True)
        time.sleep(0.5)
    phase(env, agent, "mirror black-holed", 60, 40, lambda d, got: [
        ("connect timeouts counted, no responses", d["connect_timeouts"] >= 1 and d["responses"] == 0),
        ("mirror got nothing", len(got) == 0)],
        lift=link_up)

    env.mode("never")
    phase(env, agent, "mirror accepting and never answering", 40, 40, lambda d, got: [
        ("response timeouts counted, no responses", d["timeouts"] >= 1 and d["responses"] == 0),
        ("timeouts == requests the mirror got", d["timeouts"] == len(got)),
        ("the rest dropped by the full queue", d["queue_full"] + d["timeouts"] == 40)])

    env.mode("slow")
    phase(env, agent, "mirror answering one byte per second", 30, 30, lambda d, got: [
        ("response timeouts counted, no responses", d["timeouts"] >= 1 and d["responses"] == 0),
        ("timeouts == requests the mirror got", d["timeouts"] == len(got))])

    env.mode("reset")
    phase(env, agent, "mirror resetting mid-response", 40, 40, lambda d, got: [
        ("resets == requests the mirror got, none answered", d["resets"] == len(got) and d["responses"] == 0),
        ("no request retried", len(got) == len({s for _, s in got}))])

    def restart():
        time.sleep(1.0)
        env.stop_mirror()
        time.sleep(1.0)
        env.start_mirror()
    phase(env, agent, "mirror restarted during load", 150, 50, lambda d, got: [
        ("responses before and after the restart", d["responses"] >= 50 and
         min(int(s.rsplit("-", 1)[1]) for _, s in got) < 40 and max(int(s.rsplit("-", 1)[1]) for _, s in got) > 110),
        ("the restart cost errors, counted", d["connect_errors"] + d["resets"] + d["queue_full"] >= 1),
        ("responses == distinct requests answered by the mirror", d["responses"] <= len(got))],
        during=restart)

    def move():
        time.sleep(1.0)
        env.set_mirror_address("198.18.1.3")
    d, got = phase(env, agent, "mirror name moving to another address", 150, 50, lambda d, got: [
        ("one address change picked up", d["address_changes"] == 1),
        ("requests reached the old address, then the new one",
         any(a == "198.18.1.2" for a, _ in got) and any(a == "198.18.1.3" for a, _ in got)),
        ("every request answered", d["responses"] == 150)],
        during=move)
    last_new = [a for a, _ in env.mirror_seqs()][-20:]
    check(all(a == "198.18.1.3" for a in last_new), "after the move, recovery traffic went to the new address")

    rc = agent.stop()
    check(rc == 0, f"SIGTERM: shadowtap exited with {rc}")
    text = agent.text()
    check("final: requests: " in text, "final summary printed")

    # Loop: the mirror is the primary itself (same interface, same port); our
    # own connection is captured on lo and must be declined, never mirrored.
    print("--- mirror on the same node and port as the primary", flush=True)
    before_primary = env.primary_count()
    agent = Agent(env, ["-i", env.node_if, "-i", "lo", "--summary-interval", "1",
                        "--rule", "port=8000,mirror=198.18.0.2:8000,header=x-shadowtap:1,drop-header=user-agent,"
                        "methods=GET"])
    tag = env.load(30, 30, primary_only=False)  # the shadow copies go there too
    c = agent.settle()
    time.sleep(1)
    with open(env.primary_rec) as f:
        import base64
        rows = [base64.b64decode(json.loads(l)["raw"]) for l in f if l.strip()][before_primary:]
    shadow = [r for r in rows if b"httpbin-shadow:8000" in r]
    check(len(rows) == 60 and len(shadow) == 30,
          f"primary got the 30 requests and 30 shadow copies, no more ({len(rows)} rows, {len(shadow)} shadow)")
    want = [(f"GET /f/{tag}-{i} HTTP/1.1\r\nHost: httpbin-shadow:8000\r\nX-Seq: {tag}-{i}\r\n"
             f"x-shadowtap: 1\r\n\r\n").encode() for i in range(30)]
    check(sorted(shadow) == sorted(want), "shadow copies: User-Agent removed, x-shadowtap added, rest identical")
    check(c.get("own_traffic_segments", 0) > 0 and c.get("loop_skipped", -1) == 0,
          f"our own connection was declined (own_traffic_segments={c.get('own_traffic_segments')}, "
          f"loop_skipped={c.get('loop_skipped')})")
    check(c.get("r_responses") == 30, f"30 mirror responses ({c.get('r_responses')})")
    check(agent.stop() == 0, "second run exits cleanly")

    # --dry-run (when built in): requests printed as JSON lines on stdout, nothing sent.
    helptext = subprocess.run([env.binary, "--help"], capture_output=True, text=True).stdout
    if "--dry-run" in helptext:
        print("--- dry run", flush=True)
        before_mirror = len(env.mirror_seqs())
        out_path = os.path.join(env.work, "dry-run.jsonl")
        agent = Agent(env, ["-i", env.node_if, "--port", str(PORT), "--dry-run"], stdout_path=out_path)
        tag = env.load(10, 20)
        time.sleep(1.0)
        check(agent.stop() == 0, "dry run exits cleanly")
        with open(out_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        check(sorted(l.get("target") for l in lines) == sorted(f"/f/{tag}-{i}" for i in range(10)) and
              all(l.get("host") == HOST and l.get("shadow_host") == "httpbin-shadow:8000" for l in lines),
              f"dry run printed the 10 requests as JSON lines ({len(lines)} lines)")
        check(len(env.mirror_seqs()) == before_mirror, "dry run sent nothing to the mirror")
    else:
        print("--- dry run: not in this build, skipped", flush=True)

    env.lab.close()
    print(f"faults: {time.monotonic() - started:.0f} s")
    print("faults: all checks passed" if not FAILURES else f"faults: {len(FAILURES)} checks failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
