/**
 * A real Debian i386 guest in v86 (headless, in this process), its eth0 on this engine
 * through the v86 adapter, on the embedded network: the guest's udhcpc gets a lease from the
 * gateway and pings it over IPv4 and IPv6, with zero frames through v86's own virtio-net code
 * and the guest's driver negotiating what v86's device never offered.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libslirp } from "../../host/runtime/libslirp.js";
import { dhcpScript } from "../../host/guests/shell.js";
import { QueueIndex } from "../../assembly/abi.js";
import { featureList } from "../../host/device/features.js";
import { bootV86Guest, v86GuestAvailable, type V86Guest } from "../../host/guests/v86.js";
import { embeddedNetwork } from "../../host/vhost-user/backend.js";
import { fileURLToPath } from "node:url";
import { LinuxTap } from "../../host/backends/tap-linux.js";
import { TapSwitchPort } from "../../host/net/tap-switch-port.js";
import { Netns, netTestsAvailable } from "../support/netns.js";

const helper = fileURLToPath(new URL("../integration/host-helper.mjs", import.meta.url));

const avail = v86GuestAvailable();

describe.skipIf(!avail.ok)(`a Debian i386 guest in v86 on this engine${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  const network = embeddedNetwork({ subnet: "198.51.100.0", prefix6: "2001:db8:2::" });
  let guest: V86Guest;

  beforeAll(async () => {
    guest = await bootV86Guest({
      network: network.sw, mode: "engine",
      script: `${dhcpScript(["router"], "", 5)}
ping -c 3 -W 3 198.51.100.1 >/dev/null && echo "VNW gwping ok"
for i in $(seq 1 30); do ip -6 addr show dev eth0 | grep -q "2001:db8:2:" && break; sleep 0.5; done
# A SLAAC address is tentative (unusable) until duplicate address detection ends: retry.
for i in $(seq 1 10); do ping -6 -c 1 -W 3 2001:db8:2::1 >/dev/null && echo "VNW gw6 ok" && break; sleep 1; done
echo "VNW rx $(cat /sys/class/net/eth0/statistics/rx_packets) $(cat /sys/class/net/eth0/statistics/rx_errors)"
`,
    });
    await guest.waitFor(/VNW done/, 150_000);
  }, 180_000);

  afterAll(() => guest?.stop());

  it("gets a DHCP lease from the gateway and pings it over IPv4 and IPv6", () => {
    expect(guest.markers().get("lease")).toMatch(/^198\.51\.100\.1\d\d router 198\.51\.100\.1$/);
    expect(guest.markers().has("gwping")).toBe(true);
    expect(guest.markers().has("gw6")).toBe(true);
    expect(guest.markers().get("rx")).toMatch(/^\d+ 0$/);
  });

  it("the guest negotiated offloads v86's own device does not offer, and v86's virtio-net code saw no frame", () => {
    const net = guest.net!;
    const f = featureList(net.dev.negotiatedFeatures);
    // Packed rings and the control queue too: v86's device has neither.
    expect(f).toEqual(expect.arrayContaining(["csum", "guest_csum", "event_idx", "indirect_desc", "mrg_rxbuf", "version_1", "ring_packed", "ctrl_vq"]));
    expect(guest.v86Sent()).toBe(0);
    expect(net.counters.notifications[QueueIndex.TX]).toBeGreaterThan(0);
    const tx = net.dev.metrics(QueueIndex.TX);
    const rx = net.dev.metrics(QueueIndex.RX);
    expect(tx.packets).toBeGreaterThanOrEqual(8); // DHCP discover/request, ARP, 3+2 echo requests, NS/RS
    expect(rx.packets).toBeGreaterThanOrEqual(7);
    expect(network.gateway.counters.dhcpAcks).toBeGreaterThanOrEqual(1);
    expect(network.gateway.counters.echoReplies).toBeGreaterThanOrEqual(3);
  });
});

const netOk = avail.ok ? netTestsAvailable() : avail;
describe.skipIf(!netOk.ok)(`the v86 guest reaching a tap through the engine${netOk.ok ? "" : ` (skipped: ${netOk.reason})`}`, () => {
  it("moves 1 MiB of TCP to the host's kernel with the same sha256 on both ends", async () => {
    const ns = Netns.create();
    const network = embeddedNetwork({ subnet: "198.51.100.0" });
    const tap = LinuxTap.open(Netns.tapName());
    ns.adopt(tap.name);
    ns.hostSide(tap.name);
    const tapPort = new TapSwitchPort(network.sw, tap);
    tapPort.start();
    let guest: V86Guest | undefined;
    try {
      const sink = ns.run(["node", helper, "tcp-sink", "192.0.2.1", "5001", "150000"], 160_000);
      guest = await bootV86Guest({
        network: network.sw, mode: "engine",
        script: `
dd if=/dev/urandom of=/tmp/d bs=65536 count=16 2>/dev/null
echo "VNW sent $(sha256sum /tmp/d | cut -d' ' -f1)"
for i in $(seq 1 20); do nc 192.0.2.1 5001 < /tmp/d && break; sleep 0.5; done
echo "VNW sentdone"
`,
      });
      await guest.waitFor(/VNW done/, 150_000);
      const got = JSON.parse(await sink) as { bytes: number; sha256: string };
      expect(got.bytes).toBe(1 << 20);
      expect(got.sha256).toBe(guest.markers().get("sent"));
      expect(guest.v86Sent()).toBe(0);
      for (const v of Object.values(ns.csumErrors())) expect(v).toBe(0);
    } finally {
      guest?.stop();
      await tapPort.stop();
      tap.close();
      ns.destroy();
    }
  }, 200_000);
});

let slirpOk = true;
try { libslirp(); } catch { slirpOk = false; }
describe.skipIf(!avail.ok || !slirpOk)(`the v86 guest on the uplink${avail.ok && slirpOk ? "" : " (skipped: no v86 guest or no libslirp0)"}`, () => {
  it("fetches a file from an HTTP server on the host's 127.0.0.1 through the gateway's address", async () => {
    const blob = randomBytes(256 << 10);
    const http = createServer((_req, res) => res.end(blob));
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
    const port = (http.address() as AddressInfo).port;
    const network = embeddedNetwork({ subnet: "198.51.100.0", uplink: {} });
    let guest: V86Guest | undefined;
    try {
      guest = await bootV86Guest({
        network: network.sw, mode: "engine",
        script: `${dhcpScript(["dns"], "", 5)}
wget -q -O /tmp/f http://198.51.100.1:${port}/blob && echo "VNW fetched $(sha256sum /tmp/f | cut -d' ' -f1)"
echo "VNW csumerr $(csumerr Tcp)"
`,
      });
      await guest.waitFor(/VNW done/, 150_000);
      expect(guest.markers().get("lease")).toMatch(/^198\.51\.100\.1\d\d dns 198\.51\.100\.3$/);
      expect(guest.markers().get("fetched")).toBe(createHash("sha256").update(blob).digest("hex"));
      expect(guest.markers().get("csumerr")).toBe("0");
      expect(network.uplink!.counters.fromHost).toBeGreaterThan(100);
    } finally {
      guest?.stop();
      await network.close();
      http.close();
    }
  }, 200_000);
});
