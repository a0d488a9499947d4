#!/usr/bin/env python3
"""--workers auto under a cgroup CPU limit (a container's limits.cpu): the agent
reads the limit from the kernel's cgroup files (v1 cpu.cfs_quota_us on hybrid
hosts, v2 cpu.max), says so in its startup log, and runs no more workers than
whole CPUs of the limit; an explicit --workers above the limit is warned about.
The worker arithmetic is unit-tested (tests/pipeline/workers_test.cc); this test
proves the limit is read from a real cgroup the agent runs in.

Usage: test_cpu_limit.py --shadowtap PATH
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import check, finish  # noqa: E402


def cpu_hierarchy():
    """(mount point, v2) of the hierarchy holding the cpu controller, as the agent picks it."""
    unified = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields, rest = before.split(), after.split()
            if len(fields) < 5 or len(rest) < 3:
                continue
            if rest[0] == "cgroup" and "cpu" in rest[2].split(","):
                return fields[4], False
            if rest[0] == "cgroup2" and unified is None:
                unified = fields[4]
    return unified, True


def make_cgroup(name, quota_us, period_us):
    """A cgroup with a CPU limit of quota/period CPUs: (its directory, an undo
    for the parent's controllers or None). Nothing is left if it fails."""
    mount, v2 = cpu_hierarchy()
    if mount is None:
        raise OSError("no cgroup file system is mounted")
    path = os.path.join(mount, name)
    undo = None
    if v2:
        control = os.path.join(mount, "cgroup.subtree_control")
        with open(control) as f:
            enabled = f.read().split()
        if "cpu" not in enabled:
            with open(control, "w") as f:
                f.write("+cpu")
            undo = (control, "-cpu")
    os.mkdir(path)
    try:
        if v2:
            with open(os.path.join(path, "cpu.max"), "w") as f:
                f.write(f"{quota_us} {period_us}")
        else:
            with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                f.write(str(period_us))
            with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota_us))
    except OSError:
        remove_cgroup(path, undo)
        raise
    return path, undo


def remove_cgroup(path, undo):
    """rmdir once its processes are gone (they leave it as they exit); True when removed."""
    for _ in range(50):
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.1)
    if undo is not None:
        try:
            with open(undo[0], "w") as f:
                f.write(undo[1])
        except OSError:
            pass
    return not os.path.exists(path)


def start_log(lab, ns, binary, cgroup, extra, log_path):
    """Starts the agent inside `cgroup`; returns its startup log once the workers line is in it."""
    # nsenter, not `ip netns exec`: that mounts a sysfs of its own, without
    # /sys/fs/cgroup, where no limit could be read (a pod's agent sees its own).
    cmd = f'echo $$ > {cgroup}/cgroup.procs && exec nsenter --net=/run/netns/{ns} "$0" "$@"'
    with open(log_path, "w") as log:
        p = subprocess.Popen(["sh", "-c", cmd, binary, "-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", *extra],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab.processes.append(p)  # close() ends it whatever happens below
    text = ""
    deadline = time.time() + 20
    while time.time() < deadline and p.poll() is None:
        with open(log_path) as f:
            text = f.read()
        if "usable core" in text:
            break
        time.sleep(0.2)
    in_cgroup = False
    if p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/cgroup") as f:
                in_cgroup = any(line.rstrip("\n").endswith("/" + os.path.basename(cgroup)) for line in f)
        except OSError:
            pass  # it exited meanwhile: the log says why
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with open(log_path) as f:
        text = f.read()
    return text, in_cgroup, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    binary = ap.parse_args().shadowtap
    netlab.require_root_or_skip("the CPU limit test")
    lab = netlab.Lab()
    cgroup, undo = None, None
    workdir = f"/tmp/{lab.tag}-cpu"
    os.makedirs(workdir, exist_ok=True)
    try:
        ns = lab.netns("cpu")
        try:
            cgroup, undo = make_cgroup(f"{lab.tag}-cpu", 150000, 100000)  # 1.5 CPUs
        except OSError as e:
            netlab.skip(f"cannot make a cgroup with a CPU limit here: {e}")

        text, in_cgroup, rc = start_log(lab, ns, binary, cgroup, [], f"{workdir}/auto.log")
        line = next((l for l in text.splitlines() if "usable core" in l), "")
        print(f"      auto: {line.strip()}")
        check(in_cgroup, "the agent ran inside the limited cgroup")
        check("CPU limit 1.5" in line, "--workers auto: the startup log states the cgroup's CPU limit of 1.5")
        check("at most one per CPU of the limit" in line, "--workers auto: the log says the limit caps the workers")
        check(re.search(r"\b1 worker \(", line) is not None, "--workers auto under 1.5 CPUs: one worker")
        check(rc == 0, f"the agent stopped cleanly on SIGTERM (rc {rc})")

        text, in_cgroup, rc = start_log(lab, ns, binary, cgroup, ["--workers", "2"], f"{workdir}/two.log")
        line = next((l for l in text.splitlines() if "usable core" in l), "")
        print(f"      --workers 2: {line.strip()}")
        check(in_cgroup and "2 workers (--workers;" in line and "CPU limit 1.5" in line,
              "--workers 2: two workers as asked, the limit stated")
        check("--workers 2 under a CPU limit of 1.5" in text,
              "--workers 2 above a 1.5 CPU limit: a warning that says to raise the limit or use auto")
        check(rc == 0, f"the agent stopped cleanly on SIGTERM (rc {rc})")
    finally:
        lab.close()
        if cgroup is not None:
            check(remove_cgroup(cgroup, undo), f"the test's cgroup {cgroup} is removed")
        for name in ("auto.log", "two.log"):
            try:
                os.remove(f"{workdir}/{name}")
            except OSError:
                pass
        try:
            os.rmdir(workdir)
        except OSError:
            pass
    sys.exit(finish("cpu limit"))


if __name__ == "__main__":
    main()
