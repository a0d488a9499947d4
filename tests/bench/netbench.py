#!/usr/bin/env python3
"""Network benchmarks of shadowtap, run by scripts/bench.sh as root.

  impact    production throughput/latency: no mirroring vs shadowtap vs nginx `mirror`,
            with the mirror healthy, slow (answers after 200 ms) and gone
  fidelity  share of requests reaching the mirror at increasing constant rates
  memory    shadowtap peak RSS with 10,000 idle connections and during a mirror outage

Hosts are network namespaces joined by veth pairs, addresses only from
198.18.0.0/15:

  client ns  {tag}-c  c0 198.18.0.1 ──veth── s0 198.18.0.2  server ns {tag}-s
             (wrk, rate_client)               primary nginx :8080, nginx proxy :8081,
                                              shadowtap on s0 ingress
             mirror ns  {tag}-m  m0 198.18.1.2 ──veth── s1 198.18.1.1 (server ns)
             mirror nginx :8080 (fast, or slow with echo_sleep 0.2)

Everything created is removed at exit (also on SIGINT/SIGTERM); scripts/bench.sh
removes the namespaces again by tag in case this process was killed outright.
Results go to OUT/<part>.json; scripts/bench.sh turns them into RESULTS.md.
"""
import argparse
import atexit
import errno
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

C_ADDR, S_ADDR, S_MADDR, M_ADDR = "198.18.0.1", "198.18.0.2", "198.18.1.1", "198.18.1.2"
PRIMARY_PORT, PROXY_PORT, MIRROR_PORT = 8080, 8081, 8080
HOST = "service"
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
# nginx may not raise RLIMIT_NOFILE past the hard limit (no CAP_SYS_RESOURCE in
# containers); 10,000 idle connections need a bit more than 10,000.
NOFILE = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def sh(*args, check=True, quiet=False):
    return subprocess.run(args, check=check, text=True,
                          stdout=subprocess.DEVNULL if quiet else None,
                          stderr=subprocess.DEVNULL if quiet else None)


def log(msg):
    print(f"[netbench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class MirrorCpuCap:
    """--mirror-cpu PCT: the mirror nginx (master and workers) in a cgroup of its
    own with a CPU quota of PCT % of one CPU: a mirror at its capacity for
    certain (analysis.md, section 16). cgroup v2 (cpu.max) or v1
    (cpu.cfs_quota_us), whichever the machine mounts; removed at the end."""
    PERIOD_US = 100_000

    def __init__(self, tag, percent):
        quota = max(1000, int(self.PERIOD_US * percent / 100))
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        self.path = f"/sys/fs/cgroup/{tag}-mirror" if v2 else f"/sys/fs/cgroup/cpu/{tag}-mirror"
        try:
            if v2:
                with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                    enabled = f.read().split()
                if "cpu" not in enabled:
                    with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                        f.write("+cpu")
            if os.path.isdir(self.path):
                os.rmdir(self.path)  # a killed run's, empty by now
            os.mkdir(self.path)
            if v2:
                self._write("cpu.max", f"{quota} {self.PERIOD_US}")
            else:
                self._write("cpu.cfs_period_us", str(self.PERIOD_US))
                self._write("cpu.cfs_quota_us", str(quota))
        except OSError as e:
            self.remove()
            raise RuntimeError(f"--mirror-cpu: cannot set up the cgroup {self.path} ({e}); it needs root and a "
                               "writable cgroup file system with the cpu controller") from e

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def add(self, pid):
        """The process, then its children (nginx's workers): those forked after
        the parent moved are born in the cgroup."""
        self._write("cgroup.procs", str(pid))
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in children:
            self._write("cgroup.procs", p)

    def stat(self):
        """{nr_periods, nr_throttled, ...} of the quota so far."""
        with open(os.path.join(self.path, "cpu.stat")) as f:
            return {k: int(v) for k, v in (line.split() for line in f if len(line.split()) == 2)}

    def remove(self):
        for _ in range(50):  # its processes are gone a moment after they exit
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY:
                    break
                time.sleep(0.1)
        log(f"netbench: could not remove the cgroup {self.path}")


class Lab:
    def __init__(self, tag, build, workdir):
        self.tag = tag
        self.build = build
        self.dir = workdir
        self.agent_args = []  # --agent-args: added to every shadowtap command line
        self.ns = {r: f"{tag}-{r}" for r in ("c", "s", "m")}
        self.if_c0, self.if_s0 = f"{tag}c0", f"{tag}s0"
        self.if_s1, self.if_m0 = f"{tag}s1", f"{tag}m0"
        self.procs = {}
        self.mirror_rx_thread = False
        self.nginx_processes = 1  # --nginx-processes: of every nginx (primary, proxy, mirror)
        self.client_threads = 1  # --client-threads: of wrk and rate_client
        self.mirror_cap = None  # --mirror-cpu: a MirrorCpuCap
        self.closed = False
        atexit.register(self.close)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        self.close()
        sys.exit(128 + signum)

    # --- topology ---
    def setup(self):
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        c, s, m = self.ns["c"], self.ns["s"], self.ns["m"]
        sh("ip", "link", "add", self.if_c0, "netns", c, "type", "veth", "peer", "name", self.if_s0, "netns", s)
        sh("ip", "link", "add", self.if_s1, "netns", s, "type", "veth", "peer", "name", self.if_m0, "netns", m)
        for ns, dev, addr in ((c, self.if_c0, C_ADDR + "/24"), (s, self.if_s0, S_ADDR + "/24"),
                              (s, self.if_s1, S_MADDR + "/24"), (m, self.if_m0, M_ADDR + "/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # Plenty of local ports and a deep accept queue for 10k connections.
        for ns in self.ns.values():
            self.run(ns, ["sysctl", "-q", "-w", "net.core.somaxconn=16384"], quiet=True)
            self.run(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10000 65000"], quiet=True)
            self.run(ns, ["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"], quiet=True)
        if self.mirror_rx_thread:
            # veth delivers a packet to its peer's socket in the sender's
            # softirq, so the mirror host's TCP receive is charged to the agent's
            # send. With GRO on the peer, and TSO off on the sending side (veth
            # takes its NAPI path for a TCP packet only then), the peer receives
            # through NAPI, and a threaded NAPI runs that in its own kernel
            # thread, as a NIC would for a mirror on another host
            # (analysis.md, section 14).
            self.run(m, ["ethtool", "-K", self.if_m0, "gro", "on"], quiet=True, check=True)
            self.run(s, ["ethtool", "-K", self.if_s1, "tso", "off"], quiet=True, check=True)
            self.run(m, ["sh", "-c", f"echo 1 > /sys/class/net/{self.if_m0}/threaded"], check=True)

    def run(self, ns, argv, quiet=False, check=False, **kw):
        if quiet:
            kw.setdefault("stdout", subprocess.DEVNULL)
            kw.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, text=True, **kw)

    def spawn(self, name, ns, argv, **kw):
        # `ip netns exec` execs the program, so the PID is the program's own.
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.procs[name] = p
        return p

    def stop(self, name, sig=signal.SIGTERM, timeout=10):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for name in list(self.procs):
            p = self.procs.pop(name)
            if p.poll() is None:
                # SIGTERM first: an nginx master killed outright leaves its
                # workers running (orphaned, in a namespace about to go).
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
        for ns in self.ns.values():
            sh("ip", "netns", "delete", ns, check=False, quiet=True)
        if self.mirror_cap:
            self.mirror_cap.remove()

    # --- nginx ---
    def nginx_conf(self, name, listen, body, extra_http="", main_extra="", access_log="off"):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        conf = f"""
{main_extra}
user root;
worker_processes {self.nginx_processes};
worker_rlimit_nofile {NOFILE};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {NOFILE - 1000}; multi_accept on; }}
http {{
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  client_body_buffer_size 64k;
  client_max_body_size 64m;
  {extra_http}
  access_log {access_log};
  server {{
    {listen}
    {body}
  }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return d, path

    def start_nginx(self, name, ns, listen, body, extra_http="", main_extra="", port_check=None, access_log="off"):
        d, path = self.nginx_conf(name, listen, body, extra_http, main_extra, access_log)
        self.spawn(name, ns, ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", path, "-g", "daemon off;"],
                   stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr.log", "w"))
        if port_check:
            self.wait_port(ns, *port_check)
        return d

    def wait_port(self, ns, addr, port, timeout=5.0):
        deadline = time.time() + timeout
        probe = f"import socket; socket.create_connection(('{addr}', {port}), 0.5).close()"
        while time.time() < deadline:
            if self.run(ns, [sys.executable, "-c", probe], quiet=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listening on {addr}:{port} in {ns}")

    def start_primary(self):
        self.start_nginx("primary", self.ns["s"],
                         f"listen {S_ADDR}:{PRIMARY_PORT} backlog=16384; listen 127.0.0.1:{PRIMARY_PORT} backlog=16384;",
                         'location / { return 200 "primary ok\\n"; }',
                         port_check=(S_ADDR, PRIMARY_PORT))

    def start_proxy(self):
        # The in-path way: nginx in front of the primary with `mirror`. Timeouts
        # match shadowtap's defaults (connect 1 s, response 5 s) to compare alike.
        upstreams = f"""
  upstream primary {{ server 127.0.0.1:{PRIMARY_PORT}; keepalive 64; }}
  upstream mirror {{ server {M_ADDR}:{MIRROR_PORT}; keepalive 64; }}"""
        body = f"""
    location / {{
      mirror /__mirror;
      mirror_request_body on;
      proxy_pass http://primary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
    location = /__mirror {{
      internal;
      proxy_pass http://mirror$request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host "$host-shadow";
      proxy_connect_timeout 1s;
      proxy_send_timeout 5s;
      proxy_read_timeout 5s;
    }}"""
        self.start_nginx("proxy", self.ns["s"], f"listen {S_ADDR}:{PROXY_PORT} backlog=16384;", body,
                         extra_http=upstreams, port_check=(S_ADDR, PROXY_PORT))

    def mirror_log(self):
        return os.path.join(self.dir, "mirror", "access.log")

    def start_mirror(self, slow=False):
        d = os.path.join(self.dir, "mirror")
        fmt = "log_format shadow '$http_host $request_uri $request_length $status';"
        if slow:
            body = 'location / { echo_sleep 0.2; echo "slow mirror"; }'
            main_extra = f"load_module {ECHO_MODULE};"
        else:
            body = 'location / { return 200 "mirror ok\\n"; }'
            main_extra = ""
        self.start_nginx("mirror", self.ns["m"], f"listen {M_ADDR}:{MIRROR_PORT} backlog=16384;", body,
                         extra_http=fmt, main_extra=main_extra, port_check=(M_ADDR, MIRROR_PORT),
                         access_log=f"{d}/access.log shadow")
        if self.mirror_cap:
            self.mirror_cap.add(self.procs["mirror"].pid)

    def mirror_state(self, state):
        """ok | slow | gone. Gone: nothing listening, and packets to the mirror are
        silently dropped (its address is removed in the mirror ns, whose forwarding
        is off, so the frames die without RST or ICMP; a permanent neighbour entry
        keeps the server ns sending them)."""
        self.stop("mirror", signal.SIGQUIT)
        s, m = self.ns["s"], self.ns["m"]
        # Undo a previous "gone" (no-ops otherwise).
        self.run(m, ["ip", "addr", "add", M_ADDR + "/24", "dev", self.if_m0], quiet=True)
        self.run(s, ["ip", "neigh", "del", M_ADDR, "dev", self.if_s1], quiet=True)
        if state == "ok":
            self.start_mirror(slow=False)
        elif state == "slow":
            self.start_mirror(slow=True)
        elif state == "gone":
            mac = self.mac(m, self.if_m0)
            self.run(s, ["ip", "neigh", "replace", M_ADDR, "lladdr", mac, "dev", self.if_s1, "nud", "permanent"],
                     check=True)
            self.run(m, ["ip", "addr", "del", M_ADDR + "/24", "dev", self.if_m0], check=True)
        else:
            raise ValueError(state)

    def mac(self, ns, dev):
        out = self.run(ns, ["cat", f"/sys/class/net/{dev}/address"], capture_output=True).stdout
        return out.strip()

    # --- shadowtap ---
    def start_shadowtap(self, name="shadowtap", extra=(), port=PRIMARY_PORT):
        logpath = os.path.join(self.dir, f"{name}.log")
        f = open(logpath, "w")
        argv = [os.path.join(self.build, "agent", "shadowtap"), "-i", self.if_s0, "-p", str(port),
                "-m", f"{M_ADDR}:{MIRROR_PORT}", "--stats-file", logpath + ".stats.json",
                *(extra or ("--summary-interval", "0")), *self.agent_args]
        p = self.spawn(name, self.ns["s"], argv, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"shadowtap exited at start: {open(logpath).read()[-2000:]}")
            if "mirroring TCP port" in open(logpath).read():
                return p, logpath
            time.sleep(0.05)
        raise RuntimeError("shadowtap did not attach within 10 s")

    def stop_shadowtap(self, name, logpath):
        rc = self.stop(name, signal.SIGINT, timeout=20)
        text = open(logpath).read()
        return rc, read_counters(logpath), text


# Flat counter names the reports use, from the stats dump (--stats-file).
_ANSWERS = {"response_1xx", "response_2xx", "response_3xx", "response_4xx", "response_5xx", "response_other"}
_DROPS = {"queue_full", "dropped_oldest", "rate_limited", "dropped_shutdown", "pool_unavailable", "dry_run_printed"}


def read_counters(logpath):
    """shadowtap's latest stats dump (written beside its log at every summary and at exit), flattened."""
    try:
        with open(logpath + ".stats.json") as f:
            stats = json.load(f)
    except (OSError, ValueError):
        return {}

    def total(name, **labels):
        return int(sum(s.get("value", s.get("count", 0)) for s in stats.get(name, {}).get("samples", [])
                       if all(s["labels"].get(k) == v for k, v in labels.items())))

    def quantile_ms(name, q):
        """Upper bound (ms) of the histogram bucket holding quantile q, over every sample; None if empty."""
        counts = {}  # bound -> requests in that bucket (not cumulative), over every sample
        for s in stats.get(name, {}).get("samples", []):
            for le, n in s.get("buckets", []):
                counts[float(le)] = counts.get(float(le), 0) + n
        total, seen = sum(counts.values()), 0
        for le in sorted(counts):
            seen += counts[le]
            if total and seen >= q * total:
                return None if le == float("inf") else round(le * 1000, 3)
        return None

    outcomes = {}
    for s in stats.get("shadowtap_mirror_requests_total", {}).get("samples", []):
        o = s["labels"]["outcome"]
        outcomes[o] = outcomes.get(o, 0) + int(s["value"])
    return {
        "kernel.ringbuf_full": total("shadowtap_kernel_records_lost_total"),
        "flows.gaps": total("shadowtap_flow_gaps_total"),
        "flows.active": total("shadowtap_flows"),
        "http.requests": total("shadowtap_http_requests_parsed_total"),
        "http.dropped_by_gap": total("shadowtap_http_requests_skipped_total", reason="gap"),
        "http.parse_errors": total("shadowtap_http_connections_abandoned_total", reason="parse_error"),
        "queue_full": outcomes.get("queue_full", 0),
        "mirror.responses": sum(v for o, v in outcomes.items() if o in _ANSWERS),
        "mirror.errors": sum(v for o, v in outcomes.items() if o not in _ANSWERS and o not in _DROPS),
        "mirror.dropped_shutdown": outcomes.get("dropped_shutdown", 0),
        # Why a pool fell behind: how many connections it opened, how often
        # growth held, and the mirror's latency (one request in flight per connection).
        "mirror.connect_attempts": total("shadowtap_mirror_connect_attempts_total"),
        "mirror.growth_holds": total("shadowtap_mirror_growth_holds_total"),
        "mirror.growth_saturated": total("shadowtap_mirror_growth_saturated_total"),
        "mirror.latency_p50_ms": quantile_ms("shadowtap_mirror_latency_seconds", 0.5),
        "mirror.latency_p99_ms": quantile_ms("shadowtap_mirror_latency_seconds", 0.99),
    }


def proc_status(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith(("VmHWM", "VmRSS")):
                    k, v = ln.split(":")
                    vals[k] = int(v.split()[0])  # kB
    except OSError:
        pass
    return vals


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


# --- load generators ---
def wrk(lab, port, seconds, conns):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_report.lua")
    r = lab.run(lab.ns["c"], ["wrk", f"-t{lab.client_threads}", f"-c{max(conns, lab.client_threads)}", f"-d{int(seconds)}s", "--timeout", "10s", "-H", f"Host: {HOST}", "-s", script,
                              f"http://{S_ADDR}:{port}/"], capture_output=True)
    for ln in reversed(r.stdout.splitlines()):
        if ln.startswith("{"):
            return json.loads(ln)
    raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")


def rate_client(lab, port, rate, seconds, conns=32, unique_path=None, body=0, drain_ms=3000):
    argv = [os.path.join(lab.build, "tests", "bench", "rate_client"), "--addr", S_ADDR, "--port", str(port),
            "--rate", str(rate), "--duration", str(seconds), "--connections", str(conns), "--host", HOST,
            "--drain-ms", str(drain_ms), "--threads", str(min(lab.client_threads, conns))]
    if unique_path:
        argv += ["--unique", "--path", unique_path]
    if body:
        argv += ["--body", str(body)]
    r = lab.run(lab.ns["c"], argv, capture_output=True)
    for ln in reversed(r.stdout.splitlines()):
        if ln.startswith("{"):
            return json.loads(ln)
    raise RuntimeError(f"rate_client failed: {r.stdout}\n{r.stderr}")


def save(out, part, data):
    data["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with open(os.path.join(out, f"{part}.json"), "w") as f:
        json.dump(data, f, indent=1)
    log(f"wrote {part}.json")


# --- parts ---
def impact(lab, args):
    """Per run: baseline, then shadowtap and nginx-mirror with the mirror ok, slow, gone."""
    cases = [("none", "ok"), ("shadowtap", "ok"), ("nginx-mirror", "ok"),
             ("shadowtap", "slow"), ("nginx-mirror", "slow"),
             ("shadowtap", "gone"), ("nginx-mirror", "gone")]
    if args.cases:
        unknown = set(args.cases) - {f"{c}/{s}" for c, s in cases}
        if unknown:
            raise SystemExit(f"netbench: unknown --cases {sorted(unknown)}")
        cases = [(c, s) for c, s in cases if f"{c}/{s}" in args.cases]
    res = {f"{c}/{s}": {"wrk": [], "rate": [], "shadowtap": []} for c, s in cases}
    if any(c == "nginx-mirror" for c, _ in cases):
        lab.start_proxy()
    for run in range(args.runs):
        for case, state in cases:
            key = f"{case}/{state}"
            set_state(lab, state)
            port = PROXY_PORT if case == "nginx-mirror" else PRIMARY_PORT
            st = None
            if case == "shadowtap":
                st = lab.start_shadowtap()
            c0, t0 = (cpu_seconds(st[0].pid), time.time()) if st else (0, 0)
            w = wrk(lab, port, args.seconds, args.conns)
            c1, t1 = (cpu_seconds(st[0].pid), time.time()) if st else (0, 0)
            rc = rate_client(lab, port, args.rate, args.seconds, conns=args.conns)
            c2, t2 = (cpu_seconds(st[0].pid), time.time()) if st else (0, 0)
            if st:
                _, counters, _ = lab.stop_shadowtap("shadowtap", st[1])
                counters["cpu_pct_wrk"] = 100.0 * (c1 - c0) / max(t1 - t0, 1e-9)
                counters["cpu_pct_rate"] = 100.0 * (c2 - c1) / max(t2 - t1, 1e-9)
                res[key]["shadowtap"].append(counters)
            res[key]["wrk"].append(w)
            res[key]["rate"].append(rc)
            log(f"run {run + 1} {key:22s} wrk {w['rps']:9.0f} req/s p99 {w['p99_us']:9.0f} us | "
                f"{args.rate} req/s: p50 {rc['p50_us']:8.0f} p99 {rc['p99_us']:9.0f} p99.9 {rc['p999_us']:9.0f} us"
                f" completed {rc['completed']}/{rc['sent']}")
    set_state(lab, "ok")
    lab.stop("proxy", signal.SIGQUIT)
    save(args.out, "impact", {"runs": args.runs, "seconds": args.seconds, "conns": args.conns,
                              "rate": args.rate, "nproc": os.cpu_count(), "agent_args": args.agent_args,
                              "nginx_processes": args.nginx_processes, "client_threads": args.client_threads, "cases": [f"{c}/{s}" for c, s in cases], "results": res})


_state = {}


def set_state(lab, state):
    if _state.get(id(lab)) != state:
        lab.mirror_state(state)
        _state[id(lab)] = state


def count_mirror(logpath, offset, prefix, expect_len):
    """Lines at the mirror for requests under `prefix`: (distinct ok, bad host/length, duplicates)."""
    seen = set()
    bad = dup = 0
    with open(logpath, "rb") as f:
        f.seek(offset)
        data = f.read().decode(errors="replace")
    for ln in data.splitlines():
        parts = ln.split()
        if len(parts) < 3 or not parts[1].startswith(prefix + "/"):
            continue
        seq = parts[1][len(prefix) + 1:]
        want = expect_len(seq)
        if parts[0] != HOST + "-shadow" or int(parts[2]) != want:
            bad += 1
            continue
        if seq in seen:
            dup += 1
        seen.add(seq)
    return len(seen), bad, dup


def fidelity(lab, args):
    set_state(lab, "ok")
    logpath = lab.mirror_log()
    steps = {r: [] for r in args.rates}
    for run in range(args.runs):
        for rate in args.rates:
            prefix = f"/f{run}r{rate}"
            offset = os.path.getsize(logpath)
            p, stlog = lab.start_shadowtap()
            cap0 = lab.mirror_cap.stat() if lab.mirror_cap else {}
            cpu0, t0 = cpu_seconds(p.pid), time.time()
            conns = max(32, rate // 500)
            rc = rate_client(lab, PRIMARY_PORT, rate, args.seconds, conns=conns, unique_path=prefix)
            cpu1, t1 = cpu_seconds(p.pid), time.time()
            _, counters, _ = lab.stop_shadowtap("shadowtap", stlog)
            time.sleep(0.3)

            def expect_len(seq, prefix=prefix):
                req = (f"GET {prefix}/{seq} HTTP/1.1\r\nHost: {HOST}\r\n"
                       "User-Agent: shadowtap-rate-client\r\nAccept: */*\r\n\r\n")
                return len(req) + len("-shadow")

            delivered, bad, dup = count_mirror(logpath, offset, prefix, expect_len)
            sent = rc["sent"]
            step = {"rate": rate, "client": rc, "sent": sent, "delivered": delivered, "bad": bad, "dup": dup,
                    "share": delivered / sent if sent else 0.0, "cpu_s": cpu1 - cpu0, "wall_s": t1 - t0,
                    "cpu_pct": 100.0 * (cpu1 - cpu0) / max(t1 - t0, 1e-9), "shadowtap": counters}
            if lab.mirror_cap:
                cap1 = lab.mirror_cap.stat()
                step["mirror_cap"] = {k: cap1.get(k, 0) - cap0.get(k, 0) for k in ("nr_periods", "nr_throttled")}
            steps[rate].append(step)
            log(f"run {run + 1} {rate:6d} req/s: achieved {rc['achieved_rps']:8.0f}, sent {sent}, mirrored "
                f"{delivered} ({100.0 * step['share']:.2f} %), bad {bad}, dup {dup}, shadowtap CPU "
                f"{step['cpu_pct']:.1f} % | ringbuf_full {counters.get('kernel.ringbuf_full')} gaps "
                f"{counters.get('flows.gaps')} queue_full {counters.get('queue_full')} errors "
                f"{counters.get('mirror.errors')} | connects {counters.get('mirror.connect_attempts')} saturated "
                f"{counters.get('mirror.growth_saturated')} mirror p50/p99 {counters.get('mirror.latency_p50_ms')}/"
                f"{counters.get('mirror.latency_p99_ms')} ms" + (f" throttled {step['mirror_cap']}" if lab.mirror_cap else ""))
    save(args.out, "fidelity", {"runs": args.runs, "seconds": args.seconds, "rates": args.rates,
                                "nproc": os.cpu_count(), "agent_args": args.agent_args,
                                "nginx_processes": args.nginx_processes, "client_threads": args.client_threads,
                                "mirror_cpu": args.mirror_cpu, "steps": {str(k): v for k, v in steps.items()}})


def memory(lab, args):
    set_state(lab, "ok")
    out = {}
    # 1) N idle connections, each with a request in progress.
    p, stlog = lab.start_shadowtap(extra=("--summary-interval", "1"))
    time.sleep(1.0)
    idle0 = proc_status(p.pid)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "idle_conns.py")
    client = lab.spawn("idle", lab.ns["c"], [sys.executable, script, S_ADDR, str(PRIMARY_PORT), str(args.idle_conns)],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    ready = client.stdout.readline().strip()
    t_open = time.time() - t0
    time.sleep(2.5)  # two summary lines, so "flows active" is current
    held = proc_status(p.pid)
    summary_now = read_counters(stlog)
    client.stdin.close()
    lab.stop("idle", timeout=10)
    _, final, _ = lab.stop_shadowtap("shadowtap", stlog)
    out["idle"] = {"connections": args.idle_conns, "client": ready, "open_s": t_open, "before_kb": idle0,
                   "held_kb": held, "flows_active_while_held": summary_now.get("flows.active"),
                   "final": final}
    log(f"idle: {ready} in {t_open:.1f} s; shadowtap RSS {idle0.get('VmRSS')} kB -> {held.get('VmRSS')} kB,"
        f" peak {held.get('VmHWM')} kB, flows active {summary_now.get('flows.active')}")

    # 2) Outage under load: healthy phase, then the mirror gone for args.outage seconds.
    p, stlog = lab.start_shadowtap(extra=("--summary-interval", "1"))
    time.sleep(0.5)
    start_kb = proc_status(p.pid)
    healthy = rate_client(lab, PRIMARY_PORT, args.outage_rate, 5, conns=32, body=args.outage_body)
    healthy_kb = proc_status(p.pid)
    set_state(lab, "gone")
    samples = []
    load = subprocess.Popen(["ip", "netns", "exec", lab.ns["c"], os.path.join(lab.build, "tests", "bench", "rate_client"),
                             "--addr", S_ADDR, "--port", str(PRIMARY_PORT), "--rate", str(args.outage_rate),
                             "--duration", str(args.outage), "--connections", "32", "--host", HOST,
                             "--body", str(args.outage_body)], stdout=subprocess.PIPE, text=True)
    lab.procs["outage-load"] = load
    t0 = time.time()
    while load.poll() is None and time.time() - t0 < args.outage + 15:
        samples.append((round(time.time() - t0, 1), proc_status(p.pid).get("VmRSS", 0)))
        time.sleep(1.0)
    outage_client = json.loads([ln for ln in load.stdout.read().splitlines() if ln.startswith("{")][-1])
    lab.procs.pop("outage-load", None)
    outage_kb = proc_status(p.pid)
    during = read_counters(stlog)
    set_state(lab, "ok")
    _, final, _ = lab.stop_shadowtap("shadowtap", stlog)
    out["outage"] = {"seconds": args.outage, "rate": args.outage_rate, "body": args.outage_body,
                     "start_kb": start_kb, "healthy_kb": healthy_kb, "outage_kb": outage_kb,
                     "rss_samples_kb": samples, "healthy_client": healthy, "outage_client": outage_client,
                     "counters_end_of_outage": during, "final": final}
    log(f"outage: RSS start {start_kb.get('VmRSS')} kB, healthy peak {healthy_kb.get('VmHWM')} kB, "
        f"outage peak {outage_kb.get('VmHWM')} kB; queue_full {during.get('queue_full')} errors "
        f"{during.get('mirror.errors')}")
    save(args.out, "memory", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["impact", "fidelity", "memory"], nargs="+")
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=f"sbn{os.getpid() % 100000}")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rate", type=int, default=2000, help="constant rate for the impact latency figures")
    ap.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 5000, 10000, 20000, 40000, 60000])
    ap.add_argument("--fidelity-seconds", type=float, default=3)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--outage", type=int, default=30)
    ap.add_argument("--outage-rate", type=int, default=1000)
    ap.add_argument("--outage-body", type=int, default=16384)
    ap.add_argument("--agent-args", default="", help="flags added to every shadowtap command line, "
                    "e.g. '--mirror-io epoll' (split on spaces)")
    ap.add_argument("--mirror-rx-thread", action="store_true",
                    help="the mirror's veth receives in a threaded NAPI, so its TCP receive is not charged "
                    "to the agent's sends (as with a mirror on another host; needs ethtool; "
                    "turns TSO off on the agent's side of the mirror link)")
    ap.add_argument("--nginx-processes", type=int, default=1,
                    help="worker processes of every nginx (primary, proxy, mirror); more than 1 only where the "
                    "machine has the cores (issue 16's goals above one core's rate)")
    ap.add_argument("--client-threads", type=int, default=1,
                    help="threads of wrk and rate_client (one is good for about 100,000 req/s)")
    ap.add_argument("--mirror-cpu", type=float, default=None, metavar="PCT",
                    help="the mirror nginx gets at most PCT %% of one CPU (a cgroup CPU quota): a mirror at its "
                    "capacity, for the pool's growth rule (analysis.md, section 16)")
    ap.add_argument("--cases", type=lambda s: s.split(","), default=None,
                    help="impact: only these cases, e.g. none/ok,shadowtap/ok (default: all seven)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("netbench needs root (network namespaces, BPF)", file=sys.stderr)
        return 77
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            print(f"netbench: {tool} missing (scripts/install-deps.sh --bench)", file=sys.stderr)
            return 1
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="shadowtap-bench-")
    os.chmod(workdir, 0o755)
    lab = Lab(args.tag, os.path.abspath(args.build), workdir)
    lab.agent_args = args.agent_args.split()
    lab.mirror_rx_thread = args.mirror_rx_thread
    lab.nginx_processes = args.nginx_processes
    lab.client_threads = args.client_threads
    try:
        if args.mirror_cpu:
            lab.mirror_cap = MirrorCpuCap(args.tag, args.mirror_cpu)
        lab.setup()
        lab.start_primary()
        set_state(lab, "ok")
        for part in args.part:
            log(f"--- {part}")
            if part == "impact":
                impact(lab, args)
            elif part == "fidelity":
                a = argparse.Namespace(**vars(args))
                a.seconds = args.fidelity_seconds
                fidelity(lab, a)
            else:
                memory(lab, args)
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
