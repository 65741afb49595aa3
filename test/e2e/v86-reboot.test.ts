/**
 * A v86 guest on this engine keeps its network when its driver resets the device: the guest
 * unloads and reloads virtio_net twice (the driver resets the device and lays out new rings;
 * the adapter follows v86's registers), with a DHCP lease and a ping to the gateway each time.
 * (A machine reset through v86's own restart() is not tested: in v86 0.5.462 it ends in a
 * "RuntimeError: unreachable" inside v86's Wasm, with or without this engine.)
 */
import { afterAll, describe, expect, it } from "vitest";
import { bootV86Guest, v86GuestAvailable, type V86Guest } from "../../host/guests/v86.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";

const avail = v86GuestAvailable();

describe.skipIf(!avail.ok)(`a v86 guest resetting its NIC on this engine${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  let guest: V86Guest | undefined;
  afterAll(() => guest?.stop());

  it("gets a lease and reaches the gateway before and after reloading virtio_net twice", async () => {
    const network = embeddedNetwork({ subnet: "198.51.100.0" });
    guest = await bootV86Guest({
      network: network.sw, mode: "engine",
      script: `
echo '#!/bin/sh' > /tmp/u.sh
echo 'case "$1" in bound|renew) ip addr add $ip/$mask dev $interface; echo "VNW lease$round $ip";; esac' >> /tmp/u.sh
chmod +x /tmp/u.sh
for round in 1 2 3; do
  export round
  ip addr flush dev eth0
  udhcpc -i eth0 -n -q -f -t 10 -T 3 -s /tmp/u.sh 2>/dev/null || echo "VNW lease$round failed"
  ping -c 3 -W 5 198.51.100.1 >/dev/null && echo "VNW gwping$round ok"
  if [ $round -lt 3 ]; then
    rmmod virtio_net && insmod /lib/modules/virtio_net.ko && echo "VNW reloaded$round"
    ip link set eth0 up
  fi
done
`,
    });
    await guest.waitFor(/VNW done/, 300_000);
    const m = guest.markers();
    for (const round of [1, 2, 3]) {
      expect(m.get(`lease${round}`), guest.lines.join("\n")).toMatch(/^198\.51\.100\.\d+$/);
      expect(m.has(`gwping${round}`)).toBe(true);
    }
    expect(m.has("reloaded2")).toBe(true);
    expect(guest.net!.counters.syncs).toBeGreaterThanOrEqual(3);
    // Each unload resets the device (status 0), which the adapter followed.
    expect(guest.net!.counters.resets).toBeGreaterThanOrEqual(2);
    expect(guest.net!.dev.status & 0x40).toBe(0); // never NEEDS_RESET
  }, 400_000);
});
