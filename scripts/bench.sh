#!/usr/bin/env bash
# Runs shadowtap's benchmarks and rewrites tests/bench/RESULTS.md.
#
# Usage: scripts/bench.sh [all|kernel|pipeline|impact|fidelity|memory|workers|io|h2|slow|tls]...   (default: all)
#
# Installs the benchmark tools from Debian (scripts/install-deps.sh --bench),
# builds in Release into build-bench/ (or $BUILD_DIR), runs the parts asked for
# and regenerates RESULTS.md from every part's latest results
# ($BUILD_DIR/bench-results/*.json), so running one part keeps the others' figures.
# Needs root for everything but `pipeline` (BPF, network namespaces). The whole
# suite takes about 6-7 minutes on 2 cores once built, plus under 4 for `h2`
# (h2c with nghttpd and h2load: tests/bench/h2bench.py), and about 2 for `slow` (a 200 ms
# mirror at 2,000 req/s, fixed 16 connections against the adaptive pool: tests/bench/slowbench.py,
# whose figures are written up by hand in tests/bench/analysis.md), and about 1.5 for `tls`
# (--tls: ns per SSL_read with and without the uprobes, tests/bench/tls_bench.cc, and an HTTPS
# nginx's closed-loop throughput under wrk without shadowtap, with the probes, and mirroring:
# tests/bench/tlsload.py; written up by hand in analysis.md, section 9), and about 1 each for
# `workers` (the replay benchmark, 1 vs 2 workers into nginx: tests/bench/workers_bench.py) and
# `io` (one mirror pool through epoll vs io_uring: tests/bench/mirror_io.py).
# Environment: BENCH_QUICK=1 shortens every part (smoke test, figures not meaningful);
# BENCH_NO_BUILD=1 measures the binaries already in $BUILD_DIR without rebuilding.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT=$BUILD_DIR/bench-results
TAG=sbn$$

parts=()
for a in "${@:-all}"; do
  case "$a" in
    all) parts+=(kernel pipeline impact fidelity memory workers io h2 slow tls) ;;
    kernel|pipeline|impact|fidelity|memory|workers|io|h2|slow|tls) parts+=("$a") ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown part '$a' (kernel|pipeline|impact|fidelity|memory|workers|io|h2|slow|tls|all)" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  for p in "${parts[@]}"; do
    if [[ $p != pipeline ]]; then
      echo "bench.sh: '$p' needs root (BPF, network namespaces); run as root or ask for 'pipeline' only" >&2
      exit 1
    fi
  done
fi

# Whatever happens, nothing of ours stays behind: netbench.py cleans up after
# itself, this catches the case where it was killed outright.
cleanup() {
  for r in c s m; do
    ip netns delete "$TAG-$r" 2>/dev/null || true
  done
  rmdir "/sys/fs/cgroup/$TAG-mirror" "/sys/fs/cgroup/cpu/$TAG-mirror" 2>/dev/null || true  # netbench --mirror-cpu
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# Runs a command and records it, as run, in the part's command log for RESULTS.md.
run() {
  local part=$1
  shift
  printf '%s\n' "$*" >>"$OUT/commands-$part.txt"
  "$@"
}

quick=()
runs=5
netruns=3
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  quick=(--quick)
  runs=2
  netruns=1
fi

mkdir -p "$OUT"
rm -f "$OUT/commands-setup.txt"
if [[ $(id -u) -eq 0 ]]; then
  run setup scripts/install-deps.sh --bench
fi
if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
  # Measure the binaries already in $BUILD_DIR (e.g. while the tree does not build).
  log "BENCH_NO_BUILD=1: using the existing binaries in $BUILD_DIR"
  echo "# BENCH_NO_BUILD=1: binaries of an earlier Release build in $BUILD_DIR, not rebuilt" >>"$OUT/commands-setup.txt"
  for b in agent/shadowtap tests/bench/pipeline_bench tests/bench/kernel_bench tests/bench/rate_client tests/bench/tls_bench \
    tests/bench/workers_bench tests/bench/mirror_io_bench; do
    [[ -x $BUILD_DIR/$b ]] || { echo "bench.sh: $BUILD_DIR/$b missing; build first" >&2; exit 1; }
  done
else
  run setup cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  log "building (Release) in $BUILD_DIR"
  run setup cmake --build "$BUILD_DIR" --target shadowtap pipeline_bench kernel_bench rate_client tls_bench \
    workers_bench mirror_io_bench -j"$(nproc)" >/dev/null
fi

git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]]; then
  git_rev="$git_rev (with uncommitted changes)"
fi
python3 - "$OUT/meta.json" "$git_rev" "$BUILD_DIR" <<'EOF'
import json, os, platform, subprocess, sys, time
def cmd(*a):
    try:
        r = subprocess.run(a, capture_output=True, text=True)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "not installed"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
osr = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), "?")
load = open("/proc/loadavg").read().split()[:3]
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "nproc": os.cpu_count(), "cpu": cpu, "mem": f"{int(mem) / 1048576:.0f} GiB",
    "kernel": platform.release(), "os": osr, "git": sys.argv[2], "build_dir": sys.argv[3],
    "tools": "; ".join([cmd("nginx", "-v"), cmd("wrk", "-v"), cmd("clang", "--version"), cmd("bpftool", "version")]),
    "note": f"load average {' '.join(load)} before the run; other processes may share the CPUs, "
            "so every figure is a median of interleaved runs",
}, open(sys.argv[1], "w"), indent=1)
EOF

for p in "${parts[@]}"; do
  rm -f "$OUT/commands-$p.txt"
  log "--- $p"
  case "$p" in
    kernel)
      run kernel "$BUILD_DIR/tests/bench/kernel_bench" --runs "$runs" --repeat "$([[ -n ${quick[*]} ]] && echo 100000 || echo 1000000)" \
        --json "$OUT/kernel.json"
      ;;
    pipeline)
      run pipeline "$BUILD_DIR/tests/bench/pipeline_bench" --runs "$runs" "${quick[@]}" --json "$OUT/pipeline.json"
      ;;
    impact)
      run impact python3 tests/bench/netbench.py impact --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" \
        --runs "$netruns" --seconds "$([[ -n ${quick[*]} ]] && echo 2 || echo 4)" --conns 32 --rate 2000
      ;;
    fidelity)
      run fidelity python3 tests/bench/netbench.py fidelity --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" \
        --runs "$netruns" --fidelity-seconds 3 --rates 1000,5000,10000,20000,40000,60000
      ;;
    memory)
      run memory python3 tests/bench/netbench.py memory --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" \
        --idle-conns 10000 --outage "$([[ -n ${quick[*]} ]] && echo 10 || echo 30)" --outage-rate 1000 --outage-body 16384
      ;;
    workers)
      # Issue 16: the replay benchmark, 1 vs 2 workers, closed loop into nginx; workers.json, section 5b.
      # nginx gets a process per worker where the cores allow (two workers, two pools, two nginx).
      run workers python3 tests/bench/workers_bench.py --bench "$(realpath "$BUILD_DIR")/tests/bench/workers_bench" \
        --workers 2 --nginx-processes "$(( $(nproc) >= 6 ? 2 : 1 ))" --runs "$netruns" \
        --seconds "$([[ -n ${quick[*]} ]] && echo 2 || echo 4)" --json "$OUT/workers.json"
      ;;
    io)
      # Issue 16: one mirror pool through epoll vs io_uring, at 20,000 req/s and closed loop; io.json, section 5c.
      run io python3 tests/bench/mirror_io.py --bench "$(realpath "$BUILD_DIR")/tests/bench/mirror_io_bench" \
        --rates 20000,0 --runs "$netruns" --seconds "$([[ -n ${quick[*]} ]] && echo 2 || echo 3)" --json "$OUT/io.json"
      ;;
    h2)
      # h2c: production impact (none / mirror ok / mirror refused), fidelity at rising
      # rates until < 99 %, gRPC-shaped POSTs; writes h2.json, its RESULTS.md section below.
      if [[ -n ${quick[*]} ]]; then
        h2args=(--seconds 3 --rates 5000,20000 --fidelity-seconds 2 --grpc-seconds 2)
      else
        h2args=(--seconds 10 --rates 5000,20000,40000,60000,80000,100000 --fidelity-seconds 3 --grpc-seconds 4)
      fi
      run h2 python3 tests/bench/h2bench.py --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" --runs "$netruns" \
        --attach tcx --clients 4 --streams 10 --rate 2000 "${h2args[@]}"
      ;;
    slow)
      # A 200 ms mirror (issue 21): fixed 16 connections vs the adaptive pool, and the
      # mirror gone; writes slow.json and a table (analysis.md, section 7, by hand).
      run slow python3 tests/bench/slowbench.py --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" --runs "$netruns" \
        --seconds "$([[ -n ${quick[*]} ]] && echo 2 || echo 5)" --rate 2000 --conns 32
      ;;
    tls)
      # --tls (issue 18): ns per SSL_read without/with the uprobes, then an HTTPS nginx under
      # wrk (closed loop, keep-alive, client on its own libssl copy) without shadowtap, with
      # the probes, and followed + mirrored; writes tls.json and tlsload.json (section 9 of
      # analysis.md, by hand).
      run tls "$BUILD_DIR/tests/bench/tls_bench" --runs "$runs" --reads "$([[ -n ${quick[*]} ]] && echo 500 || echo 2000)" \
        --json "$OUT/tls.json"
      run tls python3 tests/bench/tlsload.py --build "$BUILD_DIR" --out "$OUT" --tag "$TAG" --runs "$netruns" \
        --seconds "$([[ -n ${quick[*]} ]] && echo 2 || echo 5)" --conns 16
      ;;
  esac
done

python3 tests/bench/report.py "$OUT" tests/bench/RESULTS.md
# The h2c section (section 6) from h2.json, if any, spliced in before the hand-written analysis.
python3 tests/bench/h2bench.py report "$OUT" tests/bench/RESULTS.md
log "wrote tests/bench/RESULTS.md"
