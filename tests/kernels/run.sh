#!/usr/bin/env bash
# The kernel matrix: boots one of Debian 12's own kernels under qemu with this
# machine's root filesystem (read-only over 9p, a tmpfs overlay on top, as
# virtme-ng does) and runs the kernel-facing tests of the build directory there:
# the BPF program tests, the capture namespace tests and the mirror and compare
# end-to-end tests. The kernel is fetched with apt-get download into a cache and
# never installed on this machine.
#
# Usage: run.sh --series 6.1|6.12 --build-dir DIR [--suites "bpf capture-ns e2e"] [--timeout SECS]
#        run.sh --series 6.1 --build-dir DIR --command 'bpftool prog load ...'   (one command
#        in the guest, from DIR, instead of the suites: e.g. to read a verifier log there)
# Exit: 0 every suite passed in the guest with no test skipped; 1 a suite failed,
# a test skipped, or the guest did not boot or finish in time; 77 a prerequisite
# is missing (qemu, busybox-static, kmod, apt), which is a failure (1) under CI=true.
# Env: SHADOWTAP_KERNEL_CACHE (default /var/cache/shadowtap-kernels as root, else
# DIR/kernels/cache), KMATRIX_KEEP=1 also keeps the unpacked initramfs,
# KMATRIX_APPEND adds to the guest kernel's command line (rdinit=/none shows a
# failed boot). The guest's console and logs stay in DIR/kernels/SERIES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
series=
build=
suites="bpf capture-ns e2e"
timeout_s=840
command=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --series) series=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --suites) suites=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --command) command=$2; suites=; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$series" && -n "$build" ]] || { echo "usage: run.sh --series 6.1 --build-dir DIR" >&2; exit 2; }
build=$(cd "$build" && pwd)

skip_or_fail() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: kernel matrix $series: $* (CI=true forbids skipping)" >&2
    exit 1
  fi
  echo "SKIP: kernel matrix $series: $*" >&2
  exit 77
}

missing=()
for tool in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static modprobe:kmod depmod:kmod \
            apt-get:apt apt-cache:apt dpkg-deb:dpkg xz:xz-utils gzip:gzip python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
# The initramfs has no libraries: its busybox must be the static one.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  skip_or_fail "missing $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')(scripts/install-deps.sh installs them)"
fi
[[ -f "$build/CTestTestfile.cmake" ]] || { echo "FAIL: $build is not a configured build directory" >&2; exit 1; }

cache=${SHADOWTAP_KERNEL_CACHE:-}
if [[ -z "$cache" ]]; then
  cache=$build/kernels/cache
  [[ $(id -u) -eq 0 ]] && cache=/var/cache/shadowtap-kernels
fi
t0=$(date +%s.%N)
if ! fetched=$("$here/fetch-kernel.sh" "$series" "$cache"); then
  skip_or_fail "cannot fetch Debian's $series kernel through apt (see above)"
fi
read -r kver kroot <<<"$fetched"
t_fetch=$(date +%s.%N)

work=$build/kernels/$series
out=$work/out
rm -rf "$work"
mkdir -p "$out" "$work/initramfs/modules"

# initramfs: busybox, /init, and the modules that reach the root filesystem
# (virtio_pci, 9p and overlay are modules on 6.1; some are built in on 6.12).
ird=$work/initramfs
mkdir -p "$ird/bin"
cp "$(command -v busybox)" "$ird/bin/busybox"
install -m 0755 "$here/initramfs-init.sh" "$ird/init"
: >"$ird/modules.list"
declare -A seen=()
for mod in virtio_pci 9pnet_virtio 9p overlay; do
  while read -r verb path _; do
    [[ "$verb" == insmod ]] || continue
    name=$(basename "$path")
    name=${name%.xz}
    name=${name%.zst}
    [[ -n "${seen[$name]:-}" ]] && continue
    seen[$name]=1
    case "$path" in
      *.xz) xz -dc "$path" >"$ird/modules/$name" ;;
      *.zst) zstd -qdc "$path" >"$ird/modules/$name" ;;
      *) cp "$path" "$ird/modules/$name" ;;
    esac
    echo "$name" >>"$ird/modules.list"
  done < <(modprobe -d "$kroot" -S "$kver" --show-depends "$mod")
done
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.cpio.gz"

cat >"$out/env" <<EOF
KVER='$kver'
MODULES='$kroot/lib/modules/$kver'
BUILD_DIR='$build'
CI='${CI:-}'
SUITES='$suites'
EOF
[[ -z "$command" ]] || printf '%s\n' "$command" >"$out/command"
# shellcheck disable=SC2086  # $suites is a list of words
[[ -z "$suites" ]] || python3 "$here/suites.py" plan "$build" "$out" $suites

# TCG unless KMATRIX_ACCEL=kvm asks for KVM. A writable /dev/kvm is no
# promise: on these machines (nested virtualisation) qemu aborts at once with
# -cpu host ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES), and with
# host,-arch-capabilities the guest hangs after the BIOS, silent until the
# timeout. TCG boots the same guests, slower (about 100 s for 6.1's suites).
# With KMATRIX_ACCEL=kvm each model is tried for an instant first (no guest
# code: -S, then quit), TCG if none starts.
kvm_model_works() {
  # In a subshell with its stderr dropped: bash reports a qemu that aborted.
  (echo quit | timeout 30 qemu-system-x86_64 -accel kvm -cpu "$1" -m 128 -nodefaults -display none -S \
    -monitor stdio >/dev/null 2>&1) 2>/dev/null
}
accel=(-accel "tcg,thread=multi" -cpu max)
accel_name=TCG
if [[ ${KMATRIX_ACCEL:-} == kvm ]]; then
  accel_name="TCG (KMATRIX_ACCEL=kvm, but qemu refused KVM with -cpu host and host,-arch-capabilities)"
  for model in host host,-arch-capabilities; do
    if [[ -w /dev/kvm ]] && kvm_model_works "$model"; then
      accel=(-accel kvm -cpu "$model")
      accel_name="KVM, -cpu $model"
      break
    fi
  done
fi
cpus=$(nproc)
(( cpus > 4 )) && cpus=4
echo "kernel matrix: Debian's $kver under qemu ($accel_name, $cpus CPUs), suites: $suites"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
t_boot=$(date +%s.%N)
# A guest kernel that oopses before it reaches /init is booted again, at most
# twice more: under multi-threaded TCG on a busy host a 6.12 guest now and then
# traps on a stale int3 while it patches its own text (sched_clock_cpu, static
# keys), before any of our code runs. Seen once in CI, not reproduced on a
# quiet host. A guest that boots and then fails is never retried.
crashed='Oops:|Kernel panic|BUG:'
attempt=1
while :; do
  set +e
  # timeout bounds the guest whatever happens in it; qemu dies with its parent too.
  left=$((timeout_s - $(secs "$t_boot" "$(date +%s.%N)")))
  (( left >= 60 )) || left=60
  timeout --kill-after=10 "$left" \
    setpriv --pdeathsig KILL -- \
    qemu-system-x86_64 "${accel[@]}" -smp "$cpus" -m 2048 \
      -nodefaults -nographic -no-reboot -display none \
      -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$work/initramfs.cpio.gz" \
      -append "console=ttyS0 panic=-1 quiet st_guest=$here/guest.sh ${KMATRIX_APPEND:-}" \
      -serial "file:$work/console.log" \
      -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
      -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
      -fsdev "local,id=out,path=$out,security_model=none" \
      -device virtio-9p-pci,fsdev=out,mount_tag=out \
      >"$work/qemu.log" 2>&1
  qemu_rc=$?
  set -e
  if [[ ! -f "$out/boot" && $qemu_rc -ne 124 && $qemu_rc -ne 137 && $attempt -lt 3 ]] &&
     grep -qE "$crashed" "$work/console.log"; then
    cp "$work/console.log" "$work/console.attempt$attempt.log"
    echo "kernel matrix: the guest kernel crashed before it booted (attempt $attempt, console in" \
         "$work/console.attempt$attempt.log): $(grep -m1 -E "$crashed" "$work/console.log" |
         sed 's/^\[[^]]*\] *//'); booting it again"
    attempt=$((attempt + 1))
    continue
  fi
  break
done
t_end=$(date +%s.%N)

failed=0
if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]]; then
  echo "FAIL: the guest did not finish within ${timeout_s} s"
  failed=1
elif [[ $qemu_rc -ne 0 ]]; then
  echo "FAIL: qemu exited with $qemu_rc:"
  cat "$work/qemu.log"
  failed=1
fi
if [[ ! -f "$out/boot" ]]; then
  echo "FAIL: the guest did not boot ($attempt boot(s) tried); its console:"
  tail -n 60 "$work/console.log"
  exit 1
fi
echo "guest: $(cat "$out/boot")"

if [[ -n "$command" ]]; then
  cat "$out/command.log" 2>/dev/null
  echo "command exit status in the guest: $(cat "$out/command.rc" 2>/dev/null || echo none)"
  [[ "$(cat "$out/command.rc" 2>/dev/null)" == 0 ]] || failed=1
fi

# shellcheck disable=SC2086
if [[ -n "$suites" ]] && ! python3 "$here/suites.py" report "$out" $suites; then
  failed=1
fi
if [[ ! -f "$out/done" ]]; then
  echo "FAIL: the guest did not finish its suites; console tail:"
  tail -n 40 "$work/console.log"
  failed=1
fi
echo "times: fetch $(secs "$t0" "$t_fetch") s, guest (boot and suites) $(secs "$t_boot" "$t_end") s, total $(secs "$t0" "$t_end") s"
if [[ $failed -ne 0 ]]; then
  echo "kernel matrix $kver: FAILED (guest logs in $out)"
  exit 1
fi
[[ "${KMATRIX_KEEP:-}" == 1 ]] || rm -rf "$work/initramfs"
echo "kernel matrix $kver: all suites passed"
