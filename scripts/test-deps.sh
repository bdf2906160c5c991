#!/usr/bin/env bash
# Installs the Debian packages that RingZero's tests use as real peers (qemu-img, qemu-system,
# qemu-user, nasm, ovs-ofctl, iproute2, busybox). Idempotent and quiet when all are present.
# Tests that still cannot find a tool skip with a loud "SKIPPED:" line, never silently.
set -u
PKGS=(qemu-utils qemu-system-x86 qemu-user nasm openvswitch-common iproute2 busybox-static cpio zstd acpica-tools xz-utils file gcc linux-libc-dev binutils lz4 libc6-dev python3 make g++ mtools dosfstools tcpdump)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: apt-get is not available; install these yourself for the full test suite: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "test-deps: not root and no sudo; missing Debian packages: ${missing[*]} (tests needing them will be SKIPPED)" >&2
    exit 0
  fi
fi
echo "test-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq >/dev/null 2>&1   # a mirror mid-sync fails part of the update; the lists it has still work
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || \
  echo "test-deps: apt-get install failed; tests needing ${missing[*]} will be SKIPPED" >&2
exit 0
