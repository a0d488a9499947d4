"""deploy/daemonset.yaml's shadowtap container, as the `podman run` flags that give a
container the same runtime settings: network, capabilities, security options, mounts,
arguments, environment and limits. The image test (test_image.py) runs exactly this, so
the manifest and the test cannot drift.

The translation is strict: a pod or container field it does not know stops it with
one line naming the field, instead of being left out of the test silently. Teach it
the field (here, with a line in the table below) when the manifest grows one.
"""
import os
import re

import yaml

# Pod spec fields that only place or schedule the pod, or name things that do not
# exist outside a cluster; they change nothing in how the container runs.
POD_SCHEDULING_ONLY = {"serviceAccountName", "priorityClassName", "tolerations", "nodeSelector", "affinity"}
# Container fields of the same kind: `image` is replaced by the image under test,
# `resources.requests` only schedules, `ports` is documentation with hostNetwork (it
# names the probe port).
CONTAINER_HANDLED = {"name", "image", "args", "command", "env", "ports", "securityContext", "resources",
                     "livenessProbe", "readinessProbe", "volumeMounts"}
POD_HANDLED = POD_SCHEDULING_ONLY | {"hostNetwork", "dnsPolicy", "terminationGracePeriodSeconds", "containers",
                                     "volumes"}
SECURITY_HANDLED = {"privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsUser", "capabilities",
                    "seccompProfile"}


class SpecError(Exception):
    pass


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def daemonset(docs, container="shadowtap"):
    """(pod spec, container spec) of the DaemonSet's container named `container`."""
    sets = [d for d in docs if d.get("kind") == "DaemonSet"]
    if len(sets) != 1:
        raise SpecError(f"expected one DaemonSet, found {len(sets)}")
    pod = sets[0]["spec"]["template"]["spec"]
    for c in pod.get("containers", []):
        if c.get("name") == container:
            return pod, c
    raise SpecError(f"the DaemonSet has no container named {container}")


def strategic_merge(obj, patch):
    """`patch` applied to `obj` as `kubectl patch` (strategic merge) does for the fields
    deploy/*-patch.yaml use: maps merge; lists of maps merge by `name` (containers,
    volumes) or `mountPath` (volumeMounts); other lists are replaced."""
    if isinstance(obj, dict) and isinstance(patch, dict):
        out = dict(obj)
        for k, v in patch.items():
            out[k] = strategic_merge(obj[k], v) if k in obj else v
        return out
    if isinstance(obj, list) and isinstance(patch, list) and patch and all(isinstance(p, dict) for p in patch):
        key = next((k for k in ("name", "mountPath") if all(k in p for p in patch)), None)
        if key:
            out = list(obj)
            for p in patch:
                at = next((i for i, o in enumerate(out) if o.get(key) == p[key]), None)
                if at is None:
                    out.append(p)
                else:
                    out[at] = strategic_merge(out[at], p)
            return out
    return patch


def config_map(docs, name):
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == name:
            return d.get("data", {})
    raise SpecError(f"no ConfigMap named {name}")


def _unknown(where, got, known):
    extra = sorted(set(got) - known)
    if extra:
        raise SpecError(f"{where}: {', '.join(extra)} not understood by tests/deploy/podman_spec.py; "
                        "teach it how to run them, so the image test keeps running what the manifest says")


def _memory(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi|Ki|M|G|k)?", str(q))
    if not m:
        raise SpecError(f"memory quantity {q!r} not understood")
    scale = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 10 ** 6, "G": 10 ** 9, None: 1}
    return str(int(m.group(1)) * scale[m.group(2)])


def _cpus(q):
    q = str(q)
    return str(int(q[:-1]) / 1000) if q.endswith("m") else str(float(q))


def probes(container):
    """{'liveness': (path, port), 'readiness': (path, port)} with named ports resolved."""
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    out = {}
    for kind in ("liveness", "readiness"):
        probe = container.get(f"{kind}Probe")
        if probe is None:
            continue
        if set(probe) - {"httpGet", "periodSeconds", "failureThreshold", "initialDelaySeconds", "timeoutSeconds",
                         "successThreshold"}:
            raise SpecError(f"{kind}Probe: only httpGet probes are understood, got {sorted(probe)}")
        get = probe["httpGet"]
        _unknown(f"{kind}Probe.httpGet", get, {"path", "port", "scheme"})
        if get.get("scheme", "HTTP") != "HTTP":
            raise SpecError(f"{kind}Probe: scheme {get['scheme']} not understood")
        port = get["port"]
        out[kind] = (get.get("path", "/"), named[port] if isinstance(port, str) else int(port))
    return out


def podman_run_args(pod, container, *, config_dirs, host_path):
    """The `podman run` flags (before the image) and the container's arguments (after it).

    config_dirs: ConfigMap name -> a directory holding its files (the test writes them).
    host_path:   maps a hostPath volume's node path to the directory used for it here.
    """
    _unknown("DaemonSet pod spec", pod, POD_HANDLED)
    _unknown("container", container, CONTAINER_HANDLED)
    if len(pod["containers"]) != 1:
        raise SpecError("the pod has more than one container; the image test runs only shadowtap")
    if pod.get("hostNetwork") is not True:
        raise SpecError("the image test runs the container with --network host, as hostNetwork: true does")
    flags = ["--network", "host"]

    sc = container.get("securityContext", {})
    _unknown("securityContext", sc, SECURITY_HANDLED)
    if sc.get("privileged"):
        flags.append("--privileged")
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if sc.get("readOnlyRootFilesystem"):
        # Kubernetes adds no tmpfs on /tmp, /run or /var/tmp; podman would.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if "runAsUser" in sc:
        flags += ["--user", str(sc["runAsUser"])]
    caps = sc.get("capabilities", {})
    _unknown("securityContext.capabilities", caps, {"add", "drop"})
    for c in caps.get("drop", []):
        flags += ["--cap-drop", c.lower() if c == "ALL" else "CAP_" + c]
    for c in caps.get("add", []):
        flags += ["--cap-add", "CAP_" + c]
    seccomp = sc.get("seccompProfile", {}).get("type", "Unconfined")
    # No seccompProfile: Kubernetes runs the container Unconfined (unless the kubelet
    # sets SeccompDefault); podman would apply its own default profile instead.
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise SpecError(f"seccompProfile type {seccomp} not understood")

    limits = container.get("resources", {}).get("limits", {})
    _unknown("resources.limits", limits, {"memory", "cpu"})
    _unknown("resources", container.get("resources", {}), {"limits", "requests"})
    if "memory" in limits:
        flags += ["--memory", _memory(limits["memory"])]
    if "cpu" in limits:
        flags += ["--cpus", _cpus(limits["cpu"])]

    for e in container.get("env", []):
        if set(e) != {"name", "value"}:
            raise SpecError(f"env {e.get('name')}: only name/value pairs are understood")
        flags += ["--env", f"{e['name']}={e['value']}"]

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        _unknown(f"volumeMount {m.get('name')}", m, {"name", "mountPath", "readOnly"})
        v = volumes[m["name"]]
        if "configMap" in v:
            source = config_dirs[v["configMap"]["name"]]
        elif "hostPath" in v:
            hp = v["hostPath"]
            if hp.get("type", "") not in ("", "Directory", "DirectoryOrCreate", "File"):
                raise SpecError(f"hostPath type {hp['type']} not understood")
            source = host_path(hp["path"])
            if hp.get("type") == "DirectoryOrCreate":
                os.makedirs(source, exist_ok=True)
        else:
            raise SpecError(f"volume {m['name']}: only configMap and hostPath volumes are understood")
        flags += ["--volume", f"{source}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]

    if "command" in container:
        flags += ["--entrypoint", container["command"][0]]
        args = container["command"][1:] + container.get("args", [])
    else:
        args = list(container.get("args", []))
    return flags, args


def stop_timeout(pod):
    """Seconds `podman stop` waits after SIGTERM before SIGKILL, as the kubelet does."""
    return int(pod.get("terminationGracePeriodSeconds", 30))
