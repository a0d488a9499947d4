#!/usr/bin/env bash
# Fetches one of Debian's own kernels without installing it as a host kernel:
# `apt-get download` of the signed image package that Debian's metapackage for the
# series depends on, `dpkg-deb -x` into a cache, `depmod` over the extracted tree.
# Prints "VERSION DIR" (DIR/boot/vmlinuz-VERSION, DIR/lib/modules/VERSION).
# Usage: fetch-kernel.sh SERIES CACHE_DIR    (SERIES: 6.1 or 6.12)
#
# The generic flavour on purpose: the cloud one has no 9p, which the guest's root
# filesystem comes over. Exit 3 when apt cannot tell or fetch the package.
set -euo pipefail
series=$1
cache=$2

# Debian 12's default kernel is linux-image-amd64 (6.1); newer series in the same
# release come with a versioned metapackage (linux-image-6.12-amd64, from bookworm
# updates). Whatever it points to must be of the asked series.
case "$series" in
  6.1) meta=linux-image-amd64 ;;
  *) meta=linux-image-$series-amd64 ;;
esac

depends_of() { apt-cache depends "$1" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1; }
pkg=$(depends_of "$meta")
if [[ -z "$pkg" && $(id -u) -eq 0 ]]; then
  apt-get update -qq >&2   # a fresh machine may have no package lists yet
  pkg=$(depends_of "$meta")
fi
if [[ -z "$pkg" ]]; then
  echo "fetch-kernel: apt knows no $meta (run apt-get update; is this Debian 12?)" >&2
  exit 3
fi
version=${pkg#linux-image-}
if [[ "$version" != "$series".* ]]; then
  echo "fetch-kernel: $meta points to $pkg, not a $series kernel" >&2
  exit 3
fi

dir=$cache/$version
mkdir -p "$cache"
# One fetch at a time per cache (several build trees may share it); a kernel
# once ready is never replaced, so running guests keep theirs.
exec 9>"$cache/.lock"
flock 9
if [[ ! -f "$dir/.ready" ]]; then
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-kernel: downloading $pkg" >&2
  (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
  deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
  if [[ -z "$deb" ]]; then
    echo "fetch-kernel: apt-get download $pkg failed" >&2
    exit 3
  fi
  dpkg-deb -x "$deb" "$tmp/root"
  rm -f "$deb"
  depmod -b "$tmp/root" "$version"
  rm -rf "$dir"
  mv "$tmp/root" "$dir"
  touch "$dir/.ready"
fi
[[ -f "$dir/boot/vmlinuz-$version" && -d "$dir/lib/modules/$version" ]] || {
  echo "fetch-kernel: $dir lacks the kernel or its modules" >&2
  exit 3
}
echo "$version $dir"
