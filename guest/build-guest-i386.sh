#!/usr/bin/env bash
# Builds the 32-bit guest for the v86 tests (v86 emulates an i686 without long mode): Debian's
# linux-image-686 (downloaded and unpacked, not installed), busybox-static:i386 and the same
# /init as the QEMU guest. Output: $OUT/vmlinuz, $OUT/base.cpio.gz (default .guest/i386/).
# Needs dpkg's i386 architecture enabled and apt lists for it (.ci/run does both), and cpio.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${VNW_GUEST_I386_DIR:-$ROOT/.guest/i386}"
mkdir -p "$OUT"
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/base.cpio.gz" ] && [ "$OUT/base.cpio.gz" -nt "$0" ] && [ "$OUT/base.cpio.gz" -nt "$ROOT/guest/init" ]; then
  echo "i386 guest image up to date in $OUT"
  exit 0
fi
work="$(mktemp -d)"
chmod 755 "$work"  # apt-get download drops to _apt where it can
trap 'rm -rf "$work"' EXIT
echo "[guest-i386] fetching linux-image-686 and busybox-static:i386 (unpacked, not installed)"
pkg="$(apt-cache depends linux-image-686 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$pkg" ] || { echo "build-guest-i386: cannot resolve linux-image-686 (dpkg --add-architecture i386 && apt-get update)" >&2; exit 1; }
(cd "$work" && apt-get download -q "$pkg" busybox-static:i386 >/dev/null)
dpkg -x "$work"/"${pkg%%:*}"_*.deb "$work/kernel"
dpkg -x "$work"/busybox-static_*_i386.deb "$work/bb"
kver="$(ls "$work/kernel/lib/modules")"
cp "$work/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules}
cp "$work/bb/bin/busybox" "$rootfs/bin/busybox"
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
for m in $mods; do
  f="$(find "$work/kernel/lib/modules/$kver" -name "$m.ko*" | head -n1)"
  [ -n "$f" ] || { echo "build-guest-i386: module $m not found in $pkg" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *) cp "$f" "$rootfs/lib/modules/$m.ko" ;;
  esac
done
echo "$mods" > "$rootfs/lib/modules/order"
cp "$ROOT/guest/init" "$rootfs/init"
chmod +x "$rootfs/init"
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/base.cpio.gz")
echo "[guest-i386] done: $OUT/vmlinuz, $OUT/base.cpio.gz (kernel $kver)"
