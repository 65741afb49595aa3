/**
 * The control queue (virtio 1.2, 5.1.6.5) through the driver model: each command's effect on
 * what reaches the guest (the receive filter: modes, MAC table, VLANs; the MAC; the guest
 * offloads; announce; queue pairs), every malformed command answered ERR and never a fault, a
 * malformed ring a fault (NEEDS_RESET), and a property test against a reference model of the
 * commands: random command sequences, drawn mostly from valid shapes, give the model's acks and
 * the model's filtering of probe frames.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Ctrl, Feature, NetHdr, QueueIndex, RxMode, Status } from "../../assembly/abi.js";
import { CTRL_OFFER, featureMask, FULL_OFFER, GUEST_OFFLOADS } from "../../host/device/features.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { DESC_F_NEXT, DESC_F_WRITE } from "../../host/driver/guest-driver.js";
import { buildFrame, DEVICE_MAC, payload } from "../../host/driver/frames.js";
import { macText, parseMac } from "../../host/net/gateway/wire.js";
import { fixture, type Fixture } from "../helpers/setup.js";

const ALL = FULL_OFFER | CTRL_OFFER | featureMask(Feature.MQ);
const mac = parseMac;
const macStr = macText;
const le16 = (v: number) => Uint8Array.of(v & 0xff, v >> 8);
const le32 = (v: number) => Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24);
const le64 = (v: bigint) => Uint8Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
const table = (uni: Uint8Array[], multi: Uint8Array[]) => Uint8Array.from([...le32(uni.length), ...uni.flatMap((m) => [...m]), ...le32(multi.length), ...multi.flatMap((m) => [...m])]);

type CtrlOpts = { splits?: number[]; indirect?: boolean };

function up(features = ALL, maxQueuePairs = 2): Fixture & { cmd: (cls: number, cmd: number, data?: Uint8Array, opts?: CtrlOpts) => number } {
  const f = fixture({ features: ALL, maxQueuePairs, backend: BackendKind.VNET_HDR });
  f.drv.bringUp(features);
  f.drv.postRx(64);
  const cmd = (cls: number, c: number, data: Uint8Array = new Uint8Array(0), opts: CtrlOpts = {}) => f.drv.ctrl(cls, c, data, () => f.dev.processCtrl(), opts);
  return Object.assign(f, { cmd });
}

/** A frame to `dst` (optionally VLAN-tagged with `vid`): whether the guest gets it. */
function delivered(f: Fixture, dst: Uint8Array, vid?: number): boolean {
  const frame = buildFrame({ ip: 4, l4: "udp", payload: payload(20), dstMac: dst, vlans: vid === undefined ? [] : [0x8100], vlanIds: vid === undefined ? undefined : [vid] }).frame;
  const r = f.dev.receive(frame, encodeVirtioHdr({}, 12));
  f.dev.flushRx();
  f.drv.receiveAll();
  f.drv.postRx(1);
  if (r.kind === "no-buffer" || r.kind === "not-ready") throw new Error(`receive: ${r.kind}`);
  return r.kind === "delivered";
}

const OTHER = mac("02:aa:bb:cc:dd:01");
const BCAST = mac("ff:ff:ff:ff:ff:ff");
const MCAST = mac("01:00:5e:00:00:fb");

describe("control queue: each command", () => {
  it("receive modes and the MAC table decide what reaches the guest", () => {
    const f = up();
    // Promiscuous until the driver says otherwise (as QEMU).
    expect(f.dev.rxMode & RxMode.PROMISC).toBeTruthy();
    expect(delivered(f, OTHER)).toBe(true);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0))).toBe(Ctrl.OK);
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, table([], []))).toBe(Ctrl.OK);
    expect([delivered(f, DEVICE_MAC), delivered(f, OTHER), delivered(f, BCAST), delivered(f, MCAST)]).toEqual([true, false, true, false]);
    expect(f.dev.metrics(QueueIndex.RX).dropFiltered).toBe(2);
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, table([OTHER], [MCAST]))).toBe(Ctrl.OK);
    expect([delivered(f, OTHER), delivered(f, MCAST), delivered(f, mac("01:00:5e:00:00:01"))]).toEqual([true, true, false]);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_ALLMULTI, Uint8Array.of(1))).toBe(Ctrl.OK);
    expect(delivered(f, mac("01:00:5e:00:00:01"))).toBe(true);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_NOBCAST, Uint8Array.of(1))).toBe(Ctrl.OK);
    expect(delivered(f, BCAST)).toBe(false);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_NOUNI, Uint8Array.of(1))).toBe(Ctrl.OK);
    expect(delivered(f, DEVICE_MAC)).toBe(false);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_NOUNI, Uint8Array.of(0))).toBe(Ctrl.OK);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_ALLUNI, Uint8Array.of(1))).toBe(Ctrl.OK);
    expect(delivered(f, mac("02:12:34:56:78:9a"))).toBe(true);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(1))).toBe(Ctrl.OK);
    expect(f.dev.rxMode).toBe(RxMode.PROMISC | RxMode.ALLMULTI | RxMode.NOBCAST | RxMode.ALLUNI);
    expect(delivered(f, BCAST)).toBe(true); // promiscuous takes everything
  });

  it("more table entries than the table holds: that kind passes whole", () => {
    const f = up();
    f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0));
    const many = Array.from({ length: Ctrl.MAC_TABLE_MAX + 1 }, (_, i) => mac(`02:00:00:00:01:${(i & 0xff).toString(16)}`));
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, table(many, []))).toBe(Ctrl.OK);
    expect(f.dev.rxMode & RxMode.UNI_OVERFLOW).toBeTruthy();
    expect([delivered(f, OTHER), delivered(f, MCAST)]).toEqual([true, false]);
  });

  it("the VLAN filter: with CTRL_VLAN no tagged frame passes until its VLAN is added", () => {
    const f = up();
    f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0));
    expect([delivered(f, DEVICE_MAC, 100), delivered(f, DEVICE_MAC)]).toEqual([false, true]);
    expect(f.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_ADD, le16(100))).toBe(Ctrl.OK);
    expect([delivered(f, DEVICE_MAC, 100), delivered(f, DEVICE_MAC, 101)]).toEqual([true, false]);
    expect(f.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_DEL, le16(100))).toBe(Ctrl.OK);
    expect(delivered(f, DEVICE_MAC, 100)).toBe(false);
    expect(f.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_ADD, le16(4096))).toBe(Ctrl.ERR);
    // Without CTRL_VLAN every VLAN passes and the commands are refused.
    const g = up(ALL & ~featureMask(Feature.CTRL_VLAN));
    g.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0));
    expect(delivered(g, DEVICE_MAC, 100)).toBe(true);
    expect(g.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_ADD, le16(100))).toBe(Ctrl.ERR);
  });

  it("MAC_ADDR_SET moves the device's address (and the filter with it)", () => {
    const f = up();
    f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0));
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_ADDR_SET, OTHER)).toBe(Ctrl.OK);
    expect(f.dev.mac).toBe(macStr(OTHER));
    expect(f.dev.readConfig(0, 4)).toBe(new DataView(OTHER.buffer).getUint32(0, true));
    expect([delivered(f, OTHER), delivered(f, DEVICE_MAC)]).toEqual([true, false]);
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_ADDR_SET, MCAST)).toBe(Ctrl.ERR);
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_ADDR_SET, OTHER.subarray(0, 5))).toBe(Ctrl.ERR);
  });

  it("announce: the host asks, the guest sees VIRTIO_NET_S_ANNOUNCE with a config change, and acks", () => {
    const f = up();
    const before = f.configChanges;
    expect(f.dev.announce()).toBe(true);
    expect(f.configChanges).toBe(before + 1);
    expect(f.dev.readConfig(6, 2) & 2).toBe(2);
    expect(f.cmd(Ctrl.CLASS_ANNOUNCE, Ctrl.ANNOUNCE_ACK)).toBe(Ctrl.OK);
    expect(f.dev.readConfig(6, 2) & 2).toBe(0);
    expect(f.dev.readConfig(6, 2) & 1).toBe(1); // link up stays
    // A guest without GUEST_ANNOUNCE is not asked.
    expect(up(ALL & ~featureMask(Feature.GUEST_ANNOUNCE)).dev.announce()).toBe(false);
  });

  it("guest offloads: switched off, partial checksums reach the guest finished; back on, partial again", () => {
    const changed: bigint[] = [];
    const f = fixture({ features: ALL, backend: BackendKind.VNET_HDR, hooks: { offloadsChanged: (x) => { changed.push(x); } } });
    f.drv.bringUp(ALL);
    f.drv.postRx(8);
    const cmd = (v: bigint) => f.drv.ctrl(Ctrl.CLASS_GUEST_OFFLOADS, Ctrl.GUEST_OFFLOADS_SET, le64(v), () => f.dev.processCtrl());
    const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(100), csum: "partial" });
    const rx = () => {
      f.dev.receive(b.frame, encodeVirtioHdr({ flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: 16 }, 12));
      f.dev.flushRx();
      const [got] = f.drv.receiveAll();
      f.drv.postRx(1);
      return got.hdr.flags;
    };
    expect(rx()).toBe(NetHdr.F_NEEDS_CSUM);
    expect(cmd(0n)).toBe(Ctrl.OK);
    expect(changed.at(-1)! & GUEST_OFFLOADS).toBe(0n);
    expect(rx() & NetHdr.F_NEEDS_CSUM).toBe(0);
    expect(f.dev.metrics(QueueIndex.RX).csumSoftware).toBe(1);
    expect(cmd(featureMask(Feature.GUEST_CSUM))).toBe(Ctrl.OK);
    expect(rx()).toBe(NetHdr.F_NEEDS_CSUM);
    // Not negotiated, or TSO without checksum offload: refused.
    expect(cmd(featureMask(Feature.GUEST_UFO))).toBe(Ctrl.ERR);
    expect(cmd(featureMask(Feature.GUEST_TSO4))).toBe(Ctrl.ERR);
    expect(cmd(featureMask(Feature.HOST_TSO4, Feature.GUEST_CSUM))).toBe(Ctrl.ERR);
  });

  it("VQ_PAIRS_SET takes 1..max_virtqueue_pairs", () => {
    const pairs: number[] = [];
    const f = fixture({ features: ALL, maxQueuePairs: 2, hooks: { queuePairsChanged: (n) => { pairs.push(n); } } });
    f.drv.bringUp(ALL);
    const cmd = (n: number) => f.drv.ctrl(Ctrl.CLASS_MQ, Ctrl.MQ_VQ_PAIRS_SET, le16(n), () => f.dev.processCtrl());
    expect(f.dev.readConfig(8, 2)).toBe(2);
    expect([cmd(2), cmd(1), cmd(0), cmd(3)]).toEqual([Ctrl.OK, Ctrl.OK, Ctrl.ERR, Ctrl.ERR]);
    expect(pairs).toEqual([2, 1]);
    expect(f.dev.queuePairs).toBe(1);
  });

  it("a command split across descriptors, or behind an indirect table, reads the same", () => {
    const f = up();
    f.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0));
    expect(f.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, table([OTHER], [MCAST]), { splits: [1, 2, 3, 7, 8, 11, 15] })).toBe(Ctrl.OK);
    expect([delivered(f, OTHER), delivered(f, MCAST)]).toEqual([true, true]);
    expect(f.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_ADD, le16(7), { splits: [3], indirect: true })).toBe(Ctrl.OK);
    expect(delivered(f, DEVICE_MAC, 7)).toBe(true);
  });
});

describe("control queue: what is refused", () => {
  it("unknown, unnegotiated and malformed commands get ERR; the device keeps going", () => {
    const f = up(FULL_OFFER | featureMask(Feature.CTRL_VQ));
    const cases: [number, number, Uint8Array][] = [
      [9, 0, new Uint8Array(0)], // no such class
      [Ctrl.CLASS_RX, 9, Uint8Array.of(1)], // no such command
      [Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0)], // CTRL_RX not negotiated
      [Ctrl.CLASS_MQ, Ctrl.MQ_VQ_PAIRS_SET, le16(1)], // MQ not negotiated
      [Ctrl.CLASS_GUEST_OFFLOADS, Ctrl.GUEST_OFFLOADS_SET, le64(0n)],
    ];
    for (const [c, k, d] of cases) expect(f.cmd(c, k, d), `${c}:${k}`).toBe(Ctrl.ERR);
    const g = up();
    const bad: [number, number, Uint8Array][] = [
      [Ctrl.CLASS_RX, Ctrl.RX_PROMISC, new Uint8Array(0)], // too short
      [Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(1, 0)], // too long
      [Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(2)], // not a boolean
      [Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, le32(0)], // second table missing
      [Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, Uint8Array.from([...table([OTHER], []), 0])], // trailing byte
      [Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, Uint8Array.from([...le32(0xffffffff), ...le32(0)])], // absurd count
      [Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, table([MCAST], [])], // multicast in the unicast table
      [Ctrl.CLASS_ANNOUNCE, Ctrl.ANNOUNCE_ACK, Uint8Array.of(0)], // data where none belongs
      [Ctrl.CLASS_GUEST_OFFLOADS, Ctrl.GUEST_OFFLOADS_SET, le32(0)], // short
    ];
    for (const [c, k, d] of bad) expect(g.cmd(c, k, d), `${c}:${k}:${d.length}`).toBe(Ctrl.ERR);
    expect(g.dev.metrics(QueueIndex.CTRL).ctrlErr).toBe(bad.length);
    expect(g.dev.status & Status.NEEDS_RESET).toBe(0);
    expect(g.dev.rxMode).toBe(RxMode.PROMISC);
  });

  it("a command with no room for the answer is completed with nothing written, not a fault", () => {
    const f = up();
    const gpa = f.drv.alloc(3, 1);
    f.drv.write(gpa, Uint8Array.of(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, 0));
    const head = f.drv.addChain(QueueIndex.CTRL, [{ gpa, len: 3 }], false);
    f.dev.processCtrl();
    expect(f.drv.takeUsed(QueueIndex.CTRL)).toEqual([expect.objectContaining({ id: head, len: 0 })]);
    expect(f.dev.rxMode).toBe(RxMode.PROMISC);
    expect(f.dev.status & Status.NEEDS_RESET).toBe(0);
    expect(f.cmd(Ctrl.CLASS_RX, Ctrl.RX_ALLMULTI, Uint8Array.of(1))).toBe(Ctrl.OK);
  });

  it("a writable buffer before a readable one is a malformed ring: NEEDS_RESET, counted on the control queue (split ring; packed: test/virtq/packed.test.ts)", () => {
    const f = fixture({ features: ALL, backend: BackendKind.VNET_HDR, layout: "split" });
    f.drv.bringUp(ALL);
    const q = f.drv.queues[QueueIndex.CTRL];
    const [a, b] = [f.drv.alloc(1, 1), f.drv.alloc(3, 1)];
    f.drv.writeDesc(q.desc, 0, a, 1, DESC_F_WRITE | DESC_F_NEXT, 1);
    f.drv.writeDesc(q.desc, 1, b, 3, 0, 0);
    q.free = q.free.filter((d) => d > 1);
    f.drv.publishAvail(QueueIndex.CTRL, 0);
    expect(f.dev.processCtrl()).toBeLessThan(0);
    expect(f.dev.status & Status.NEEDS_RESET).toBeTruthy();
    expect(f.dev.metrics(QueueIndex.CTRL).resetDirection).toBe(1);
  });
});

// ─────────────────────────────── a reference model ───────────────────────────────

interface Model { mode: number; uni: string[]; multi: string[]; vlans: Set<number>; mac: string; pairs: number; offloads: bigint }

/** What the device must answer and become, by the spec's text (and QEMU's choices where it leaves room). */
function modelCommand(m: Model, feat: bigint, cls: number, cmd: number, d: Uint8Array, maxPairs: number): number {
  const has = (x: Feature) => (feat & (1n << BigInt(x))) !== 0n;
  const u16 = (o: number) => d[o] | (d[o + 1] << 8);
  const u32 = (o: number) => (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) >>> 0;
  const macAt = (o: number) => macStr(d.subarray(o, o + 6));
  switch (cls) {
    case Ctrl.CLASS_RX: {
      if (!has(Feature.CTRL_RX) || cmd > 5 || d.length !== 1 || d[0] > 1) return Ctrl.ERR;
      if (cmd > 1 && !has(Feature.CTRL_RX_EXTRA)) return Ctrl.ERR;
      m.mode = d[0] ? m.mode | (1 << cmd) : m.mode & ~(1 << cmd);
      return Ctrl.OK;
    }
    case Ctrl.CLASS_MAC: {
      if (cmd === Ctrl.MAC_ADDR_SET) {
        if (!has(Feature.CTRL_MAC_ADDR) || d.length !== 6 || d[0] & 1) return Ctrl.ERR;
        m.mac = macAt(0);
        return Ctrl.OK;
      }
      if (cmd !== Ctrl.MAC_TABLE_SET || !has(Feature.CTRL_RX) || d.length < 8) return Ctrl.ERR;
      const nu = u32(0);
      if (4 + 6 * nu + 4 > d.length) return Ctrl.ERR;
      const nm = u32(4 + 6 * nu);
      if (8 + 6 * (nu + nm) !== d.length) return Ctrl.ERR;
      const uni = Array.from({ length: nu }, (_, i) => 4 + 6 * i);
      const multi = Array.from({ length: nm }, (_, i) => 8 + 6 * nu + 6 * i);
      if (uni.some((o) => d[o] & 1) || multi.some((o) => !(d[o] & 1))) return Ctrl.ERR;
      m.mode &= ~(RxMode.UNI_OVERFLOW | RxMode.MULTI_OVERFLOW);
      m.uni = [];
      m.multi = [];
      if (nu > Ctrl.MAC_TABLE_MAX) m.mode |= RxMode.UNI_OVERFLOW;
      else m.uni = uni.map(macAt);
      if (nm > Ctrl.MAC_TABLE_MAX - m.uni.length) m.mode |= RxMode.MULTI_OVERFLOW;
      else m.multi = multi.map(macAt);
      return Ctrl.OK;
    }
    case Ctrl.CLASS_VLAN: {
      if (!has(Feature.CTRL_VLAN) || cmd > 1 || d.length !== 2 || u16(0) >= 4096) return Ctrl.ERR;
      if (cmd === Ctrl.VLAN_ADD) m.vlans.add(u16(0));
      else m.vlans.delete(u16(0));
      return Ctrl.OK;
    }
    case Ctrl.CLASS_ANNOUNCE:
      return has(Feature.GUEST_ANNOUNCE) && cmd === 0 && d.length === 0 ? Ctrl.OK : Ctrl.ERR;
    case Ctrl.CLASS_MQ: {
      if (!has(Feature.MQ) || cmd !== 0 || d.length !== 2 || u16(0) < 1 || u16(0) > maxPairs) return Ctrl.ERR;
      m.pairs = u16(0);
      return Ctrl.OK;
    }
    case Ctrl.CLASS_GUEST_OFFLOADS: {
      if (!has(Feature.CTRL_GUEST_OFFLOADS) || cmd !== 0 || d.length !== 8) return Ctrl.ERR;
      const v = d.reduce((a, b, i) => a | (BigInt(b) << BigInt(8 * i)), 0n);
      const bit = (x: Feature) => (v & (1n << BigInt(x))) !== 0n;
      if (v & ~(feat & GUEST_OFFLOADS)) return Ctrl.ERR;
      if ((v & ~featureMask(Feature.GUEST_CSUM)) && !bit(Feature.GUEST_CSUM)) return Ctrl.ERR;
      if (bit(Feature.GUEST_ECN) && !bit(Feature.GUEST_TSO4) && !bit(Feature.GUEST_TSO6)) return Ctrl.ERR;
      m.offloads = v;
      return Ctrl.OK;
    }
  }
  return Ctrl.ERR;
}

/** The model's filter (QEMU's receive_filter order). */
function modelAccepts(m: Model, feat: bigint, dst: string, vid?: number): boolean {
  if (m.mode & RxMode.PROMISC) return true;
  if (vid !== undefined && (feat & featureMask(Feature.CTRL_VLAN)) && !m.vlans.has(vid)) return false;
  if (dst === "ff:ff:ff:ff:ff:ff") return !(m.mode & RxMode.NOBCAST);
  if (parseInt(dst.slice(0, 2), 16) & 1) {
    if (m.mode & RxMode.NOMULTI) return false;
    return !!(m.mode & (RxMode.ALLMULTI | RxMode.MULTI_OVERFLOW)) || m.multi.includes(dst);
  }
  if (m.mode & RxMode.NOUNI) return false;
  return !!(m.mode & (RxMode.ALLUNI | RxMode.UNI_OVERFLOW)) || dst === m.mac || m.uni.includes(dst);
}

describe("control queue: against a reference model", () => {
  const macs = fc.constantFrom("02:aa:bb:cc:dd:01", "02:aa:bb:cc:dd:02", "52:54:00:12:34:56", "01:00:5e:00:00:fb", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff").map(mac);
  const anyMac = fc.oneof(macs, fc.uint8Array({ minLength: 6, maxLength: 6 }));
  // Mostly the VLANs the probes use, so adds and deletes meet them.
  const vid = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 100, 4095) }, { weight: 1, arbitrary: fc.constantFrom(1, 4096, 65535) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 65535 }) });
  const command = fc.oneof(
    fc.tuple(fc.constant(Ctrl.CLASS_RX), fc.integer({ min: 0, max: 6 }), fc.constantFrom(Uint8Array.of(0), Uint8Array.of(1), Uint8Array.of(2), new Uint8Array(0), Uint8Array.of(1, 1))),
    fc.tuple(fc.constant(Ctrl.CLASS_MAC), fc.constant(Ctrl.MAC_TABLE_SET), fc.tuple(fc.array(anyMac, { maxLength: 4 }), fc.array(anyMac, { maxLength: 4 }), fc.integer({ min: -2, max: 2 }))
      .map(([u, mm, cut]) => { const t = table(u, mm); return cut >= 0 ? t : t.subarray(0, t.length + cut); })),
    fc.tuple(fc.constant(Ctrl.CLASS_MAC), fc.constant(Ctrl.MAC_ADDR_SET), fc.oneof(anyMac, fc.uint8Array({ maxLength: 8 }))),
    fc.tuple(fc.constant(Ctrl.CLASS_VLAN), fc.integer({ min: 0, max: 2 }), fc.oneof(vid.map(le16), fc.uint8Array({ maxLength: 3 }))),
    fc.tuple(fc.constant(Ctrl.CLASS_ANNOUNCE), fc.integer({ min: 0, max: 1 }), fc.uint8Array({ maxLength: 1 })),
    fc.tuple(fc.constant(Ctrl.CLASS_MQ), fc.integer({ min: 0, max: 2 }), fc.oneof(fc.integer({ min: 0, max: 4 }).map(le16), fc.uint8Array({ maxLength: 3 }))),
    fc.tuple(fc.constant(Ctrl.CLASS_GUEST_OFFLOADS), fc.integer({ min: 0, max: 1 }), fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(le64), fc.subarray([...GUEST_OFFLOADS.toString(2)].map((_, i) => i)).map((b) => le64(b.reduce((a, i) => a | ((GUEST_OFFLOADS >> BigInt(i)) & 1n) << BigInt(i), 0n))), fc.uint8Array({ maxLength: 9 }))),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 12 })),
  );
  const features = fc.subarray([Feature.CTRL_RX, Feature.CTRL_RX_EXTRA, Feature.CTRL_VLAN, Feature.CTRL_MAC_ADDR, Feature.GUEST_ANNOUNCE, Feature.CTRL_GUEST_OFFLOADS, Feature.MQ])
    .map((fs) => FULL_OFFER | featureMask(Feature.CTRL_VQ, ...fs))
    .filter((f) => !(f & featureMask(Feature.CTRL_RX_EXTRA)) || !!(f & featureMask(Feature.CTRL_RX)));

  it("acks, mode, MAC, pairs and offloads follow the model, and so does every probe frame", () => {
    const step = fc.tuple(command, fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 3 }), fc.boolean());
    // Half the runs turn promiscuous mode off first, so the filter's other parts decide.
    const promiscOff: [[number, number, Uint8Array], number[], boolean] = [[Ctrl.CLASS_RX, Ctrl.RX_PROMISC, Uint8Array.of(0)], [], false];
    fc.assert(fc.property(features, fc.boolean(), fc.array(step, { maxLength: 25 }), (feat, off, rest) => {
      const cmds = off ? [promiscOff, ...rest] : rest;
      const f = up(feat, 3);
      const m: Model = { mode: RxMode.PROMISC, uni: [], multi: [], vlans: new Set(feat & featureMask(Feature.CTRL_VLAN) ? [] : Array.from({ length: 4096 }, (_, i) => i)), mac: macStr(DEVICE_MAC), pairs: 1, offloads: feat & GUEST_OFFLOADS };
      for (const [[cls, cmd, data], splits, indirect] of cmds) {
        const want = modelCommand(m, feat, cls, cmd, data, 3);
        expect(f.cmd(cls, cmd, data, { splits, indirect }), `class ${cls} command ${cmd} data ${Array.from(data)}`).toBe(want);
      }
      expect(f.dev.rxMode).toBe(m.mode);
      expect(f.dev.mac).toBe(m.mac);
      expect(f.dev.queuePairs).toBe(m.pairs);
      expect(f.dev.rxFeatures & GUEST_OFFLOADS).toBe(m.offloads);
      expect(f.dev.status & Status.NEEDS_RESET).toBe(0);
      const probes = ["02:aa:bb:cc:dd:01", "02:aa:bb:cc:dd:02", "52:54:00:12:34:56", "01:00:5e:00:00:fb", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", m.mac, ...m.uni, ...m.multi];
      for (const p of probes) {
        for (const v of [undefined, 0, 100, 4095]) expect(delivered(f, mac(p), v), `to ${p} vlan ${v}`).toBe(modelAccepts(m, feat, p, v));
      }
    }), { numRuns: 300 });
  });
});
