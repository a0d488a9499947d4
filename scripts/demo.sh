#!/usr/bin/env bash
# The seed tutorial ("Mirror traffic between httpbin service versions"), for real,
# in network namespaces on this machine:
#
#   sleep (client, 198.18.0.1) ── veth ── node (198.18.0.2): httpbin v1 :8000 + shadowtap
#                                         node (198.18.1.1) ── veth ── mirror (198.18.1.2): httpbin v1-mirroring :8000
#
# shadowtap watches the node's interface towards the client, mirrors 100 % (then
# 50 %) of port 8000 to httpbin-mirror:8000, and the mirror's log shows the
# "-shadow" host. Everything created is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh needs root (network namespaces and BPF): sudo $0" >&2
  exit 1
fi
scripts/install-deps.sh
# Only the agent: the tests are not needed here. The build directory is the one
# scripts/test.sh uses, so a test run afterwards reuses what this compiled.
build_log=$(mktemp /tmp/shadowtap-build.XXXXXX)
echo "building the agent into ${BUILD_DIR:-build}/ (the first time takes a few minutes)"
if ! BUILD_TARGET=shadowtap scripts/build.sh >"$build_log" 2>&1; then
  tail -40 "$build_log"; rm -f "$build_log"; echo "demo.sh: the build failed (output above)" >&2; exit 1
fi
rm -f "$build_log"
BIN=$ROOT/${BUILD_DIR:-build}/agent/shadowtap
PY=/usr/bin/python3

TAG=stdemo$$
NS_CLIENT=$TAG-sleep NS_NODE=$TAG-node NS_MIRROR=$TAG-mirror
WORK=$(mktemp -d /tmp/shadowtap-demo.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "$NS_CLIENT" "$NS_NODE" "$NS_MIRROR"; do
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

step "Step 1: deploy httpbin v1, httpbin v1-mirroring and the sleep client (as namespaces)"
for ns in "$NS_CLIENT" "$NS_NODE" "$NS_MIRROR"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "${TAG}c" netns "$NS_CLIENT" type veth peer name "${TAG}n" netns "$NS_NODE"
ip link add "${TAG}m" netns "$NS_NODE" type veth peer name "${TAG}r" netns "$NS_MIRROR"
ip -n "$NS_CLIENT" addr add 198.18.0.1/24 dev "${TAG}c"
ip -n "$NS_NODE" addr add 198.18.0.2/24 dev "${TAG}n"
ip -n "$NS_NODE" addr add 198.18.1.1/24 dev "${TAG}m"
ip -n "$NS_MIRROR" addr add 198.18.1.2/24 dev "${TAG}r"
for pair in "$NS_CLIENT ${TAG}c" "$NS_NODE ${TAG}n" "$NS_NODE ${TAG}m" "$NS_MIRROR ${TAG}r"; do
  set -- $pair; ip -n "$1" link set "$2" up
done
# Service names, as cluster DNS would give them (ip netns exec bind-mounts these).
mkdir -p "/etc/netns/$NS_CLIENT" "/etc/netns/$NS_NODE"
printf '127.0.0.1 localhost\n198.18.0.2 httpbin\n' > "/etc/netns/$NS_CLIENT/hosts"
printf '127.0.0.1 localhost\n198.18.1.2 httpbin-mirror\n' > "/etc/netns/$NS_NODE/hosts"
# Name lookups inside the namespaces never leave the machine.
for ns in "$NS_CLIENT" "$NS_NODE"; do echo 'nameserver 127.0.0.1' > "/etc/netns/$ns/resolv.conf"; done

# Background processes are started with `ip netns exec` itself (it execs the
# program), so $! is the program's own PID and cleanup can end exactly it.
ip netns exec "$NS_NODE" $PY scripts/demo/httpbin_logged.py v1 8000 >>"$WORK/v1.log" 2>&1 & PIDS+=($!)
ip netns exec "$NS_MIRROR" $PY scripts/demo/httpbin_logged.py v1-mirroring 8000 >>"$WORK/v1-mirroring.log" 2>&1 & PIDS+=($!)
for ns in "$NS_NODE" "$NS_MIRROR"; do
  for _ in $(seq 100); do in_ns "$ns" curl -s -o /dev/null http://127.0.0.1:8000/get && break; sleep 0.1; done
done
: >"$WORK/v1.log"; : >"$WORK/v1-mirroring.log"  # keep only the tutorial's requests
echo "httpbin v1 (node 198.18.0.2:8000) and v1-mirroring (198.18.1.2:8000) are running"

start_shadowtap() {
  ip netns exec "$NS_NODE" "$BIN" --interface "${TAG}n" --port 8000 --mirror httpbin-mirror:8000 \
    --mirror-percentage "$1" >"$WORK/shadowtap.log" 2>&1 & ST_PID=$!
  PIDS+=("$ST_PID")
  for _ in $(seq 100); do grep -q "mirroring TCP port" "$WORK/shadowtap.log" && return; sleep 0.1; done
  cat "$WORK/shadowtap.log"; echo "shadowtap did not start" >&2; exit 1
}
stop_shadowtap() { kill -TERM "$ST_PID"; wait "$ST_PID" || echo "shadowtap exited with $?"; }

step "Step 2: mirror 100 % of port 8000 to httpbin-mirror:8000"
echo "\$ shadowtap --interface ${TAG}n --port 8000 --mirror httpbin-mirror:8000 --mirror-percentage 100"
start_shadowtap 100
cat "$WORK/shadowtap.log"

step "Step 3: send a test request from the sleep client"
echo "\$ curl http://httpbin:8000/headers"
in_ns "$NS_CLIENT" curl -s http://httpbin:8000/headers
sleep 1
echo
echo "\$ logs of httpbin v1"
cat "$WORK/v1.log"
echo "\$ logs of httpbin v1-mirroring (note the -shadow host)"
cat "$WORK/v1-mirroring.log"
stop_shadowtap
echo "\$ shadowtap's final counters"; grep "final:" "$WORK/shadowtap.log" || cat "$WORK/shadowtap.log"

step "Step 4: mirror 50 %: 40 requests, each on its own connection"
start_shadowtap 50
: >"$WORK/v1.log"; : >"$WORK/v1-mirroring.log"
for i in $(seq 40); do in_ns "$NS_CLIENT" curl -s -o /dev/null "http://httpbin:8000/anything/$i"; done
sleep 1
stop_shadowtap
# shadowtap's final summary says how many mirrored requests the mirror answered
# ("final: requests: N seen -> N to mirrors -> N answered; ..."); give the
# mirror's log a moment to show the last of them.
answered=$(grep "final: requests:" "$WORK/shadowtap.log" | grep -o '[0-9]* answered' | tail -1 | cut -d' ' -f1)
for _ in $(seq 50); do
  [[ $(grep -c 'host=httpbin-shadow:8000' "$WORK/v1-mirroring.log") -ge ${answered:-0} ]] && break
  sleep 0.1
done
echo "httpbin v1 received:           $(grep -c 'httpbin v1:' "$WORK/v1.log") requests"
echo "httpbin v1-mirroring received: $(grep -c 'host=httpbin-shadow:8000' "$WORK/v1-mirroring.log") mirrored requests (host httpbin-shadow:8000)"
grep "final:" "$WORK/shadowtap.log" || cat "$WORK/shadowtap.log"

step "Clean up"
echo "removing namespaces $NS_CLIENT $NS_NODE $NS_MIRROR"
