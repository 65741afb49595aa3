#!/usr/bin/env bash
# Builds the small Linux guest the end-to-end tests and benchmarks boot under QEMU, from Debian
# packages only: the distribution kernel (downloaded with apt-get download and unpacked, not
# installed), busybox-static, iperf3 with its libraries, and an /init that loads the virtio
# modules and runs a per-boot script. Output: $OUT/vmlinuz, $OUT/base.cpio.gz (default .guest/).
# Needs: qemu-system-x86, busybox-static, iperf3, cpio (installed by .ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${VNW_GUEST_DIR:-$ROOT/.guest}"
mkdir -p "$OUT"
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/base.cpio.gz" ] && [ "$OUT/base.cpio.gz" -nt "$0" ] && [ "$OUT/base.cpio.gz" -nt "$ROOT/guest/init" ]; then
  echo "guest image up to date in $OUT"
  exit 0
fi
for tool in busybox cpio iperf3; do
  command -v "$tool" >/dev/null || { echo "build-guest: $tool is missing (apt-get install busybox-static cpio iperf3)" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "[guest] fetching the Debian kernel package (not installed, only unpacked)"
pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$pkg" ] || { echo "build-guest: cannot resolve linux-image-amd64 (run apt-get update)" >&2; exit 1; }
(cd "$work" && apt-get download -q "$pkg" >/dev/null)
dpkg -x "$work"/"$pkg"_*.deb "$work/kernel"
kver="$(ls "$work/kernel/lib/modules")"
cp "$work/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz"

echo "[guest] assembling the initramfs (kernel $kver)"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules,usr/bin}
cp "$(command -v busybox)" "$rootfs/bin/busybox"
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
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
# iperf3 and the shared libraries it needs (same Debian release as the guest's userland).
cp "$(command -v iperf3)" "$rootfs/usr/bin/iperf3"
for lib in $(ldd "$(command -v iperf3)" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
cp "$ROOT/guest/init" "$rootfs/init"
chmod +x "$rootfs/init"
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/base.cpio.gz")
echo "[guest] done: $OUT/vmlinuz, $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
