/**
 * A real Linux guest (Debian 6.1 kernel, busybox) under QEMU, its virtio-net served by the
 * `virtio-net-wasm vhost-user` CLI with a tap in a test namespace. The guest's own kernel and
 * the host's are the judges: the features the guest's driver negotiated, ping both ways, TCP
 * transfers both ways whose bytes are verified by sha256 on both ends, UDP (iperf3), IPv6, and
 * zero checksum errors in both kernels' counters; once with the guest's offloads on and once
 * with them off on the device (csum=off,guest_csum=off) and in the driver (virtio_net.csum=0).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns } from "../support/netns.js";
import { boot, guestAvailable, type Guest } from "../../host/guests/qemu.js";
import { avail, cli, helper, sleep } from "./qemu-env.js";

const SCRIPT = `
ping -c 3 -W 3 192.0.2.1 >/dev/null && echo "VNW ping4 ok"
ping -c 2 -W 3 2001:db8::1 >/dev/null && echo "VNW ping6 ok"
dd if=/dev/urandom of=/tmp/tx bs=65536 count=64 2>/dev/null
echo "VNW txsha $(sha256sum /tmp/tx | cut -d' ' -f1)"
nc 192.0.2.1 5001 < /tmp/tx && echo "VNW txdone"
nc -l -p 5002 > /tmp/rx &
echo "VNW listening"
wait
echo "VNW rxsha $(sha256sum /tmp/rx | cut -d' ' -f1) $(wc -c < /tmp/rx)"
echo hello6 | nc 2001:db8::1 5003 && echo "VNW tcp6 ok"
iperf3 -c 192.0.2.1 -u -b 20M -t 1 -l 1400 >/tmp/iperf 2>&1 && echo "VNW udp ok"
csumerr() { awk -v g="$1:" '$1 == g { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InCsumErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }
echo "VNW snmp tcp $(csumerr Tcp) udp $(csumerr Udp) v6 $(awk '/InCsumErrors/ {s += $2} END {print s + 0}' /proc/net/snmp6)"
echo "VNW stats $(cat /sys/class/net/eth0/statistics/rx_errors) $(cat /sys/class/net/eth0/statistics/tx_errors) $(cat /sys/class/net/eth0/statistics/rx_packets)"
`;

interface Variant { name: string; deviceProps?: string; netParams?: string; csum: boolean; packed?: boolean }

describe.skipIf(!avail.ok || !existsSync(cli))(`a real Linux guest under QEMU${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  describe.each<Variant>([
    { name: "guest offloads on", csum: true },
    { name: "guest offloads off (device csum=off,guest_csum=off; virtio_net.csum=0 gso=0)", deviceProps: "csum=off,guest_csum=off", netParams: "csum=0,gso=0", csum: false },
    { name: "packed rings (packed=on)", deviceProps: "packed=on", csum: true, packed: true },
  ])("$name", (v) => {
    let ns: Netns;
    let guest: Guest;
    let backendOut = "";
    let backend: ReturnType<typeof spawn>;
    const socket = `/tmp/vnw-e2e-${process.pid}-${v.csum ? 1 : 0}${v.packed ? "p" : ""}.sock`;
    const tap = Netns.tapName();
    let sink: Promise<string>;
    let udp: Promise<string>;
    let tcp6: Promise<string>;

    beforeAll(async () => {
      ns = Netns.create();
      backend = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--tap", tap], { stdio: ["ignore", "pipe", "pipe"] });
      backend.stdout!.on("data", (d) => { backendOut += d; });
      backend.stderr!.on("data", (d) => { backendOut += d; });
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
      ns.adopt(tap);
      ns.hostSide(tap);
      sink = ns.run(["node", helper, "tcp-sink", "192.0.2.1", "5001", "90000"], 120_000);
      tcp6 = ns.run(["node", helper, "tcp-sink", "2001:db8::1", "5003", "90000"], 120_000);
      udp = ns.run(["iperf3", "-s", "-1", "-B", "192.0.2.1", "--json"], 120_000);
      await sleep(300);
      guest = boot({ socket, script: SCRIPT, deviceProps: v.deviceProps, netParams: v.netParams });
      await guest.waitFor(/VNW listening/, 120_000);
      // Host → guest: send 4 MiB into the guest's nc and remember their hash.
      const sent = JSON.parse(await ns.run(["node", helper, "tcp-source", "192.0.2.2", "5002", String(4 << 20)], 60_000));
      (guest as unknown as { sent: { sha256: string; bytes: number } }).sent = sent;
      await guest.waitFor(/VNW stats/, 120_000);
      await guest.exited;
    }, 300_000);

    afterAll(() => {
      backend?.kill("SIGTERM");
      ns?.destroy();
    });

    it("the guest's driver negotiated what the device and the driver allowed", () => {
      const features = guest.markers().get("up")!.replace("features=", "");
      expect(features[0]).toBe(v.csum ? "1" : "0"); // VIRTIO_NET_F_CSUM
      expect(features[1]).toBe(v.csum ? "1" : "0"); // VIRTIO_NET_F_GUEST_CSUM
      // TSO both ways: GUEST_TSO4/6 (bits 7/8), HOST_TSO4/6 (bits 11/12). QEMU lets the guest
      // keep them even with csum=off,guest_csum=off, which breaks the spec's dependencies; the
      // back-end then treats them as off and says so.
      expect([7, 8, 11, 12].map((b) => features[b]).join("")).toBe("1111");
      if (!v.csum) expect(backendOut).toMatch(/without their prerequisites; treating them as off/);
      else expect(backendOut).not.toMatch(/without their prerequisites/);
      expect(features[32]).toBe("1"); // VERSION_1
      expect(features[34]).toBe(v.packed ? "1" : "0"); // RING_PACKED
      expect(backendOut).toMatch(/rings started/);
    });

    it("ping both ways works (guest → host here; host → guest ARP/ND answered by the guest's kernel)", async () => {
      expect(guest.markers().has("ping4")).toBe(true);
      expect(guest.markers().has("ping6")).toBe(true);
    });

    it("TCP guest → host: 4 MiB arrive with the same sha256", async () => {
      const got = JSON.parse(await sink);
      expect(got.bytes).toBe(4 << 20);
      expect(got.sha256).toBe(guest.markers().get("txsha"));
    });

    it("TCP host → guest: 4 MiB arrive with the same sha256", () => {
      const sent = (guest as unknown as { sent: { sha256: string; bytes: number } }).sent;
      expect(guest.markers().get("rxsha")).toBe(`${sent.sha256} ${sent.bytes}`);
    });

    it("TCP over IPv6 and UDP (iperf3) work", async () => {
      expect(JSON.parse(await tcp6).bytes).toBe(7);
      expect(guest.markers().has("udp")).toBe(true);
      const report = JSON.parse(await udp);
      expect(report.end.sum.packets).toBeGreaterThan(100);
    });

    it("no checksum errors in the guest's or the host's counters", () => {
      expect(guest.markers().get("snmp")).toBe("tcp 0 udp 0 v6 0");
      const [rxErr, txErr] = guest.markers().get("stats")!.split(" ").map(Number);
      expect([rxErr, txErr]).toEqual([0, 0]);
      expect(Object.values(ns.csumErrors()).every((x) => x === 0)).toBe(true);
    });
  });
});

const noTap = guestAvailable();
describe.skipIf(!noTap.ok || !existsSync(cli))(`a real Linux guest on the embedded network (no tap)${noTap.ok ? "" : ` (skipped: ${noTap.reason})`}`, () => {
  it("gets a DHCP lease and a SLAAC address from the built-in gateway and pings it over IPv4 and IPv6", async () => {
    const socket = `/tmp/vnw-e2e-embedded-${process.pid}.sock`;
    const backend = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", "--net6", "2001:db8:1::", "--dns", "198.51.100.53"], { stdio: "ignore" });
    const exited = new Promise((r) => backend.on("exit", r));
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
      const guest = boot({
        socket,
        script: `
ip addr flush dev eth0
echo '#!/bin/sh' > /tmp/udhcpc.sh
echo 'case "$1" in bound|renew) ip addr add $ip/$mask dev $interface; echo "VNW lease $ip router $router dns $dns";; esac' >> /tmp/udhcpc.sh
chmod +x /tmp/udhcpc.sh
udhcpc -i eth0 -n -q -f -t 5 -T 2 -s /tmp/udhcpc.sh
ping -c 2 -W 3 198.51.100.1 >/dev/null && echo "VNW gwping ok"
for i in $(seq 1 30); do ip -6 addr show dev eth0 | grep -q "2001:db8:1:" && break; sleep 0.5; done
echo "VNW addr6 $(ip -6 addr show dev eth0 | grep -o '2001:db8:1:[0-9a-f:]*' | head -1)"
# A SLAAC address is tentative (unusable) until duplicate address detection ends: retry.
for i in $(seq 1 10); do ping -6 -c 1 -W 3 2001:db8:1::1 >/dev/null && echo "VNW gw6 ok" && break; sleep 1; done
`,
      });
      await guest.waitFor(/VNW done/, 120_000);
      await guest.exited;
      const lease = guest.markers().get("lease");
      expect(lease).toMatch(/^198\.51\.100\.(1\d\d) router 198\.51\.100\.1 dns 198\.51\.100\.53$/);
      expect(guest.markers().has("gwping")).toBe(true);
      // SLAAC: the guest's kernel formed prefix + EUI-64 of its MAC 52:54:00:12:34:56.
      expect(guest.markers().get("addr6")).toBe("2001:db8:1:0:5054:ff:fe12:3456"); // as busybox prints it
      expect(guest.markers().has("gw6")).toBe(true);
    } finally {
      backend.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 180_000);
});
