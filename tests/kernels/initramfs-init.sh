#!/bin/busybox sh
# shellcheck shell=dash
# /init of the kernel matrix's initramfs (busybox-static and the few modules the
# kernel needs to reach its root): the host's root filesystem, read-only over
# 9p, under a tmpfs overlay (the way virtme-ng builds its guests), then
# switch_root into it and run the guest script named on the kernel command line
# (st_guest=PATH) as the new PID 1.
/bin/busybox mkdir -p /bin /proc /sys /dev /lower /rw /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "kmatrix-init: $*" >/dev/console
  echo o >/proc/sysrq-trigger   # power off; the host sees no result and fails the run
  sleep 60
}

for m in $(cat /modules.list); do
  insmod "/modules/$m" || fail "insmod $m failed"
done

guest=
for arg in $(cat /proc/cmdline); do
  case "$arg" in st_guest=*) guest=${arg#st_guest=} ;; esac
done
[ -n "$guest" ] || fail "no st_guest= on the kernel command line"

# cache=loose: the host's files do not change under a test run, and every
# binary, library and Python module comes over 9p.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
  fail "cannot mount the host's root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
  fail "cannot mount the overlay"
mount --move /dev /newroot/dev
umount /sys /proc
[ -f "/newroot$guest" ] || fail "$guest is not in the host's root"
exec switch_root /newroot /bin/sh "$guest"
