#!/usr/bin/env bash
# Makes the Debian 12 base image that deploy/Dockerfile builds FROM, without any
# container registry: debootstrap (minbase) from Debian's own packages into a
# directory, then `podman import` it as localhost/debian:bookworm (or $BASE_IMAGE).
#
# The image stays in podman's storage and is reused: when it is there already this
# prints its name and does nothing else (about a second). Making it takes a few
# minutes. --force makes it again (e.g. to pick up new security updates).
#
# Usage: deploy/debian-base.sh [--force]
#   DEBIAN_MIRROR  apt mirror to bootstrap from (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  the same for bookworm-security (default: next to DEBIAN_MIRROR)
#   BASE_IMAGE     image name to create (default localhost/debian:bookworm)
set -euo pipefail

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
force=false
[[ ${1:-} == --force ]] && force=true

if ! $force && podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "debian-base.sh: debootstrap needs root: sudo $0" >&2
  exit 1
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "debian-base.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

rootfs=$(mktemp -d /var/tmp/shadowtap-debian-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debian-base.sh: debootstrap bookworm from $MIRROR (a few minutes)" >&2
if ! debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1; then
  tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"
  echo "debian-base.sh: debootstrap failed (output above)" >&2
  exit 1
fi
rm -f "$rootfs.log"

# The same apt sources as Debian's official image: the release, its updates and
# security, so the libraries the build stage copies into the runtime image are current.
security=${DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}
[[ $security == "$MIRROR/debian-security" ]] && security=http://deb.debian.org/debian-security
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Smaller, like the official image: no package lists or downloaded .debs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb

tar -C "$rootfs" --numeric-owner -c . |
  podman import -q --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm $MIRROR" - "$IMAGE" >/dev/null
echo "$IMAGE"
