"""Shared pieces of the end-to-end tests: the three-host topology (client, node
with the primary and shadowtap, mirror), recording servers, the workload
client, a running shadowtap, and the counters and files they leave.
"""
import base64
import json
import os
import re
import shutil
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
# Flags every Shadowtap of the run gets (a test's --workers N: the same assertions
# with N workers).
EXTRA_ARGS = []


def add_workers_arg(ap):
    """--workers N for a test that runs its assertions with N workers (default: the agent's auto)."""
    ap.add_argument("--workers", type=int, default=0)


def use_workers(n):
    if n:
        EXTRA_ARGS[:] = ["--workers", str(n)]


def add_mirror_io_arg(ap):
    """--mirror-io M: the agent's mirror I/O (default: the agent's auto)."""
    ap.add_argument("--mirror-io", choices=["auto", "uring", "epoll"], default="")


def use_mirror_io(mode):
    if mode:
        EXTRA_ARGS.extend(["--mirror-io", mode])


def check_mirror_io(text, mode):
    """The startup log names the I/O the mode asked for (auto: either)."""
    if mode in ("uring", "epoll"):
        want = "io_uring" if mode == "uring" else "epoll"
        check(f"I/O through {want}" in text, f"--mirror-io {mode}: the mirror pool's start log says I/O through {want}")


def check_workers(stats, n, what=""):
    """With N workers: the gauge says N, and the records the workers read add up to what
    the kernel copied (each record read by exactly one worker)."""
    if not n:
        return
    check(stats.value("shadowtap_workers") == n, f"{what}{n} workers running")
    per = [stats.value("shadowtap_worker_segments_total", worker=w) for w in range(n)]
    copied = (stats.value("shadowtap_kernel_segments_copied_total")
              + stats.value("shadowtap_kernel_egress_segments_copied_total"))
    check(sum(per) == copied, f"{what}records read by the workers {per} add up to the {copied} the kernel copied"
          " (both directions)")
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
    """A running shadowtap. By default it mirrors PORT on `iface` to
    httpbin-mirror:8000; `argv` replaces those flags entirely when given."""

    def __init__(self, lab, ns, binary, iface, workdir, *extra, argv=None, prefix=()):
        tag = time.monotonic_ns()
        self.log_path = os.path.join(workdir, f"shadowtap-{tag}.log")
        self.stats_path = os.path.join(workdir, f"shadowtap-{tag}.stats.json")
        self.log = open(self.log_path, "w")
        if argv is None:
            argv = ["--interface", iface, "--port", str(PORT), "--mirror", "httpbin-mirror:8000"]
        self.proc = lab.spawn(ns, [*prefix, binary, *argv, "--summary-interval", "1",
                                   "--stats-file", self.stats_path, *EXTRA_ARGS, *extra],
                              stdout=self.log, stderr=subprocess.STDOUT)
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

    def stats(self):
        """The last stats dump (every summary interval, and at exit): see Stats."""
        return Stats.load(self.stats_path)

    def held_programs(self, name=None):
        """Ids of the BPF programs this process holds (directly or through a link), named `name` if given.
        Other processes' programs are left out, so tests can run beside other shadowtaps."""
        ids = set()
        fd_dir = f"/proc/{self.proc.pid}/fdinfo"
        for fd in os.listdir(fd_dir) if os.path.isdir(fd_dir) else []:
            try:
                with open(os.path.join(fd_dir, fd)) as f:
                    m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
            except OSError:
                continue
            if m:
                ids.add(int(m.group(1)))
        if name is None:
            return ids
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
        return {p["id"] for p in json.loads(out or "[]") if p.get("name") == name and p["id"] in ids}

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def loaded_programs(ids):
    """Which of these BPF program ids are still loaded (system-wide)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["id"] for p in json.loads(out or "[]")} & set(ids)


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


ANSWERS = {"response_1xx", "response_2xx", "response_3xx", "response_4xx", "response_5xx", "response_other"}


class Stats:
    """shadowtap's stats dump (--stats-file, or GET /stats): every counter of /metrics as
    {"name": {"type", "help", "samples": [{"labels": {...}, "value": N}, ...]}}."""

    def __init__(self, data):
        self.data = data

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                return cls(json.load(f))
        except (OSError, ValueError):
            return cls({})

    def value(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels` (histograms: the count)."""
        total = 0
        for s in self.data.get(name, {}).get("samples", []):
            if all(s["labels"].get(k) == str(v) for k, v in labels.items()):
                total += s.get("value", s.get("count", 0))
        return int(total)

    def answered(self, **labels):
        """Mirror responses of any status."""
        return sum(int(s["value"]) for s in self.data.get("shadowtap_mirror_requests_total", {}).get("samples", [])
                   if s["labels"]["outcome"] in ANSWERS
                   and all(s["labels"].get(k) == str(v) for k, v in labels.items()))

    def outcomes(self, **labels):
        """{outcome: count} of mirror requests, non-zero ones."""
        out = {}
        for s in self.data.get("shadowtap_mirror_requests_total", {}).get("samples", []):
            if s["value"] and all(s["labels"].get(k) == str(v) for k, v in labels.items()):
                out[s["labels"]["outcome"]] = out.get(s["labels"]["outcome"], 0) + int(s["value"])
        return out




def finish(name):
    print(f"{name}: all checks passed" if not FAILURES else f"{name}: {len(FAILURES)} checks failed")
    return 1 if FAILURES else 0


class MirrorLab:
    """cli (198.18.0.1, 2001:db8::1) --veth-- node (198.18.0.2, 2001:db8::2; primary :8000)
    node (198.18.1.1) --veth-- mir (198.18.1.2; mirror :8000, named httpbin-mirror on the node).
    Both servers record every request they get (recording_server.py)."""

    def __init__(self, prefix="st"):
        self.lab = netlab.Lab(prefix)
        self.workdir = tempfile.mkdtemp(prefix="st-e2e-")
        lab = self.lab
        self.cli, self.node, self.mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, self.node_if = lab.link(self.cli, self.node, ["198.18.0.1/24", "2001:db8::1/64"],
                                   ["198.18.0.2/24", "2001:db8::2/64"], "c")
        lab.link(self.node, self.mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        lab.hosts_file(self.node, {"httpbin-mirror": "198.18.1.2"})
        self.primary_rec = os.path.join(self.workdir, "primary.jsonl")
        self.mirror_rec = os.path.join(self.workdir, "mirror.jsonl")
        self.recording_server(self.node, PORT, self.primary_rec, "v1")
        self.recording_server(self.mir, PORT, self.mirror_rec, "v1-mirroring")

    def recording_server(self, ns, port, rec, name):
        """A recording_server.py in `ns` on `port`, writing every request it gets to `rec`."""
        p = self.lab.spawn(ns, [PY, os.path.join(HERE, "recording_server.py"), "--port", str(port),
                                "--record", rec, "--name", name], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name} server did not start")

    def shadowtap(self, binary, *extra, **kw):
        return Shadowtap(self.lab, self.node, binary, self.node_if, self.workdir, *extra, **kw)

    def client(self, workload, count=0):
        return client(self.lab, self.cli, self.workdir, workload, count)

    def close(self):
        self.lab.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
