#!/bin/sh
# PID 1 of a kernel matrix guest (tests/kernels/run.sh boots it): the host's root
# filesystem read-only under a tmpfs overlay, the host's build directory at the
# same path. Mounts what the tests need, runs the kernel-facing suites (the
# scripts suites.py planned), writes each step's log, exit status and time to the writable
# share (the only way back: overlay writes stay in the guest), powers off.
#
# As PID 1 it only reaps orphans (the shell's `wait` collects any child) while a
# second copy of itself, `guest.sh main`, does the work.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export OUT=/run/kmatrix

main() {
  set -u
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p "$OUT"
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=none out "$OUT" || return 1
  # shellcheck source=/dev/null
  . "$OUT/env"   # from run.sh: KVER MODULES BUILD_DIR CI SUITES
  # A fresh /tmp, unless the checkout is there (`git clone . /tmp/x && cd /tmp/x &&
  # .ci/run`): a tmpfs would hide it, and the overlay's /tmp is writable anyway.
  case "$BUILD_DIR" in
    /tmp/*) ;;
    *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
  esac
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  mount -t tmpfs tmpfs /dev/shm
  echo "booted $(uname -r) in $(cut -d' ' -f1 /proc/uptime) s" >"$OUT/boot"

  mount -t bpf bpf /sys/fs/bpf
  mount -t debugfs debugfs /sys/kernel/debug
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  # The guest kernel's modules (veth, sch_ingress, cls_bpf, ...), loaded on demand.
  mkdir -p "/lib/modules/$KVER"
  mount --bind "$MODULES" "/lib/modules/$KVER"
  hostname kmatrix
  ip link set lo up
  export CI HOME=/root LANG=C.UTF-8

  if [ -f "$OUT/command" ]; then   # run.sh --command: one command instead of the suites
    (cd "$BUILD_DIR" && sh "$OUT/command") >"$OUT/command.log" 2>&1
    echo $? >"$OUT/command.rc"
    SUITES=
  fi
  # Each suite is a script of CTest's commands that suites.py wrote before the boot.
  for suite in $SUITES; do
    start=$(cut -d' ' -f1 /proc/uptime)
    sh "$OUT/$suite.sh"
    end=$(cut -d' ' -f1 /proc/uptime)
    echo "$start $end" | awk '{ printf "%.1f\n", $2 - $1 }' >"$OUT/$suite.seconds"
  done
  dmesg >"$OUT/dmesg.log" 2>&1
  echo ok >"$OUT/done"
}

if [ "${1:-}" = main ]; then
  main
  exit $?
fi
/bin/sh "$0" main </dev/console >/dev/console 2>&1 &
wait
sync
[ -e /proc/sysrq-trigger ] || mount -t proc proc /proc
echo o >/proc/sysrq-trigger
sleep 60
