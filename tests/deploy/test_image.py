#!/usr/bin/env python3
"""The container image, built with podman from deploy/Dockerfile and run with the
DaemonSet's container spec, read from deploy/daemonset.yaml (podman_spec.py), against
network namespaces:

  cli (198.18.0.1) --veth-- node (198.18.0.2; the primary on the rule's port; the container,
                                  --network host, i.e. the node namespace's network)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; the mirror)

No registry is used: the Debian base image is made with debootstrap and cached in
podman's storage (deploy/debian-base.sh), the build stage's packages come from Debian's
apt repository, and the image is built with --pull=never. The ConfigMap's config.toml is
used as it is, except `interface`, which names the node's veth; the rule's mirror name
resolves to the mirror namespace, as cluster DNS would resolve it.

Checks: the container runs with exactly the manifest's capabilities (its CapEff and CapBnd)
and mounts; /healthz and /readyz answer 200 on the probes' port; requests on the sampled
connections are mirrored byte for byte with the host suffix, as many as /metrics counts;
`podman stop` (SIGTERM, then SIGKILL after terminationGracePeriodSeconds) ends it with exit
0 well before the grace period, and leaves no tc filter, tcx link or BPF program of ours.

Removes what it created (namespaces, container, image and the build's intermediate
images); keeps the base image, the build-dependencies stage and the ccache build cache,
so a second run takes a fraction of the first. Needs root, podman and debootstrap: skips
(77) without them, except under CI=true, where it fails.

Usage: test_image.py --source DIR [--keep-image | --image IMAGE]
"""
import argparse
import fcntl
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "e2e")
sys.path.insert(0, HERE)
sys.path.insert(0, E2E)
import netlab  # noqa: E402
import podman_spec  # noqa: E402
from harness import PY, check, finish, read_records, shadow_host, wait_stable  # noqa: E402

BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/debian:bookworm")  # deploy/debian-base.sh's
BUILD_DEPS_IMAGE = "localhost/shadowtap-build-deps:bookworm"
# runc, not crun: Debian 12's crun (1.8) refuses hosts with hybrid cgroups (v1
# controllers plus a cgroup2 mount that has a controller), as CI's machines have.
PODMAN = ["podman", "--runtime", os.environ.get("SHADOWTAP_PODMAN_RUNTIME", "runc")]
# Linux capability numbers (include/uapi/linux/capability.h).
CAP_NUMBERS = {"NET_ADMIN": 12, "SYS_ADMIN": 21, "PERFMON": 38, "BPF": 39}


def need(cond, msg):
    if cond:
        return
    if os.environ.get("CI") == "true":
        print(f"FAIL: {msg}, and CI=true forbids skipping", file=sys.stderr)
        sys.exit(1)
    print(f"SKIP: {msg}", file=sys.stderr)
    sys.exit(77)


def run(argv, **kw):
    check_rc = kw.pop("check", True)
    r = subprocess.run(argv, text=True, **kw)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... exited with {r.returncode}:\n{r.stdout or ''}{r.stderr or ''}")
    return r


def ulimits():
    """--ulimit flags no higher than this process may have. Rootful podman asks for
    1048576 open files and processes, which runc can only set with CAP_SYS_RESOURCE;
    CI's sandbox does not give root that capability. The manifest sets no limits, so
    the container gets the machine's: the open files this process may have, and the
    processes up to pid_max (podman itself runs with no more)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open("/proc/sys/kernel/pid_max") as f:
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], int(f.read()))
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def podman(*args, **kw):
    return run([*PODMAN, *args], capture_output=True, **kw)


def image_id(ref):
    """The full id without the "sha256:" that `podman images --no-trunc` puts before it."""
    return ref.strip().removeprefix("sha256:")


def image_ids():
    return {image_id(i) for i in podman("images", "-a", "-q", "--no-trunc").stdout.split()}


class Timer:
    def __init__(self):
        self.start = time.monotonic()
        self.phases = []

    def lap(self, name):
        now = time.monotonic()
        self.phases.append((name, now - self.start))
        self.start = now
        print(f"time  {name}: {self.phases[-1][1]:.0f} s", flush=True)


def build_image(source, tag, workdir, timer):
    """Base image (cached), build-dependencies stage (cached), then the image."""
    r = run([os.path.join(source, "deploy", "debian-base.sh")], capture_output=True, check=False,
            env={**os.environ, "BASE_IMAGE": BASE_IMAGE})
    if r.returncode != 0:
        raise RuntimeError("deploy/debian-base.sh failed:\n" + r.stdout + r.stderr)
    timer.lap(f"base image {BASE_IMAGE}")
    common = ["build", "--pull=never", "--network", "host", "--layers", "--build-arg", f"DEBIAN_IMAGE={BASE_IMAGE}",
              "-f", os.path.join(source, "deploy", "Dockerfile")]
    log = os.path.join(workdir, "build.log")
    with open(log, "w") as out:
        # The stage with the build's Debian packages is tagged, so it survives the
        # clean-up of this run's intermediate images and the next run reuses it.
        for extra in (["--target", "deps", "-t", BUILD_DEPS_IMAGE], ["-t", tag]):
            r = run([*PODMAN, *common, *extra, source], stdout=out, stderr=subprocess.STDOUT, check=False)
            if r.returncode != 0:
                with open(log) as f:
                    raise RuntimeError("podman build failed:\n" + "".join(f.readlines()[-40:]))
            timer.lap("podman build " + ("(build dependencies)" if "deps" in extra else "(image)"))
    size = int(podman("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
    print(f"image {tag}: {size} bytes ({size / 1e6:.1f} MB)", flush=True)
    check_ca_bundle(tag, workdir)


def check_ca_bundle(tag, workdir):
    """The system CAs (a rule's tls=true without tls-ca verifies the mirror against them),
    where OpenSSL's default verify paths (OPENSSLDIR /usr/lib/ssl) find them."""
    cid = podman("create", tag).stdout.strip()
    tar_path = os.path.join(workdir, "rootfs.tar")
    try:
        podman("export", "-o", tar_path, cid)
    finally:
        podman("rm", cid, check=False)
    with tarfile.open(tar_path) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
        bundle = members.get("etc/ssl/certs/ca-certificates.crt")
        count = tar.extractfile(bundle).read().count(b"BEGIN CERTIFICATE") if bundle and bundle.isfile() else 0
        links = {p: members[p].linkname if p in members and members[p].issym() else None
                 for p in ("usr/lib/ssl/cert.pem", "usr/lib/ssl/certs")}
    os.remove(tar_path)
    check(count > 100, f"the image holds Debian's CA bundle ({count} certificates)")
    check(links == {"usr/lib/ssl/cert.pem": "/etc/ssl/certs/ca-certificates.crt", "usr/lib/ssl/certs": "/etc/ssl/certs"},
          f"OpenSSL's default verify paths point at it: {links}")


def bpf_objects(pid):
    """(program ids, link ids) the process holds open, from /proc/PID/fdinfo."""
    progs, links = set(), set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        if target == "anon_inode:bpf-prog":
            progs.add(int(re.search(r"^prog_id:\s*(\d+)", info, re.M).group(1)))
        elif target == "anon_inode:bpf_link":
            links.add(int(re.search(r"^link_id:\s*(\d+)", info, re.M).group(1)))
            m = re.search(r"^prog_id:\s*(\d+)", info, re.M)
            if m:
                progs.add(int(m.group(1)))
    return progs, links


def bpf_exists(kind, ident):
    return run(["bpftool", kind, "show", "id", str(ident)], capture_output=True, check=False).returncode == 0


def http_get(lab, ns, url):
    r = lab.run(ns, ["curl", "-s", "-m", "2", "-o", "-", "-w", "\n%{http_code}", url],
                capture_output=True, text=True, check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def rule_items(rule):
    return dict(item.split("=", 1) for item in rule.split(","))


def toml_line(key, value):
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key} = {value}"
    return f"{key} = {json.dumps(value)}"  # strings and lists of strings: JSON is valid TOML


class ImageTest:
    """One run: the manifest read once, then build, lab, container, checks, clean-up."""

    def __init__(self, source, image):
        self.source = source
        docs = podman_spec.load(os.path.join(source, "deploy", "daemonset.yaml"))
        self.pod, self.spec = podman_spec.daemonset(docs)
        self.probes = podman_spec.probes(self.spec)
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        config_volume = next(volumes[m["name"]] for m in self.spec["volumeMounts"]
                             if "configMap" in volumes[m["name"]])
        self.config_name = config_volume["configMap"]["name"]
        self.config_files = podman_spec.config_map(docs, self.config_name)
        self.config = tomllib.loads(self.config_files["config.toml"])
        rules = self.config["rule"]
        check(len(rules) == 1, f"the ConfigMap has one rule: {rules}")
        rule = rule_items(rules[0])
        self.port = int(rule["port"])
        self.mirror_host, _, mirror_port = rule["mirror"].rpartition(":")
        self.mirror_port = int(mirror_port)
        self.suffix = rule.get("suffix", "-shadow")
        self.percentage = float(rule.get("percentage", 100))

        self.timer = Timer()
        self.lab = netlab.Lab("sd")
        self.image = image or f"localhost/shadowtap-test:{self.lab.tag}"
        self.name = f"shadowtap-{self.lab.tag}"
        self.workdir = tempfile.mkdtemp(prefix="st-image-")
        self.container_started = False

    def start_lab(self):
        lab = self.lab
        self.cli, self.node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, self.node_if = lab.link(self.cli, self.node, ["198.18.0.1/24"], ["198.18.0.2/24"], "c")
        lab.link(self.node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        self.primary_rec = os.path.join(self.workdir, "primary.jsonl")
        self.mirror_rec = os.path.join(self.workdir, "mirror.jsonl")
        for ns, rec, who, port in ((self.node, self.primary_rec, "v1", self.port),
                                   (mir, self.mirror_rec, "v1-mirroring", self.mirror_port)):
            proc = lab.spawn(ns, [PY, os.path.join(E2E, "recording_server.py"), "--port", str(port),
                                  "--record", rec, "--name", who], stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{who} server did not start")

    def start_container(self):
        # The ConfigMap, with the node's interface in place of the cluster node's.
        config_dir = os.path.join(self.workdir, "configmap", self.config_name)
        os.makedirs(config_dir)
        for fname, text in self.config_files.items():
            if fname == "config.toml":
                self.config["interface"] = [self.node_if]
                text = "\n".join(toml_line(k, v) for k, v in self.config.items()) + "\n"
            with open(os.path.join(config_dir, fname), "w") as f:
                f.write(text)
        # hostPath volumes: the kernel's BPF filesystem is the node's own; any other
        # node directory gets a per-run stand-in, so the test leaves the machine's alone.
        node_root = os.path.join(self.workdir, "node")
        flags, st_args = podman_spec.podman_run_args(
            self.pod, self.spec, config_dirs={self.config_name: config_dir},
            host_path=lambda p: p if p == "/sys/fs/bpf" else node_root + p)
        # Cluster DNS, as far as this test needs it: the rule's mirror name. Other names
        # are asked of the node namespace's own loopback, so no query leaves the machine.
        flags += ["--add-host", f"{self.mirror_host}:198.18.1.2", "--dns", "127.0.0.1", *ulimits()]
        argv = ["nsenter", f"--net=/run/netns/{self.node}", *PODMAN, "run", "-d", "--name", self.name, *flags,
                self.image, *st_args]
        print("$ " + " ".join(argv), flush=True)
        self.container_started = True
        run(argv, capture_output=True)
        self.pid = int(podman("inspect", "-f", "{{.State.Pid}}", self.name).stdout.strip())

    def check_probes(self):
        """The probes, on the port the manifest names; False when they never answer."""
        deadline = time.time() + 30
        ready = set()
        while time.time() < deadline and len(ready) < len(self.probes):
            for kind, (path, port) in self.probes.items():
                if kind not in ready and http_get(self.lab, self.node, f"http://127.0.0.1:{port}{path}")[0] == 200:
                    ready.add(kind)
            time.sleep(0.2)
        for kind, (path, port) in self.probes.items():
            check(kind in ready, f"{kind} probe: GET :{port}{path} answers 200")
        if len(ready) < len(self.probes):
            print(podman("logs", self.name, check=False).stderr[-4000:])
            return False
        self.timer.lap("container ready")
        return True

    def check_privileges(self):
        """Exactly the manifest's capabilities and mounts; the BPF objects it holds."""
        with open(f"/proc/{self.pid}/status") as f:
            status = f.read()
        want_caps = set(self.spec["securityContext"]["capabilities"]["add"])
        for field in ("CapEff", "CapBnd"):
            raw = int(re.search(rf"^{field}:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
            want = sum(1 << CAP_NUMBERS[c] for c in want_caps)
            check(raw == want, f"{field} is exactly {sorted(want_caps)} ({raw:#x})")
        with open(f"/proc/{self.pid}/mountinfo") as f:
            mount_points = {line.split()[4] for line in f}
        for m in self.spec["volumeMounts"]:
            check(m["mountPath"] in mount_points, f"{m['mountPath']} is mounted")
        mounts = json.loads(podman("inspect", "-f", "{{json .Mounts}}", self.name).stdout)
        given = {(m["Destination"], m["RW"]) for m in mounts}
        want = {(m["mountPath"], not m.get("readOnly", False)) for m in self.spec["volumeMounts"]}
        check(given == want,
              f"the volumes are exactly the manifest's mounts, read-only where it says so: {sorted(given)}")
        self.progs, self.links = bpf_objects(self.pid)
        check(len(self.progs) >= 1,
              f"the agent holds its BPF programs {sorted(self.progs)} (links {sorted(self.links)})")
        # The manifest's CPU limit, read by the agent from inside the container's
        # cgroup, caps --workers auto (one worker per whole CPU of it).
        limit = self.spec.get("resources", {}).get("limits", {}).get("cpu")
        if limit is not None:
            cpus = float(podman_spec._cpus(limit))
            logs = podman("logs", self.name, check=False)
            line = next((ln for ln in (logs.stdout + logs.stderr).splitlines() if "usable core" in ln), "")
            want_workers = max(1, min(4, len(os.sched_getaffinity(0)) // 4, int(cpus)))
            check(f"CPU limit {cpus:g}" in line and re.search(rf"\b{want_workers} workers? \(", line) is not None,
                  f"the agent read the manifest's CPU limit ({limit}) and runs {want_workers} worker(s): {line.strip()!r}")

    def check_mirroring(self, count=40):
        """One request per connection, so the per-connection sampling shows."""
        out = os.path.join(self.workdir, "client.json")
        host_header = f"httpbin:{self.port}"
        r = self.lab.run(self.cli, [PY, os.path.join(E2E, "client.py"), "--v4", "198.18.0.2", "--port", str(self.port),
                                    "--host-header", host_header, "--workload", "conns", "--count", str(count),
                                    "--out", out], timeout=120)
        check(r.returncode == 0, f"{count} requests on {count} connections answered by the primary")
        mirrored = wait_stable(self.mirror_rec, quiet=2.0, timeout=30)
        sent, got = read_records(self.primary_rec), read_records(self.mirror_rec)
        expected = {shadow_host(x).replace(b"-shadow", self.suffix.encode()) for x in sent}
        check(len(sent) == count, f"the primary got {len(sent)} of {count} requests")
        what = f"{mirrored} of {count} connections' requests mirrored ({self.percentage:g} %)"
        if self.percentage >= 100:
            check(mirrored == count, what)
        elif self.percentage <= 0:
            check(mirrored == 0, what)
        else:
            check(0 < mirrored < count, what)
        check(all(g in expected for g in got) and len(set(got)) == len(got),
              f"every mirrored request is a primary request, once, with Host httpbin{self.suffix}:{self.port}")
        _, metrics = http_get(self.lab, self.node, f"http://127.0.0.1:{self.probes['readiness'][1]}/metrics")
        answered = metric(metrics, "shadowtap_mirror_requests_total", outcome="response_2xx")
        check(answered == mirrored, f"/metrics: {answered:g} mirror responses 2xx, the mirror got {mirrored}")
        requests = metric(metrics, "shadowtap_requests_total")
        check(requests == mirrored, f"/metrics: shadowtap_requests_total is {requests:g}")
        self.timer.lap("traffic mirrored")

    def check_stop(self):
        """SIGTERM, as the kubelet sends it, with the manifest's grace period."""
        grace = podman_spec.stop_timeout(self.pod)
        t0 = time.monotonic()
        podman("stop", "-t", str(grace), self.name)
        took = time.monotonic() - t0
        code = int(podman("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())
        check(code == 0, f"exit code {code} after SIGTERM")
        check(took < grace, f"stopped in {took:.1f} s, within the {grace} s grace period")
        left_progs = {p for p in self.progs if bpf_exists("prog", p)}
        left_links = {link for link in self.links if bpf_exists("link", link)}
        check(not left_progs and not left_links,
              f"no BPF program or link of ours left (progs {sorted(left_progs)}, links {sorted(left_links)})")
        for direction in ("ingress", "egress"):
            out = self.lab.run(self.node, ["tc", "filter", "show", "dev", self.node_if, direction],
                               capture_output=True, text=True).stdout
            check("st_capture" not in out, f"no tc filter of ours on {self.node_if} {direction}")
        self.timer.lap("stopped")

    def clean_up(self, images_before, remove_images):
        if self.container_started:
            podman("rm", "-f", "-t", "0", self.name, check=False)
        self.lab.close()
        if remove_images:
            podman("rmi", "-f", self.image, check=False)
            # This run's intermediate images (the build stage's layers): the next run
            # rebuilds them from the cached base and dependency images and ccache.
            keep = {image_id(podman("image", "inspect", "-f", "{{.Id}}", i, check=False).stdout)
                    for i in (BUILD_DEPS_IMAGE, BASE_IMAGE)}
            if "" in keep or len(keep) != 2:
                print(f"not removing this run's intermediate images: cannot tell {BUILD_DEPS_IMAGE} and "
                      f"{BASE_IMAGE} apart from them")
                keep = None
            for i in sorted(image_ids() - images_before - keep) if keep else []:
                podman("rmi", "-f", i, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the repository (the build context)")
    ap.add_argument("--keep-image", action="store_true", help="leave the built image (for inspection)")
    ap.add_argument("--image", help="run this image instead of building one (while working on the checks)")
    args = ap.parse_args()
    need(os.geteuid() == 0, "the image test needs root (podman, network namespaces, BPF)")
    for tool in ("podman", PODMAN[2], "debootstrap", "nsenter", "bpftool", "curl"):
        need(shutil.which(tool), f"the image test needs {tool} (scripts/install-deps.sh installs it)")

    # One run at a time on a machine: the clean-up removes the images this run created,
    # which must not include another run's.
    lock = open(os.path.join("/run/lock" if os.path.isdir("/run/lock") else "/tmp", "shadowtap-deploy-image.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    images_before = image_ids()
    t = ImageTest(os.path.abspath(args.source), args.image)
    try:
        if not args.image:
            build_image(t.source, t.image, t.workdir, t.timer)
        t.start_lab()
        t.start_container()
        if t.check_probes():
            t.check_privileges()
            t.check_mirroring()
            t.check_stop()
    finally:
        t.clean_up(images_before, remove_images=not args.keep_image and not args.image)
    for kept in (BASE_IMAGE, BUILD_DEPS_IMAGE):
        check(podman("image", "exists", kept, check=False).returncode == 0, f"{kept} is kept for the next run")
    print(f"time  total: {sum(seconds for _, seconds in t.timer.phases):.0f} s")
    return finish("deploy_image")


if __name__ == "__main__":
    sys.exit(main())
