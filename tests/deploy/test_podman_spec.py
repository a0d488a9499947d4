#!/usr/bin/env python3
"""The translation of deploy/daemonset.yaml into `podman run` flags (podman_spec.py),
without root or podman: the real manifest's container gives its capabilities, security
options, mounts, limits, probes and arguments; a field the translation does not know
stops it instead of being left out of the image test.

Usage: test_podman_spec.py deploy/daemonset.yaml
"""
import copy
import os
import sys
import tomllib

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import podman_spec  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        FAILURES.append(what)


def pairs(flags, name):
    return [flags[i + 1] for i, f in enumerate(flags[:-1]) if f == name]


def translate(pod, container):
    return podman_spec.podman_run_args(pod, container, config_dirs={"shadowtap-config": "/cfg"},
                                       host_path=lambda p: "/node" + p)


def refused(pod, container, what):
    try:
        translate(pod, container)
    except podman_spec.SpecError as e:
        check(True, f"refused: {what} ({e})")
        return
    check(False, f"refused: {what}")


def check_tls_patch(deploy_dir, docs):
    """deploy/tls-patch.yaml on daemonset.yaml (--tls, with deploy/tls.yaml's ConfigMap): the
    capabilities plus SYS_ADMIN (uprobes), the node's libssl mounted read-only where the
    ConfigMap's tls-library looks for it, everything else as before."""
    with open(os.path.join(deploy_dir, "tls-patch.yaml")) as f:
        patch = yaml.safe_load(f)
    ds = next(d for d in docs if d.get("kind") == "DaemonSet")
    patched = podman_spec.strategic_merge(ds, patch)
    pod, c = podman_spec.daemonset([patched])
    _, base = podman_spec.daemonset(docs)
    flags, args = translate(pod, c)
    want_caps = ["CAP_" + x for x in base["securityContext"]["capabilities"]["add"]] + ["CAP_SYS_ADMIN"]
    check(sorted(pairs(flags, "--cap-add")) == sorted(want_caps), f"tls-patch: the capabilities plus SYS_ADMIN ({want_caps})")
    config = tomllib.loads(podman_spec.config_map(podman_spec.load(os.path.join(deploy_dir, "tls.yaml")),
                                                  "shadowtap-config")["config.toml"])
    mount = next((m for m in c["volumeMounts"] if m["mountPath"] == config.get("tls-library")), None)
    volume = next((v for v in pod["volumes"] if mount and v["name"] == mount["name"]), {})
    check(config.get("tls") is True and mount and mount.get("readOnly") is True and
          volume.get("hostPath", {}).get("type") == "File" and
          volume["hostPath"]["path"].endswith("/libssl.so.3"),
          f"tls.yaml turns --tls on with tls-library {config.get('tls-library')}, the node's libssl.so.3 "
          f"mounted there read-only ({volume.get('hostPath')})")
    check(f"/node{volume.get('hostPath', {}).get('path')}:{config.get('tls-library')}:ro" in pairs(flags, "--volume"),
          "... and the image test would mount it so")
    check(len(c["volumeMounts"]) == len(base["volumeMounts"]) + 1 and args == base.get("args", []),
          "the other mounts and the arguments are daemonset.yaml's")


def main():
    docs = podman_spec.load(sys.argv[1])
    pod, c = podman_spec.daemonset(docs)
    flags, args = translate(pod, c)
    print("podman run " + " ".join(flags) + " IMAGE " + " ".join(args))

    sc = c["securityContext"]
    check(pairs(flags, "--network") == ["host"], "hostNetwork -> --network host")
    check(pairs(flags, "--cap-drop") == [x.lower() if x == "ALL" else "CAP_" + x for x in sc["capabilities"]["drop"]],
          "every dropped capability")
    check(sorted(pairs(flags, "--cap-add")) == sorted("CAP_" + x for x in sc["capabilities"]["add"]),
          "every added capability, and no other")
    check("--privileged" not in flags, "not privileged")
    check(("no-new-privileges" in pairs(flags, "--security-opt")) == (sc.get("allowPrivilegeEscalation") is False),
          "allowPrivilegeEscalation")
    check(("--read-only" in flags) == bool(sc.get("readOnlyRootFilesystem")), "readOnlyRootFilesystem")
    check(pairs(flags, "--volume") and len(pairs(flags, "--volume")) == len(c["volumeMounts"]),
          "one --volume per volumeMount")
    for m in c["volumeMounts"]:
        check(any(v.split(":")[1] == m["mountPath"] for v in pairs(flags, "--volume")), f"mount {m['mountPath']}")
    check(args == c.get("args", []), "the container's args")
    limits = c.get("resources", {}).get("limits", {})
    check(len(pairs(flags, "--memory")) == ("memory" in limits) and len(pairs(flags, "--cpus")) == ("cpu" in limits),
          "the memory and CPU limits")
    check(podman_spec._memory("256Mi") == str(256 << 20) and podman_spec._cpus("500m") == "0.5",
          "quantities: 256Mi is 268435456 bytes, 500m is 0.5 CPU")
    probes = podman_spec.probes(c)
    check(set(probes) == {"liveness", "readiness"} and all(isinstance(p[1], int) for p in probes.values()),
          f"liveness and readiness probes with ports resolved: {probes}")
    check(podman_spec.stop_timeout(pod) == pod["terminationGracePeriodSeconds"], "stop timeout = grace period")

    # Controls: what the translation does not understand is refused, not dropped.
    p2 = copy.deepcopy(pod)
    p2["hostPID"] = True
    refused(p2, c, "a pod field it does not know (hostPID)")
    c2 = copy.deepcopy(c)
    c2["env"] = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    refused(pod, c2, "an env var from a field reference")
    p3, c3 = copy.deepcopy(pod), copy.deepcopy(c)
    p3["volumes"].append({"name": "scratch", "emptyDir": {}})
    c3["volumeMounts"].append({"name": "scratch", "mountPath": "/scratch"})
    refused(p3, c3, "an emptyDir volume")
    c4 = copy.deepcopy(c)
    c4["securityContext"]["seLinuxOptions"] = {"type": "spc_t"}
    refused(pod, c4, "a securityContext field it does not know")
    p5 = copy.deepcopy(pod)
    p5["hostNetwork"] = False
    refused(p5, c, "a pod without hostNetwork")
    c6 = copy.deepcopy(c)
    c6["securityContext"]["privileged"] = True
    check("--privileged" in translate(pod, c6)[0], "privileged: true -> --privileged")

    check_tls_patch(os.path.dirname(os.path.abspath(sys.argv[1])), docs)

    print("deploy_podman_spec: " + ("all checks passed" if not FAILURES else f"{len(FAILURES)} checks failed"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
