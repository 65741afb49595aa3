/**
 * Software segmentation with real guests: two Debian guests under QEMU on the embedded
 * network, served in this process. Guest A negotiates TSO both ways; guest B's device has
 * GUEST_TSO off (QEMU guest_tso4=off,guest_tso6=off,guest_ecn=off), so every large segment A
 * sends must be split by B's core into MSS-sized frames in B's buffers (with MRG_RXBUF), while
 * B's own large segments reach A whole. The guests' sha256 of each transfer and their kernels'
 * checksum-error counters are the judges; the devices' counters show which path was taken.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueueIndex } from "../../assembly/abi.js";
import { boot, guestAvailable, type Guest } from "../../host/guests/qemu.js";
import { embeddedNetwork, VhostUserNetBackend } from "../../host/vhost-user/backend.js";
import { VhostUserServer } from "../../host/vhost-user/server.js";
import { dhcpScript } from "../../host/guests/shell.js";

const avail = guestAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SUBNET = "198.51.100";
const MACS = ["52:54:00:00:01:0a", "52:54:00:00:01:0b"];

const dhcp = dhcpScript();
const end = `echo "VNW csumerr $(csumerr Tcp)"
echo "VNW features $(cat /sys/class/net/eth0/device/features)"`;

// A sends 4 MiB to B, then B sends 4 MiB back.
const scriptA = `${dhcp}
dd if=/dev/urandom of=/tmp/d bs=65536 count=64 2>/dev/null
echo "VNW sent $(sha256sum /tmp/d | cut -d' ' -f1)"
for i in $(seq 1 40); do nc ${SUBNET}.11 5000 < /tmp/d 2>/dev/null && break; sleep 0.5; done
nc -l -p 5001 > /tmp/r
echo "VNW received $(sha256sum /tmp/r | cut -d' ' -f1)"
${end}`;
const scriptB = `${dhcp}
nc -l -p 5000 > /tmp/r
echo "VNW received $(sha256sum /tmp/r | cut -d' ' -f1)"
dd if=/dev/urandom of=/tmp/d bs=65536 count=64 2>/dev/null
echo "VNW sent $(sha256sum /tmp/d | cut -d' ' -f1)"
for i in $(seq 1 40); do nc ${SUBNET}.10 5001 < /tmp/d 2>/dev/null && break; sleep 0.5; done
${end}`;

describe.skipIf(!avail.ok)(`software segmentation between two real guests${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  const network = embeddedNetwork({ subnet: `${SUBNET}.0`, reservations: { [MACS[0]]: 10, [MACS[1]]: 11 } });
  const backends = MACS.map((_, i) => new VhostUserNetBackend({ network, portName: `guest ${i}` }));
  const sockets = MACS.map((_, i) => `/tmp/vnw-seg-${process.pid}-${i}.sock`);
  const servers = backends.map((b, i) => new VhostUserServer(b, { socketPath: sockets[i] }));
  let serving: Promise<void>[] = [];
  let a: Guest;
  let b: Guest;

  beforeAll(async () => {
    serving = servers.map((s) => s.run());
    for (let i = 0; i < 100 && !sockets.every(existsSync); i++) await sleep(50);
    b = boot({ socket: sockets[1], script: scriptB, mac: MACS[1], deviceProps: "guest_tso4=off,guest_tso6=off,guest_ecn=off" });
    a = boot({ socket: sockets[0], script: scriptA, mac: MACS[0] });
    await Promise.all([a.waitFor(/VNW features/, 150_000), b.waitFor(/VNW features/, 150_000)]);
    await Promise.all([a.exited, b.exited]);
  }, 200_000);

  afterAll(async () => {
    for (const g of [a, b]) g?.child.kill("SIGKILL");
    for (const s of servers) s.stop();
    await Promise.all(serving);
    for (const x of backends) await x.close();
  });

  it("the bytes arrive intact both ways and neither kernel saw a bad checksum", () => {
    expect(a.markers().get("lease")).toBe(`${SUBNET}.10`);
    expect(b.markers().get("lease")).toBe(`${SUBNET}.11`);
    expect(b.markers().get("received")).toBe(a.markers().get("sent"));
    expect(a.markers().get("received")).toBe(b.markers().get("sent"));
    expect(a.markers().get("csumerr")).toBe("0");
    expect(b.markers().get("csumerr")).toBe("0");
  });

  it("A's large segments were split by B's core; B's reached A whole; both used merged buffers", () => {
    const rxA = backends[0].dev.metrics(QueueIndex.RX);
    const rxB = backends[1].dev.metrics(QueueIndex.RX);
    const txA = backends[0].dev.metrics(QueueIndex.TX);
    // Guest A sent TSO frames (it negotiated HOST_TSO4) that crossed the switch whole.
    expect(txA.gsoOffloaded).toBeGreaterThan(0);
    expect(rxB.gsoSegmented).toBeGreaterThan(0);
    expect(rxB.gsoSegments).toBeGreaterThan(rxB.gsoSegmented);
    expect(rxB.gsoOffloaded).toBe(0);
    expect(rxA.gsoOffloaded).toBeGreaterThan(0);
    expect(rxA.gsoSegmented).toBe(0);
    expect(rxA.buffersMerged).toBeGreaterThan(0);
    expect(network.sw.counters.gsoForwarded).toBeGreaterThan(0);
  });
});
