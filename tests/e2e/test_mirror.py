#!/usr/bin/env python3
"""End-to-end: shadowtap mirrors HTTP/1.1 between real hosts built from network namespaces.

  cli (198.18.0.1, 2001:db8::1) --veth-- node (198.18.0.2, 2001:db8::2; primary :8000; shadowtap)
                                         node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000)

Asserts what users rely on: the client's responses are byte-identical with and
without shadowtap; the primary receives exactly what the client sent; the mirror
receives every request byte-identical except the Host value, which gets "-shadow";
0 % mirrors nothing, 100 % everything, 50 % of 400 connections between 35 % and 65 %;
SIGTERM leaves no filter of ours; SIGKILL and a restart leave exactly one.

Usage: test_mirror.py --shadowtap PATH
"""
import argparse
import base64
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
HOST = "httpbin:8000"
PORT = 8000
FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def shadow_host(request: bytes) -> bytes:
    """The expected mirror bytes, computed independently of shadowtap: the host part
    of the Host value gets the suffix, before the port."""
    head, sep, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"host":
            v = value.strip()
            host, _, port = v.partition(b":")
            new = host + b"-shadow" + (b":" + port if port else b"")
            lines[i] = name + colon + value.replace(v, new, 1)
            break
    return b"\r\n".join(lines) + sep + body


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [base64.b64decode(json.loads(l)["raw"]) for l in f if l.strip()]


class Shadowtap:
    def __init__(self, lab, ns, binary, iface, workdir, *extra):
        self.log_path = os.path.join(workdir, f"shadowtap-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = lab.spawn(ns, [binary, "--interface", iface, "--port", str(PORT),
                                   "--mirror", "httpbin-mirror:8000", "--summary-interval", "1",
                                   *extra], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if "mirroring TCP port" in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("shadowtap did not start:\n" + self.text())

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def our_programs():
    """Ids of loaded BPF programs named like our capture program (system-wide)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["id"] for p in json.loads(out or "[]") if p.get("name") == "st_capture_tc"}


def our_filters(lab, ns, iface):
    out = lab.run(ns, ["tc", "filter", "show", "dev", iface, "ingress"],
                  capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "st_capture_tc" in line)


def wait_count(path, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = len(read_records(path))
        if n >= want:
            return n
        time.sleep(0.1)
    return len(read_records(path))


def wait_stable(path, quiet=2.0, timeout=30):
    last, since, deadline = -1, time.time(), time.time() + timeout
    while time.time() < deadline:
        n = len(read_records(path))
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= quiet:
            break
        time.sleep(0.1)
    return last


def client(lab, ns, workdir, workload, count=0):
    out = os.path.join(workdir, f"client-{time.monotonic_ns()}.json")
    argv = [PY, os.path.join(HERE, "client.py"), "--v4", "198.18.0.2", "--v6", "2001:db8::2",
            "--port", str(PORT), "--host-header", HOST, "--workload", workload,
            "--count", str(count), "--out", out]
    r = lab.run(ns, argv, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"client {workload} failed with {r.returncode}")
    with open(out) as f:
        return json.load(f)


def requests_of(results):
    return [base64.b64decode(r["request"]) for r in results]


def summary_counter(text, name):
    found = re.findall(rf"\b{name}=(\d+)", text)
    return int(found[-1]) if found else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    args = ap.parse_args()
    netlab.require_root_or_skip("the end-to-end mirror test")

    lab = netlab.Lab()
    workdir = tempfile.mkdtemp(prefix="st-e2e-")
    cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
    _, node_if = lab.link(cli, node, ["198.18.0.1/24", "2001:db8::1/64"],
                          ["198.18.0.2/24", "2001:db8::2/64"], "c")
    lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
    lab.hosts_file(node, {"httpbin-mirror": "198.18.1.2"})

    primary_rec = os.path.join(workdir, "primary.jsonl")
    mirror_rec = os.path.join(workdir, "mirror.jsonl")
    for ns, rec, name in ((node, primary_rec, "v1"), (mir, mirror_rec, "v1-mirroring")):
        p = lab.spawn(ns, [PY, os.path.join(HERE, "recording_server.py"), "--port", str(PORT),
                           "--record", rec, "--name", name], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name} server did not start")

    # A. Baseline without shadowtap.
    base = client(lab, cli, workdir, "mix")
    sent = requests_of(base)
    check(collections.Counter(read_records(primary_rec)) == collections.Counter(sent),
          f"baseline: primary received exactly the {len(sent)} requests sent")

    # B. Mirroring 100 %.
    primary_before = len(read_records(primary_rec))
    # Default attach mode: tcx on this kernel (a BPF link), cls_bpf elsewhere.
    progs_before = our_programs()
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir)
    check(f"attached to {node_if}" in st.text(), "attached to the interface")
    ours = our_programs() - progs_before
    check(len(ours) == 1, "one capture program of ours loaded")
    mirrored = client(lab, cli, workdir, "mix")
    check([r["response"] for r in mirrored] == [r["response"] for r in base],
          f"client responses byte-identical with and without shadowtap ({len(base)} responses)")
    sent = requests_of(mirrored)
    check(collections.Counter(read_records(primary_rec)[primary_before:]) == collections.Counter(sent),
          "primary received exactly what the client sent")
    got = wait_count(mirror_rec, len(sent), 30)
    mirror_got = read_records(mirror_rec)
    expected = collections.Counter(shadow_host(r) for r in sent)
    check(got == len(sent), f"mirror received {got} of {len(sent)} requests")
    check(collections.Counter(mirror_got) == expected,
          "mirror bytes identical to the client's except Host gets -shadow")
    if collections.Counter(mirror_got) != expected:
        for r in (collections.Counter(mirror_got) - expected):
            print("  unexpected at mirror:", r[:200])
        for r in (expected - collections.Counter(mirror_got)):
            print("  missing at mirror:", r[:200])
    check(all(b"Host: httpbin-shadow:8000" in r or b"hOsT: httpbin-shadow:8000" in r for r in mirror_got),
          "every mirrored request carries httpbin-shadow:8000")
    rc = st.stop()
    check(rc == 0, f"SIGTERM: shadowtap exited with {rc}")
    check(our_filters(lab, node, node_if) == 0 and not (ours & our_programs()),
          "SIGTERM: no filter, link or program of ours left")
    text = st.text()
    check("final:" in text, "final summary logged at exit")
    check(summary_counter(text, "queued") == len(sent), "summary counts every request as queued")
    check(summary_counter(text, "responses") == len(sent), "summary counts every mirror response")

    # C. 0 % mirrors nothing.
    before = len(read_records(mirror_rec))
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--mirror-percentage", "0")
    zero = client(lab, cli, workdir, "conns", 40)
    time.sleep(1.5)
    st.stop()
    check(len(read_records(mirror_rec)) == before, "0 %: mirror received nothing")
    check(summary_counter(st.text(), "sampled_out") > 0 and summary_counter(st.text(), "copied") == 0,
          "0 %: kernel counted the connections as sampled out")
    check(len(zero) == 40, "0 %: all 40 client requests answered")

    # D. 50 % of 400 connections.
    before = len(read_records(mirror_rec))
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--mirror-percentage", "50")
    half = client(lab, cli, workdir, "conns", 400)
    n = wait_stable(mirror_rec) - before
    st.stop()
    share = n / len(half)
    check(0.35 <= share <= 0.65, f"50 %: {n} of {len(half)} connections mirrored ({share:.1%})")
    check(set(read_records(mirror_rec)[before:]) <= set(shadow_host(r) for r in requests_of(half)),
          "50 %: every mirrored request is one the client sent, with the suffix")

    # E. tc (cls_bpf) mode: SIGKILL leaves our filter; a restart replaces it
    # instead of adding one.
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tc")
    check(our_filters(lab, node, node_if) == 1, "tc mode: one filter of ours attached")
    st.stop(signal.SIGKILL)
    check(our_filters(lab, node, node_if) == 1, "tc mode, SIGKILL: the filter stays behind")
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tc")
    check(our_filters(lab, node, node_if) == 1, "tc mode, restart after SIGKILL: exactly one filter of ours")
    check("removed a stale shadowtap tc filter" in st.text(), "restart says it removed the stale filter")
    before = len(read_records(mirror_rec))
    again = client(lab, cli, workdir, "conns", 10)
    check(wait_count(mirror_rec, before + 10, 20) - before == 10, "restarted shadowtap mirrors again")
    check(st.stop() == 0 and our_filters(lab, node, node_if) == 0, "final SIGTERM removes our filter")
    del again

    # F. tcx mode: a killed process leaves nothing behind (the link dies with it).
    progs_before = our_programs()
    st = Shadowtap(lab, node, args.shadowtap, node_if, workdir, "--attach", "tcx")
    ours = our_programs() - progs_before
    st.stop(signal.SIGKILL)
    deadline = time.time() + 5
    while ours & our_programs() and time.time() < deadline:
        time.sleep(0.1)
    check(len(ours) == 1 and not (ours & our_programs()) and our_filters(lab, node, node_if) == 0,
          "tcx mode, SIGKILL: no link, program or filter of ours left")

    lab.close()
    print("e2e: all checks passed" if not FAILURES else f"e2e: {len(FAILURES)} checks failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
