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
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import netlab  # noqa: E402
import podman_spec  # noqa: E402
from harness import PY, check, finish, read_records, shadow_host, wait_stable  # noqa: E402

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


def image_ids():
    return set(podman("images", "-a", "-q", "--no-trunc").stdout.split())


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
    r = run([os.path.join(source, "deploy", "debian-base.sh")], capture_output=True, check=False)
    if r.returncode != 0:
        raise RuntimeError("deploy/debian-base.sh failed:\n" + r.stdout + r.stderr)
    base = r.stdout.strip().splitlines()[-1]
    timer.lap(f"base image {base}")
    common = ["build", "--pull=never", "--network", "host", "--layers", "--build-arg", f"DEBIAN_IMAGE={base}",
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


def cap_set(status_text, field):
    value = int(re.search(rf"^{field}:\s*([0-9a-f]+)$", status_text, re.M).group(1), 16)
    return {name for name, bit in CAP_NUMBERS.items() if value >> bit & 1}, value


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the repository (the build context)")
    ap.add_argument("--keep-image", action="store_true", help="leave the built image (for inspection)")
    ap.add_argument("--image", help="run this image instead of building one (while working on the checks)")
    args = ap.parse_args()
    source = os.path.abspath(args.source)
    need(os.geteuid() == 0, "the image test needs root (podman, network namespaces, BPF)")
    for tool in ("podman", PODMAN[2], "debootstrap", "nsenter", "bpftool", "curl"):
        need(shutil.which(tool), f"the image test needs {tool} (scripts/install-deps.sh installs it)")

    docs = podman_spec.load(os.path.join(source, "deploy", "daemonset.yaml"))
    pod, spec = podman_spec.daemonset(docs)
    probes = podman_spec.probes(spec)
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(volumes[m["name"]] for m in spec["volumeMounts"] if "configMap" in volumes[m["name"]])
    config_name = config_volume["configMap"]["name"]
    config_files = podman_spec.config_map(docs, config_name)
    config = tomllib.loads(config_files["config.toml"])
    rules = config["rule"]
    check(len(rules) == 1, f"the ConfigMap has one rule: {rules}")
    rule = rule_items(rules[0])
    port = int(rule["port"])
    mirror_host, _, mirror_port = rule["mirror"].rpartition(":")
    suffix = rule.get("suffix", "-shadow")
    percentage = float(rule.get("percentage", 100))

    # One run at a time on a machine: the clean-up removes the images this run created,
    # which must not include another run's.
    lock = open("/run/lock/shadowtap-deploy-image.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)

    timer = Timer()
    lab = netlab.Lab("sd")
    tag = lab.tag
    image = args.image or f"localhost/shadowtap-test:{tag}"
    name = f"shadowtap-{tag}"
    workdir = tempfile.mkdtemp(prefix="st-image-")
    before = image_ids()
    container_started = False
    try:
        if not args.image:
            build_image(source, image, workdir, timer)

        cli, node, mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, node_if = lab.link(cli, node, ["198.18.0.1/24"], ["198.18.0.2/24"], "c")
        lab.link(node, mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        primary_rec, mirror_rec = os.path.join(workdir, "primary.jsonl"), os.path.join(workdir, "mirror.jsonl")
        for ns, rec, who, p in ((node, primary_rec, "v1", port), (mir, mirror_rec, "v1-mirroring", int(mirror_port))):
            proc = lab.spawn(ns, [PY, os.path.join(HERE, "..", "e2e", "recording_server.py"), "--port", str(p),
                                  "--record", rec, "--name", who], stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{who} server did not start")

        # The ConfigMap, with the node's interface in place of the cluster node's.
        config_dir = os.path.join(workdir, "configmap", config_name)
        os.makedirs(config_dir)
        for fname, text in config_files.items():
            if fname == "config.toml":
                config["interface"] = [node_if]
                text = "\n".join(toml_line(k, v) for k, v in config.items()) + "\n"
            with open(os.path.join(config_dir, fname), "w") as f:
                f.write(text)
        # hostPath volumes: the kernel's BPF filesystem is the node's own; any other
        # node directory gets a per-run stand-in, so the test leaves the machine's alone.
        node_root = os.path.join(workdir, "node")
        flags, st_args = podman_spec.podman_run_args(
            pod, spec, config_dirs={config_name: config_dir},
            host_path=lambda p: p if p == "/sys/fs/bpf" else node_root + p)
        # Cluster DNS, as far as this test needs it: the rule's mirror name. Other names
        # are asked of the node namespace's own loopback, so no query leaves the machine.
        flags += ["--add-host", f"{mirror_host}:198.18.1.2", "--dns", "127.0.0.1", *ulimits()]
        argv = ["nsenter", f"--net=/run/netns/{node}", *PODMAN, "run", "-d", "--name", name, *flags, image, *st_args]
        print("$ " + " ".join(argv), flush=True)
        container_started = True
        run(argv, capture_output=True)
        pid = int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())

        # The probes, on the port the manifest names.
        deadline = time.time() + 30
        ready = {}
        while time.time() < deadline and len(ready) < len(probes):
            for kind, (path, p) in probes.items():
                if kind not in ready and http_get(lab, node, f"http://127.0.0.1:{p}{path}")[0] == 200:
                    ready[kind] = time.time()
            time.sleep(0.2)
        for kind, (path, p) in probes.items():
            check(kind in ready, f"{kind} probe: GET :{p}{path} answers 200")
        if len(ready) < len(probes):
            print(podman("logs", name, check=False).stderr[-4000:])
            return finish("deploy_image")
        timer.lap("container ready")

        # Exactly the manifest's capabilities, and its mounts.
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        want_caps = set(spec["securityContext"]["capabilities"]["add"])
        for field in ("CapEff", "CapBnd"):
            caps, raw = cap_set(status, field)
            want = sum(1 << CAP_NUMBERS[c] for c in want_caps)
            check(raw == want, f"{field} is exactly {sorted(want_caps)} ({raw:#x})")
        with open(f"/proc/{pid}/mountinfo") as f:
            mount_points = {line.split()[4] for line in f}
        for m in spec["volumeMounts"]:
            check(m["mountPath"] in mount_points, f"{m['mountPath']} is mounted")
        given = {(m["Destination"], m["RW"]) for m in json.loads(podman("inspect", "-f", "{{json .Mounts}}", name).stdout)}
        want = {(m["mountPath"], not m.get("readOnly", False)) for m in spec["volumeMounts"]}
        check(given == want, f"the volumes are exactly the manifest's mounts, read-only where it says so: {sorted(given)}")
        progs, links = bpf_objects(pid)
        check(len(progs) >= 1, f"the agent holds its BPF programs {sorted(progs)} (links {sorted(links)})")

        # Traffic: one request per connection, so the per-connection sampling shows.
        count = 40
        out = os.path.join(workdir, "client.json")
        host_header = f"httpbin:{port}"
        r = lab.run(cli, [PY, os.path.join(HERE, "..", "e2e", "client.py"), "--v4", "198.18.0.2", "--port", str(port),
                          "--host-header", host_header, "--workload", "conns", "--count", str(count),
                          "--out", out], timeout=120)
        check(r.returncode == 0, f"{count} requests on {count} connections answered by the primary")
        mirrored = wait_stable(mirror_rec, quiet=2.0, timeout=30)
        sent = [r for r in read_records(primary_rec)]
        got = read_records(mirror_rec)
        expected = {shadow_host(x).replace(b"-shadow", suffix.encode()) for x in sent}
        check(len(sent) == count, f"the primary got {len(sent)} of {count} requests")
        if percentage >= 100:
            check(mirrored == count, f"{mirrored} of {count} requests mirrored ({percentage:g} %)")
        else:
            check(0 < mirrored < count, f"{mirrored} of {count} connections' requests mirrored ({percentage:g} %)")
        check(all(g in expected for g in got),
              f"every mirrored request is a primary request with Host {host_header.replace(':', suffix + ':')}")
        _, metrics = http_get(lab, node, f"http://127.0.0.1:{probes['readiness'][1]}/metrics")
        answered = metric(metrics, "shadowtap_mirror_requests_total", outcome="response_2xx")
        check(answered == mirrored, f"/metrics: {answered:g} mirror responses 2xx (outcome=response_2xx), the mirror got {mirrored}")
        check(metric(metrics, "shadowtap_requests_total") == mirrored,
              f"/metrics: shadowtap_requests_total is {metric(metrics, 'shadowtap_requests_total'):g}")
        timer.lap("traffic mirrored")

        # SIGTERM, as the kubelet sends it, with the manifest's grace period.
        grace = podman_spec.stop_timeout(pod)
        t0 = time.monotonic()
        podman("stop", "-t", str(grace), name)
        took = time.monotonic() - t0
        code = int(podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip())
        check(code == 0, f"exit code {code} after SIGTERM")
        check(took < grace, f"stopped in {took:.1f} s, within the {grace} s grace period")
        left_progs = {p for p in progs if bpf_exists("prog", p)}
        left_links = {l for l in links if bpf_exists("link", l)}
        check(not left_progs and not left_links, f"no BPF program or link of ours left (progs {sorted(left_progs)}, "
              f"links {sorted(left_links)})")
        for direction in ("ingress", "egress"):
            out = lab.run(node, ["tc", "filter", "show", "dev", node_if, direction],
                          capture_output=True, text=True).stdout
            check("st_capture" not in out, f"no tc filter of ours on {node_if} {direction}")
        timer.lap("stopped")
    finally:
        if container_started:
            podman("rm", "-f", "-t", "0", name, check=False)
        lab.close()
        if not args.keep_image and not args.image:
            podman("rmi", "-f", image, check=False)
            # This run's intermediate images (the build stage's layers): the next run
            # rebuilds them from the cached base and dependency images and ccache.
            keep = {podman("inspect", "-f", "{{.Id}}", i, check=False).stdout.strip()
                    for i in (BUILD_DEPS_IMAGE, "localhost/debian:bookworm")}
            for i in sorted(image_ids() - before - keep):
                podman("rmi", "-f", i, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"time  total: {sum(t for _, t in timer.phases):.0f} s")
    return finish("deploy_image")


if __name__ == "__main__":
    sys.exit(main())
