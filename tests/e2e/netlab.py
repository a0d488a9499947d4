"""Throwaway test hosts: network namespaces joined by veth pairs.

Every name carries a per-run tag so parallel runs never collide; everything
created is removed by close(), which also runs at interpreter exit and on
SIGTERM/SIGINT. Addresses come only from 198.18.0.0/15 and 2001:db8::/32.
"""
import atexit
import os
import secrets
import signal
import subprocess
import sys


def sh(*args, check=True, capture=False):
    return subprocess.run(args, check=check, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)


class Lab:
    def __init__(self, prefix="st"):
        self.tag = prefix + secrets.token_hex(3)
        self.namespaces = []
        self.processes = []
        self.hosts_dirs = []
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        self.close()
        sys.exit(128 + signum)

    def netns(self, role):
        name = f"{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, ns_a, ns_b, addrs_a, addrs_b, role):
        """veth pair between two namespaces; returns (ifname_a, ifname_b)."""
        a, b = f"{self.tag}{role}a", f"{self.tag}{role}b"
        sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
        for ns, ifname, addrs in ((ns_a, a, addrs_a), (ns_b, b, addrs_b)):
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname, *extra)
            sh("ip", "-n", ns, "link", "set", ifname, "up")
        return a, b

    def hosts_file(self, ns, entries):
        """/etc/hosts and /etc/resolv.conf seen by `ip netns exec ns` (iproute2
        bind-mounts /etc/netns/NS/*). The resolver points at the namespace's own
        loopback, so a name lookup there never sends a packet off the machine."""
        d = f"/etc/netns/{ns}"
        os.makedirs(d, exist_ok=True)
        self.hosts_dirs.append(d)
        with open(f"{d}/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n")
            for name, addr in entries.items():
                f.write(f"{addr} {name}\n")
        with open(f"{d}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def spawn(self, ns, argv, **kw):
        # Its own process group, so close() ends what it started too (nginx's
        # workers outlive a killed master otherwise).
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.processes.append(p)
        return p

    def run(self, ns, argv, **kw):
        return subprocess.run(["ip", "netns", "exec", ns, *argv], **kw)

    def close(self):
        for p in self.processes:
            # Its group first (its id is the pid, see spawn): nginx's workers, a
            # shell's children; then the process itself, whatever spawn was told.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()
        for ns in self.namespaces:
            # Deleting a namespace removes its veth ends, qdiscs and filters.
            sh("ip", "netns", "delete", ns, check=False, capture=True)
        self.namespaces.clear()
        for d in self.hosts_dirs:
            for name in ("hosts", "resolv.conf"):
                try:
                    os.remove(f"{d}/{name}")
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.hosts_dirs.clear()


def kernel_has_tcx():
    """tcx hooks are in Linux 6.6 and later. Read from the release, not from
    shadowtap's own probe, so that a wrong probe cannot agree with itself."""
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 6)


def require_root_or_skip(what):
    """Exit 77 (CTest skip) without root, unless CI=true where a skip is a failure."""
    if os.geteuid() == 0:
        return
    skip(f"{what} needs root (network namespaces, BPF)")


def skip(msg):
    """Exit 77 (CTest skip) saying why, unless CI=true where a skip is a failure."""
    if os.environ.get("CI") == "true":
        print(f"FAIL: {msg}, and CI=true forbids skipping", file=sys.stderr)
        sys.exit(1)
    print(f"SKIP: {msg}", file=sys.stderr)
    sys.exit(77)
