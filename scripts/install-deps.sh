#!/usr/bin/env bash
# Installs the Debian 12 packages shadowtap needs to build, test and demo.
# Idempotent: prints nothing and touches nothing when everything is present.
# Usage: scripts/install-deps.sh [--bench] [--browser]
#   --bench adds the benchmark tools; --browser adds Chromium (large) for the
#   headless-browser test of `shadowtap report` (tests/e2e/test_compare_report.py).
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang llvm linux-libc-dev
  # kernel side
  libbpf-dev bpftool libxdp-dev libelf-dev zlib1g-dev
  # agent libraries
  libcli11-dev libspdlog-dev libfmt-dev node-llhttp prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev
  libnghttp2-dev libpcap-dev librdkafka-dev
  # io_uring: the mirror pools' batched sends and receives (--mirror-io)
  liburing-dev
  # tests
  libgtest-dev libgmock-dev iproute2 curl python3 python3-httpbin procps nghttp2-client nghttp2-server python3-h2 tcpdump
  # nginx as the primary of the HTTP/1 framing tests (tests/e2e/test_http1_policy.py); also the benchmarks' server
  nginx-light
  # echo_sleep: the 200 ms mirror of tests/e2e/test_slow_mirror.py and the benchmarks (tests/bench/slowbench.py)
  libnginx-mod-http-echo
  # a Kafka consumer and a JSON Schema validator for the Kafka recording test (tests/e2e/test_kafka.py)
  kcat python3-jsonschema
  # a real gRPC client and service for the HTTP/2 end-to-end test (Debian package, no codegen needed)
  python3-grpcio
  # the kernel matrix (tests/kernels): Debian's 6.1 and 6.12 kernels booted under qemu
  # with an initramfs of busybox-static and the modules kmod's modprobe resolves
  qemu-system-x86 busybox-static kmod
  # fuzzing (libFuzzer runtime; only a Recommends of clang-14)
  libclang-rt-14-dev
  # man pages generated from --help at build time
  help2man
  # function extents for scripts/long-functions.py (the size check, label unit)
  universal-ctags
  # the container image test (tests/deploy/test_image.py): root podman builds deploy/Dockerfile
  # from a base image debootstrapped from Debian's packages and runs it with --network host;
  # runc because crun refuses hosts with hybrid cgroups. python3-yaml reads the DaemonSet.
  podman runc debootstrap python3-yaml
)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(wrk linux-perf valgrind ethtool) ;;
    --browser) packages+=(chromium) ;;
  esac
done

# The deploy manifest check runs on Node.js; use the machine's own if it has one.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
