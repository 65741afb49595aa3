#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine of the project's kind, when run as
# root: network namespaces (iproute2), ping, QEMU and what builds the test guests (busybox,
# cpio, iperf3), tshark (decodes pcap captures), SeaBIOS and the i386 guest for v86, DPDK's
# testpmd (a fast vhost-user front-end) and python3 (a frame blaster); then builds the guests.
# Used by `npm test` and by .ci/run. Elsewhere (not root, not Debian) it says what is missing;
# the tests that need it then skip and say why.
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v tshark >/dev/null || need+=(tshark)
[ -f /usr/share/seabios/bios.bin ] || need+=(seabios)  # the BIOS v86 boots (its npm package ships none)
command -v dpdk-testpmd >/dev/null || need+=(dpdk dpdk-dev)
command -v python3 >/dev/null || need+=(python3)

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "test set-up: not root on Debian, so not installing ${need[*]}; the tests that need them will skip and say why"
  fi
  exit 0
fi

# The v86 guest is 32-bit: Debian's i386 kernel and busybox (downloaded, not installed).
i386_new=0
if ! dpkg --print-foreign-architectures | grep -qx i386; then dpkg --add-architecture i386; i386_new=1; fi
if [ ${#need[@]} -gt 0 ] || [ $i386_new = 1 ] || [ ! -s .guest/vmlinuz ] || [ ! -s .guest/i386/vmlinuz ]; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  # A mirror mid-sync can fail one index (seen: bookworm-security i386); retry, then go on with
  # the lists that did arrive (the packages needed come from the main archive).
  for try in 1 2 3; do apt-get update -qq && break; echo "apt-get update failed (try $try)"; sleep 10; done || true
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "test set-up: installing ${need[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" || echo "test set-up: some packages did not install; their tests will skip"
fi
bash guest/build-guest.sh || echo "amd64 guest not built: the QEMU tests will skip and say why"
bash guest/build-guest.sh i386 || echo "i386 guest not built: the v86 tests will skip and say why"
exit 0
