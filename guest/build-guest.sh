#!/usr/bin/env bash
# Builds the small Linux guests the end-to-end tests and benchmarks boot, from Debian packages
# only: the distribution kernel (downloaded with apt-get download and unpacked, not installed),
# busybox-static, and an /init that loads the virtio modules and runs a per-boot script.
#   guest/build-guest.sh          amd64 guest for QEMU, with iperf3, ethtool and their libraries
#                                 -> $VNW_GUEST_DIR (default .guest/): vmlinuz, base.cpio.gz
#   guest/build-guest.sh i386     32-bit guest for v86 (an i686 without long mode):
#                                 linux-image-686 and busybox-static:i386, no iperf3
#                                 -> $VNW_GUEST_I386_DIR (default .guest/i386/)
# Needs: busybox-static, cpio, iperf3, ethtool (amd64); dpkg's i386 architecture with apt lists (i386).
# .ci/run installs and enables all of it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARCH="${1:-amd64}"
case "$ARCH" in
  amd64) OUT="${VNW_GUEST_DIR:-$ROOT/.guest}"; meta=linux-image-amd64; tools="busybox cpio iperf3 ethtool" ;;
  i386) OUT="${VNW_GUEST_I386_DIR:-$ROOT/.guest/i386}"; meta=linux-image-686; tools="cpio" ;;
  *) echo "build-guest: unknown architecture $ARCH (amd64 or i386)" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/base.cpio.gz" ] && [ "$OUT/base.cpio.gz" -nt "$0" ] && [ "$OUT/base.cpio.gz" -nt "$ROOT/guest/init" ]; then
  echo "$ARCH guest image up to date in $OUT"
  exit 0
fi
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "build-guest: $tool is missing (apt-get install busybox-static cpio iperf3 ethtool)" >&2; exit 1; }
done
work="$(mktemp -d)"
chmod 755 "$work"  # apt-get download drops to _apt where it can
trap 'rm -rf "$work"' EXIT

echo "[guest] fetching the Debian kernel package for $ARCH (not installed, only unpacked)"
pkg="$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$pkg" ] || { echo "build-guest: cannot resolve $meta (run apt-get update; for i386 first dpkg --add-architecture i386)" >&2; exit 1; }
(cd "$work" && apt-get download -q "$pkg" >/dev/null)
# A foreign-architecture package resolves as name:i386; its file is name_version_i386.deb.
dpkg -x "$work"/"${pkg%%:*}"_*.deb "$work/kernel"
kver="$(ls "$work/kernel/lib/modules")"
cp "$work/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz"

echo "[guest] assembling the initramfs (kernel $kver)"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules,usr/bin}
if [ "$ARCH" = i386 ]; then
  (cd "$work" && apt-get download -q busybox-static:i386 >/dev/null)
  dpkg -x "$work"/busybox-static_*_i386.deb "$work/bb"
  cp "$work/bb/bin/busybox" "$rootfs/bin/busybox"
else
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
fi
# The virtio NIC, and 802.1Q (with what it needs) so a guest can put VLANs on it.
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net llc stp garp mrp 8021q"
for m in $mods; do
  f="$(find "$work/kernel/lib/modules/$kver" -name "$m.ko*" | head -n1)"
  [ -n "$f" ] || { echo "build-guest: module $m not found in $pkg" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *) cp "$f" "$rootfs/lib/modules/$m.ko" ;;
  esac
done
echo "$mods" > "$rootfs/lib/modules/order"
if [ "$ARCH" = amd64 ]; then
  # iperf3, ethtool (queue pairs: ethtool -L) and the shared libraries they need (same Debian
  # release as the guest's userland).
  for bin in iperf3 ethtool; do
    cp "$(command -v "$bin")" "$rootfs/usr/bin/$bin"
    for lib in $(ldd "$(command -v "$bin")" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
  done
fi
cp "$ROOT/guest/init" "$rootfs/init"
chmod +x "$rootfs/init"
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/base.cpio.gz")
echo "[guest] done: $OUT/vmlinuz, $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
