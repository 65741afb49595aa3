/**
 * The switch's fast path: frames between two devices in one memory moved by the core
 * (txForward) must reach the receiver exactly as the switch's JS path delivers them (the
 * reference here: collectTx, Switch.input, receive()), for any pair of feature sets, frame
 * shape and descriptor split; frames it cannot take stay with the JS path; and it writes
 * nothing outside the two state blocks and the receiver's RX buffers.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { PcapPort } from "../../host/net/pcap-port.js";
import { Switch } from "../../host/net/switch.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, l4ChecksumValid, payload } from "../../host/driver/frames.js";
import { cuts, frameSpec } from "../helpers/arbitraries.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const CANARY = 0x5a;

/** Two guests on a switch in one memory; `fast` turns the core's forwarding on. */
function pair(aFeatures: bigint, bFeatures: bigint, fast: boolean, rxParts: number[] = [1526], rxCount = 64) {
  const mem = createGuestMemory({ guestSize: 8 << 20, devices: 2 });
  const u8 = new Uint8Array(mem.memory.buffer);
  const half = mem.guestSize / 2;
  const sw = new Switch();
  const offer = featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX, Feature.MRG_RXBUF,
    Feature.INDIRECT_DESC, Feature.HOST_TSO4, Feature.HOST_TSO6, Feature.GUEST_TSO4, Feature.GUEST_TSO6);
  const guests = [aFeatures, bFeatures].map((features, i) => {
    const regions = [{ gpa: 0n, size: half, wasm: mem.guestBase + i * half }];
    const dev = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[i], regions, backend: BackendKind.VNET_HDR, mac: `02:00:00:00:00:0${i + 1}`, features: offer });
    const drv = new GuestDriver({ memory: mem.memory, regions }, dev, i + 1);
    drv.bringUp(features, 256);
    drv.postRx(rxCount, { parts: rxParts });
    return { dev, drv, port: new DevicePort(`guest${i}`, dev, sw, { fastPath: fast }) };
  });
  // Both addresses learned, as after any exchange.
  for (const [s, d] of [[0, 1], [1, 0]]) {
    guests[s].drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(10), srcMac: mac(s + 1), dstMac: mac(d + 1) }).frame);
    guests[s].port.pumpTx();
    guests[d].drv.receiveAll();
  }
  return { mem, u8, sw, guests };
}

const FEATURE_SETS = [
  featureMask(Feature.VERSION_1),
  featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX),
  featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.MRG_RXBUF, Feature.INDIRECT_DESC),
  featureMask(Feature.CSUM, Feature.GUEST_CSUM), // legacy 10-byte header
  featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.HOST_TSO4, Feature.HOST_TSO6, Feature.GUEST_TSO4, Feature.GUEST_TSO6),
];

describe("core forwarding between devices in one memory", () => {
  it("delivers what the switch's JS path delivers, byte for byte, header included", () => {
    fc.assert(fc.property(
      fc.constantFrom(...FEATURE_SETS), fc.constantFrom(...FEATURE_SETS), frameSpec, fc.boolean(), cuts(1600), fc.boolean(),
      (fa, fb, spec, partial, splits, separateHeader) => {
        const csum = partial && spec.l4 !== "icmp" && (fa & featureMask(Feature.CSUM)) !== 0n;
        const bf = buildFrame({ ...spec, csum: csum ? "partial" : "full", srcMac: mac(1), dstMac: mac(2) });
        const hdr = csum ? { flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: spec.l4 === "tcp" ? 16 : 6 } : {};
        const got = [true, false].map((fast) => {
          const { guests: [a, b] } = pair(fa, fb, fast);
          a.drv.send(bf.frame, { hdr, splits, separateHeader });
          a.port.pumpTx();
          expect(a.port.fastForwarded).toBe(fast ? 1 : 0);
          const r = b.drv.receiveAll();
          return { raw: r.map((x) => Array.from(x.raw)), rx: b.dev.metrics(QueueIndex.RX).packets, txUsed: a.drv.takeUsed(QueueIndex.TX).length };
        });
        expect(got[0]).toEqual(got[1]);
        expect(got[0].raw).toHaveLength(1);
      },
    ), { numRuns: 300 });
  });

  it("writes only the two state blocks and the receiver's RX buffers", () => {
    const { mem, u8, guests: [a, b] } = pair(FEATURE_SETS[1], FEATURE_SETS[2], true);
    const half = mem.guestSize / 2;
    // Paint everything outside the state blocks and B's guest RAM; B's RAM outside its RX
    // buffers is checked through the driver's own view below.
    const states = mem.stateAddresses.map((s) => [s, s + a.dev.stateSize]);
    const outside = (i: number) => !states.some(([s, e]) => i >= s && i < e) && !(i >= mem.guestBase + half && i < mem.guestBase + 2 * half) && !(i >= mem.guestBase && i < mem.guestBase + half);
    for (let i = 0; i < mem.guestBase; i++) if (outside(i)) u8[i] = CANARY;
    for (let k = 0; k < 20; k++) {
      const bf = buildFrame({ ip: 6, l4: "tcp", payload: payload(900 + k), csum: "partial", srcMac: mac(1), dstMac: mac(2) });
      a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: 16 }, splits: [k * 7 + 1] });
    }
    // A's RAM as it is before the device runs, except the used ring it will write.
    const txUsed = a.drv.queues[QueueIndex.TX].used;
    const before = u8.slice(mem.guestBase, mem.guestBase + half);
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(20);
    for (let i = 0; i < mem.guestBase; i++) if (outside(i) && u8[i] !== CANARY) throw new Error(`byte ${i} outside the state blocks was written`);
    const after = u8.slice(mem.guestBase, mem.guestBase + half);
    const usedStart = Number(txUsed);
    const usedEnd = usedStart + 6 + 8 * 256;
    for (let i = 0; i < half; i++) {
      if (i >= usedStart && i < usedEnd) continue;
      if (after[i] !== before[i]) throw new Error(`sender's guest RAM changed at gpa 0x${i.toString(16)} (not its used ring)`);
    }
    expect(b.drv.receiveMerged()).toHaveLength(20);
  });

  it("leaves broadcast, unknown destinations and a receiver with a backlog to the switch, in order", () => {
    const { sw, guests: [a, b] } = pair(FEATURE_SETS[1], FEATURE_SETS[1], true, [1526]);
    const send = (dst: Uint8Array, n: number) => a.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(64, n), srcMac: mac(1), dstMac: dst, sport: n }).frame);
    const flooded = sw.counters.flooded;
    send(Uint8Array.of(255, 255, 255, 255, 255, 255), 1);
    send(mac(9), 2);
    send(mac(2), 3);
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(1);
    expect(sw.counters.flooded - flooded).toBe(2);
    expect(b.drv.receiveAll().map((r) => (r.frame[34] << 8) | r.frame[35])).toEqual([1, 2, 3]);
    // B runs out of buffers: frames wait in its backlog and later ones may not overtake them.
    for (let n = 0; n < 70; n++) send(mac(2), 100 + n);
    a.port.pumpTx();
    const first = b.drv.receiveAll();
    b.drv.postRx(64);
    b.port.pumpRx();
    for (let n = 0; n < 5; n++) send(mac(2), 200 + n);
    a.port.pumpTx();
    const rest = b.drv.receiveAll();
    const order = [...first, ...rest].map((r) => (r.frame[34] << 8) | r.frame[35]);
    expect(order).toEqual([...Array.from({ length: 70 }, (_, n) => 100 + n), 200, 201, 202, 203, 204].slice(0, order.length));
    expect(order.length).toBe(75);
  });

  it("a large segment for a guest that cannot take it whole goes the switch's way and is segmented there", () => {
    const { guests: [a, b] } = pair(FEATURE_SETS[4], FEATURE_SETS[1], true, [1526]);
    const bf = buildFrame({ ip: 4, l4: "tcp", payload: payload(8000), csum: "partial", srcMac: mac(1), dstMac: mac(2) });
    a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: bf.l4Off, csumOffset: 16 } });
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(0);
    const got = b.drv.receiveAll();
    expect(got.length).toBe(Math.ceil(8000 / 1448));
    expect(b.dev.metrics(QueueIndex.RX).gsoSegments).toBe(got.length);
  });

  it("a large segment for a guest that takes it whole is forwarded whole, and checksums stay partial", () => {
    const { guests: [a, b] } = pair(FEATURE_SETS[4], FEATURE_SETS[4], true, [65550], 8);
    const bf = buildFrame({ ip: 6, l4: "tcp", payload: payload(30000), csum: "partial", srcMac: mac(1), dstMac: mac(2) });
    a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV6, gsoSize: 1440, hdrLen: 74, csumStart: bf.l4Off, csumOffset: 16 } });
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(1);
    const [r] = b.drv.receiveAll();
    expect(r.hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV6, gsoSize: 1440 });
    expect(Array.from(r.frame)).toEqual(Array.from(bf.frame));
  });

  it("a guest without GUEST_CSUM gets the checksum finished by its own core", () => {
    const { guests: [a, b] } = pair(FEATURE_SETS[1], FEATURE_SETS[0], true);
    const bf = buildFrame({ ip: 4, l4: "udp", payload: payload(1000), csum: "partial", srcMac: mac(1), dstMac: mac(2) });
    a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: 6 } });
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(1);
    const [r] = b.drv.receiveAll();
    expect(r.hdr.flags).toBe(0);
    expect(l4ChecksumValid(bf, r.frame)).toBe(true);
  });

  it("a capture port turns the fast path off: it must see every frame", () => {
    const { sw, guests: [a, b] } = pair(FEATURE_SETS[1], FEATURE_SETS[1], true);
    const pcap = new PcapPort(sw, join(mkdtempSync(join(tmpdir(), "vnw-fwd-")), "c.pcap"));
    a.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(64), srcMac: mac(1), dstMac: mac(2) }).frame);
    a.port.pumpTx();
    expect(a.port.fastForwarded).toBe(0);
    expect(b.drv.receiveAll()).toHaveLength(1);
    pcap.close();
  });
});
