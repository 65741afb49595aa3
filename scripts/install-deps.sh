#!/usr/bin/env bash
# Installs what the demo or the test suite needs on a Debian machine of the project's kind,
# when run as root, and builds the small guests. One script for `npm start` (the demo runs it
# as `demo`), `npm test` and .ci/run (as `test`).
#
#   demo: QEMU to run the guests; busybox, cpio, iperf3 and ethtool to build their initramfs (the guest
#         kernel is downloaded, not installed); libslirp0 for the uplink; builds the amd64 guest.
#   test: that, and network namespaces (iproute2), ping, tshark (decodes pcap captures),
#         SeaBIOS and the i386 guest for v86, DPDK's testpmd (a fast vhost-user front-end),
#         python3 (a frame blaster) and Chromium (the browser build's tests).
#
# Elsewhere (not root, not Debian) it says what is missing and exits 0: the demo then runs
# in-process, and the tests that need the missing parts skip and say why.
set -uo pipefail
cd "$(dirname "$0")/.."
profile="${1:-test}"
case "$profile" in demo|test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2;; esac

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ethtool >/dev/null || need+=(ethtool)  # into the guest (ethtool -L for queue pairs)
ldconfig -p 2>/dev/null | grep -q 'libslirp\.so\.0 ' || need+=(libslirp0)  # the embedded network's uplink
if [ "$profile" = test ]; then
  command -v ip >/dev/null || need+=(iproute2)
  command -v ping >/dev/null || need+=(iputils-ping)
  command -v tshark >/dev/null || need+=(tshark)
  [ -f /usr/share/seabios/bios.bin ] || need+=(seabios)  # the BIOS v86 boots (its npm package ships none)
  command -v dpdk-testpmd >/dev/null || need+=(dpdk dpdk-dev)
  command -v python3 >/dev/null || need+=(python3)
  [ -x /usr/bin/chromium ] || need+=(chromium)  # the browser build's tests (headless, through playwright-core)
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "$profile set-up: not root on Debian, so not installing ${need[*]}; what needs them will skip and say why"
  fi
  [ ${#need[@]} -gt 0 ] || bash guest/build-guest.sh || true
  exit 0
fi

if [ "$profile" = demo ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "demo set-up: installing ${need[*]} from Debian: QEMU to run the guests; busybox, cpio and iperf3 to build their"
    echo "demo set-up: small initramfs (a one-time install; the guest kernel is only downloaded, not installed)"
    for try in 1 2 3; do apt-get update -qq && break; sleep 10; done || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" || echo "demo set-up: some packages did not install"
  fi
  bash guest/build-guest.sh || echo "demo set-up: the guest image was not built"
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
