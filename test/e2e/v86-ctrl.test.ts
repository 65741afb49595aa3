/**
 * The control queue with a real Linux driver: a Debian i386 guest in v86 on this engine, its
 * virtio_net negotiating the control queue and programming it as Linux does (receive mode and
 * MAC table when eth0 comes up, VLAN ids when a VLAN interface is added, the announce ack).
 * A test port on the same switch is the wire: a frame for another station (flooded to every
 * port) is dropped by the guest's filter until the guest turns promiscuous mode on; a frame
 * tagged with the guest's VLAN is answered, one tagged with another VLAN is dropped; asked to
 * announce itself, the guest sends a gratuitous ARP and acks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureList, hasFeature } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { dhcpScript } from "../../host/guests/shell.js";
import { bootV86Guest, v86GuestAvailable, type V86Guest } from "../../host/guests/v86.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";
import type { NetFrame, SwitchPort } from "../../host/net/switch.js";

const avail = v86GuestAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WIRE_MAC = Uint8Array.of(0x02, 0, 0, 0, 0x77, 0x01);
const STRANGER = Uint8Array.of(0x02, 0, 0, 0, 0x77, 0x99);

/** A station on the switch that records what reaches it. */
class Wire implements SwitchPort {
  readonly name = "wire";
  readonly acceptsPartial = false;
  readonly got: Uint8Array[] = [];
  deliver(frame: NetFrame): void { this.got.push(frame.data.slice()); }
}

describe.skipIf(!avail.ok)(`the control queue with Linux's virtio_net in v86${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  const network = embeddedNetwork({ subnet: "198.51.100.0", prefix6: "2001:db8:3::" });
  const wire = new Wire();
  network.sw.attach(wire);
  let guest: V86Guest;
  let guestMac: Uint8Array;
  let lease = "";

  beforeAll(async () => {
    guest = await bootV86Guest({
      network: network.sw, mode: "engine",
      script: `${dhcpScript(["router"], "", 5)}
ip link add link eth0 name eth0.5 type vlan id 5 && ip addr add 192.0.2.50/24 dev eth0.5 && ip link set eth0.5 up && echo "VNW vlan ok"
echo "VNW ready"
sleep 25
ip link set eth0 promisc on && echo "VNW promisc on"
sleep 25
`,
    });
    await guest.waitFor(/VNW ready/, 150_000);
    guestMac = Uint8Array.from(guest.net!.dev.mac.split(":").map((h) => parseInt(h, 16)));
    lease = guest.markers().get("lease")!.split(" ")[0];
  }, 180_000);

  afterAll(() => guest?.stop());

  const send = (f: Uint8Array) => network.sw.input(wire, { data: f, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });

  it("the guest's driver negotiated the control queue and programmed its receive filter", () => {
    const f = guest.net!.dev.negotiatedFeatures;
    expect(featureList(f)).toEqual(expect.arrayContaining(["ctrl_vq", "ctrl_rx", "ctrl_vlan", "guest_announce"]));
    expect(hasFeature(f, Feature.CTRL_VQ)).toBe(true);
    expect(guest.markers().has("vlan")).toBe(true);
    const ctrl = guest.net!.dev.metrics(QueueIndex.CTRL);
    // Receive mode and MAC table on eth0 up, VLAN 0 and 5 added: all accepted, none refused.
    expect(ctrl.ctrlOk).toBeGreaterThanOrEqual(4);
    expect(ctrl.ctrlErr).toBe(0);
    expect(guest.net!.counters.notifications[QueueIndex.CTRL]).toBeGreaterThan(0);
  });

  it("a frame for another station is dropped by the guest's filter; one for its VLAN is answered, another VLAN's dropped", async () => {
    const rx = () => guest.net!.dev.metrics(QueueIndex.RX);
    const before = rx().dropFiltered;
    send(buildFrame({ ip: 4, l4: "udp", payload: payload(40), dstMac: STRANGER, srcMac: WIRE_MAC, dst: [198, 51, 100, 9] }).frame);
    await sleep(200);
    expect(rx().dropFiltered).toBe(before + 1);
    // A ping on VLAN 5 (the guest's eth0.5) to 192.0.2.50: the guest's kernel answers it tagged.
    const ping = (vid: number, seq: number) => buildFrame({ ip: 4, l4: "icmp", payload: payload(32), dstMac: guestMac, srcMac: WIRE_MAC, src: [192, 0, 2, 1], dst: [192, 0, 2, 50], vlans: [0x8100], vlanIds: [vid], icmpSeq: seq }).frame;
    // The guest first asks who 192.0.2.1 is (ARP on VLAN 5): answered below by looking for the echo reply or the ARP.
    wire.got.length = 0;
    send(ping(5, 1));
    const t0 = Date.now();
    let answered = false;
    while (!answered && Date.now() - t0 < 20_000) {
      await sleep(100);
      answered = wire.got.some((g) => g[12] === 0x81 && g[13] === 0x00 && ((g[14] << 8) | g[15]) === 5 && g.subarray(6, 12).every((b, i) => b === guestMac[i]));
    }
    expect(answered).toBe(true);
    const dropped = rx().dropFiltered;
    send(ping(6, 2));
    await sleep(200);
    expect(rx().dropFiltered).toBe(dropped + 1);
  }, 30_000);

  it("asked to announce itself, the guest sends a gratuitous ARP and acks", async () => {
    wire.got.length = 0;
    expect(guest.net!.announce()).toBe(true);
    const t0 = Date.now();
    let garp: Uint8Array | undefined;
    while (!garp && Date.now() - t0 < 20_000) {
      await sleep(100);
      garp = wire.got.find((g) => g[12] === 0x08 && g[13] === 0x06 && g.subarray(6, 12).every((b, i) => b === guestMac[i])
        && g.subarray(28, 32).join(".") === lease && g.subarray(38, 42).join(".") === lease);
    }
    expect(garp).toBeDefined();
    const t1 = Date.now();
    while ((guest.net!.dev.readConfig(6, 2) & 2) !== 0 && Date.now() - t1 < 10_000) await sleep(100);
    expect(guest.net!.dev.readConfig(6, 2) & 2).toBe(0);
    expect(guest.net!.dev.metrics(QueueIndex.CTRL).ctrlErr).toBe(0);
  }, 40_000);

  it("in promiscuous mode the guest gets frames for other stations", async () => {
    await guest.waitFor(/VNW promisc on/, 60_000);
    expect(guest.net!.dev.rxMode & 1).toBe(1);
    const rx = () => guest.net!.dev.metrics(QueueIndex.RX);
    const [dropped, packets] = [rx().dropFiltered, rx().packets];
    send(buildFrame({ ip: 4, l4: "udp", payload: payload(40), dstMac: STRANGER, srcMac: WIRE_MAC, dst: [198, 51, 100, 9] }).frame);
    await sleep(300);
    expect(rx().dropFiltered).toBe(dropped);
    expect(rx().packets).toBe(packets + 1);
  }, 70_000);
});
