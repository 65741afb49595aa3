/**
 * Packed virtqueues (virtio 1.2, 2.8) where they differ from split rings: positions and wrap
 * counters over many laps of rings of any size, chains that straddle the end of the ring, used
 * descriptors written in place, event suppression in both directions, resuming at a position
 * (vhost-user's packed base), and every malformed ring ending in NEEDS_RESET with its cause
 * counted. (Everything else runs on packed rings too: VNW_RING=packed.)
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import {
  DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, EVENT_DESC, EVENT_DISABLE, EVENT_ENABLE, PDESC_F_AVAIL, PDESC_F_USED, rng,
} from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture, type Fixture } from "../helpers/setup.js";

const PACKED = featureMask(Feature.VERSION_1, Feature.MAC, Feature.INDIRECT_DESC, Feature.RING_PACKED);
const HOLE = { start: 0xa0000, end: 0xc0000 };

function up(features = PACKED, size = 64, opts: Parameters<typeof fixture>[0] = {}): Fixture {
  const f = fixture({ features: PACKED | featureMask(Feature.EVENT_IDX, Feature.MRG_RXBUF), backend: BackendKind.VNET_HDR, layout: "packed", ...opts });
  f.drv.bringUp(features, size);
  expect(f.drv.packedRings).toBe(true);
  return f;
}

const frame = (n: number) => buildFrame({ ip: 4, l4: "udp", payload: payload(40 + (n % 300)) }).frame;

/** Writes a packed descriptor at `pos` as available in lap `wrap` (flags include NEXT/WRITE/INDIRECT as given). */
function putDesc(f: Fixture, qi: QueueIndex, pos: number, addr: bigint, len: number, id: number, flags: number, wrap = 1): void {
  const q = f.drv.queues[qi];
  const w = f.drv.wasm(q.desc + BigInt(16 * pos));
  const dv = new DataView(f.mem.memory.buffer);
  dv.setBigUint64(w, addr, true);
  dv.setUint32(w + 8, len, true);
  dv.setUint16(w + 12, id, true);
  dv.setUint16(w + 14, flags | (wrap ? PDESC_F_AVAIL : PDESC_F_USED), true);
}

describe("packed rings: positions and wrap counters", () => {
  it.each([1, 3, 7, 100, 256])("TX and RX over many laps of a ring of %i, chains straddling its end", (size) => {
    const f = up(PACKED, size);
    const r = rng(size);
    let sent = 0;
    let received = 0;
    for (let round = 0; round < 5 * size + 20; round++) {
      // Chains of 1..3 descriptors (at most what the ring holds), sometimes indirect.
      const parts = Math.min(size, 1 + Math.floor(r() * 3));
      const splits = Array.from({ length: parts - 1 }, (_, i) => 13 + 7 * i);
      const fr = frame(round);
      f.drv.send(fr, { splits, indirect: r() < 0.2 });
      const out = f.dev.collectTx();
      expect(out.map((o) => Buffer.from(o.frame).equals(Buffer.from(fr)))).toEqual([true]);
      expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
      sent++;
      f.drv.postRx(1, { parts: parts === 1 ? [1526] : [12, 1514], indirect: r() < 0.2 });
      expect(f.dev.receive(fr, encodeVirtioHdr({}, 12)).kind).toBe("delivered");
      f.dev.flushRx();
      const got = f.drv.receiveMerged();
      expect(got.map((g) => Buffer.from(g.frame).equals(Buffer.from(fr)))).toEqual([true]);
      received++;
    }
    expect([f.dev.metrics(QueueIndex.TX).packets, f.dev.metrics(QueueIndex.RX).packets]).toEqual([sent, received]);
    expect(f.dev.status & Status.NEEDS_RESET).toBe(0);
  });

  it("used descriptors go in completion order, each skipping the descriptors its buffer took", () => {
    const f = up(PACKED, 8);
    f.drv.send(frame(1), { splits: [20] });
    f.drv.send(frame(2), { splits: [20, 40] });
    f.drv.send(frame(3));
    expect(f.dev.collectTx()).toHaveLength(3);
    const used = f.drv.takeUsed(QueueIndex.TX);
    expect(used.map((u) => u.bufs.length)).toEqual([2, 3, 1]);
    expect(f.drv.queues[QueueIndex.TX].packed).toMatchObject({ usedPos: 6, usedWrap: 1, availPos: 6 });
  });

  it("resumes where vhost-user's packed base says: positions and wrap counters, avail and used", () => {
    const f = up(PACKED, 8);
    for (let i = 0; i < 7; i++) {
      f.drv.send(frame(i), { splits: [20] });
      f.dev.collectTx();
      f.drv.takeUsed(QueueIndex.TX);
    }
    // 14 descriptors through a ring of 8: position 6 in the second lap (wrap counters at 0).
    const base = f.dev.nextAvail(QueueIndex.TX);
    expect({ avail: base & 0x7fff, availWrap: (base >> 15) & 1, used: (base >>> 16) & 0x7fff, usedWrap: base >>> 31 }).toEqual({ avail: 6, availWrap: 0, used: 6, usedWrap: 0 });
    const q = f.drv.queues[QueueIndex.TX];
    const rx = f.drv.queues[QueueIndex.RX];
    f.dev.adopt({
      features: f.dev.negotiatedFeatures,
      queues: [{ size: 8, desc: rx.desc, avail: rx.avail, used: rx.used }, { size: 8, desc: q.desc, avail: q.avail, used: q.used, nextAvail: base }],
    });
    f.drv.send(frame(99), { splits: [20, 30] });
    expect(f.dev.collectTx()).toHaveLength(1);
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
    expect(f.dev.status & Status.NEEDS_RESET).toBe(0);
    // DPDK's virtio-user sends the avail half only: the used position is the same then.
    const now = f.dev.nextAvail(QueueIndex.TX);
    f.dev.adopt({
      features: f.dev.negotiatedFeatures,
      queues: [{ size: 8, desc: rx.desc, avail: rx.avail, used: rx.used }, { size: 8, desc: q.desc, avail: q.avail, used: q.used, nextAvail: now & 0xffff }],
    });
    expect(f.dev.nextAvail(QueueIndex.TX) >>> 0).toBe(now >>> 0);
    f.drv.send(frame(100));
    expect(f.dev.collectTx()).toHaveLength(1);
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
  });
});

describe("packed rings: event suppression", () => {
  it("the driver's area: DISABLE stops interrupts, ENABLE asks for each, DESC for the one at its position", () => {
    const f = up(PACKED | featureMask(Feature.EVENT_IDX), 16);
    f.drv.rearmUsedEvent = false;
    const irqs = () => f.irqs[QueueIndex.TX];
    let used = 0;
    const sendOne = () => { f.drv.send(frame(1)); f.dev.collectTx(); used += f.drv.takeUsed(QueueIndex.TX).length; };
    f.drv.disableInterrupts(QueueIndex.TX);
    sendOne();
    expect(irqs()).toBe(0);
    f.drv.setAvailFlags(QueueIndex.TX, EVENT_ENABLE);
    sendOne();
    sendOne();
    expect(irqs()).toBe(2);
    // DESC: interrupt when the used descriptor at position 5 (this lap) is written, not before.
    f.drv.setUsedEvent(QueueIndex.TX, 5 | (1 << 15));
    sendOne(); // used at position 3
    sendOne(); // 4
    expect(irqs()).toBe(2);
    sendOne(); // 5: crossed
    expect(irqs()).toBe(3);
    sendOne(); // 6
    expect(irqs()).toBe(3);
    // An event in the next lap (wrap 0) at position 2: not until the ring has wrapped past it.
    f.drv.setUsedEvent(QueueIndex.TX, 2);
    for (let i = 0; i < 9; i++) sendOne(); // positions 7..15
    expect(irqs()).toBe(3);
    sendOne(); // 0 (next lap)
    sendOne(); // 1
    expect(irqs()).toBe(3);
    sendOne(); // 2
    expect(irqs()).toBe(4);
    expect(used).toBe(19);
  });

  it("the device's area: kicks off while it works, and asked for again at its next position when the ring runs dry", () => {
    const f = up(PACKED | featureMask(Feature.EVENT_IDX), 16);
    f.drv.send(frame(1), { splits: [30] });
    f.dev.collectTx();
    // Dry after one chain of 2: DESC at position 2, lap 1.
    expect(f.drv.usedFlags(QueueIndex.TX)).toBe(EVENT_DESC);
    expect(f.drv.availEvent(QueueIndex.TX)).toBe(2 | (1 << 15));
    const old = f.drv.queues[QueueIndex.TX].availIdx;
    f.drv.send(frame(2));
    expect(f.drv.kickNeeded(QueueIndex.TX, old)).toBe(true);
    // Host polling: notifications off, and they stay off when the ring runs dry.
    f.dev.setPolling(QueueIndex.TX, true);
    expect(f.drv.usedFlags(QueueIndex.TX)).toBe(EVENT_DISABLE);
    f.dev.collectTx();
    expect(f.drv.usedFlags(QueueIndex.TX)).toBe(EVENT_DISABLE);
    const old2 = f.drv.queues[QueueIndex.TX].availIdx;
    f.drv.send(frame(3));
    expect(f.drv.kickNeeded(QueueIndex.TX, old2)).toBe(false);
    // Polling off: the device asks again and looks once more (the frame just queued is there).
    expect(f.dev.setPolling(QueueIndex.TX, false)).toBe(true);
    expect(f.drv.usedFlags(QueueIndex.TX)).toBe(EVENT_DESC);
    // Without EVENT_IDX: plain ENABLE.
    const g = up(PACKED, 16);
    g.drv.send(frame(1));
    g.dev.collectTx();
    expect(g.drv.usedFlags(QueueIndex.TX)).toBe(EVENT_ENABLE);
  });
});

describe("packed rings: malformed rings put the device in NEEDS_RESET", () => {
  const broken = (f: Fixture, metric: keyof ReturnType<Fixture["dev"]["metrics"]>, qi = QueueIndex.TX) => {
    if (qi === QueueIndex.TX) f.dev.collectTx();
    else if (qi === QueueIndex.RX) f.dev.receive(frame(0), encodeVirtioHdr({}, 12));
    else f.dev.processCtrl();
    expect(f.dev.status & Status.NEEDS_RESET).toBe(Status.NEEDS_RESET);
    expect(f.dev.metrics(qi)[metric]).toBe(1);
  };
  const buf = (f: Fixture, n = 64) => f.drv.alloc(n, 16);

  it("a chain longer than the ring (every descriptor says NEXT)", () => {
    const f = up(PACKED, 4);
    for (let i = 0; i < 4; i++) putDesc(f, QueueIndex.TX, i, buf(f), 64, 0, DESC_F_NEXT);
    broken(f, "resetChainLoop");
  });

  it("a buffer id beyond the queue", () => {
    const f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, buf(f), 64, 4, 0);
    broken(f, "resetHeadIndex");
  });

  it("a buffer outside guest RAM, or in a hole", () => {
    const f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, 0xffff_ffff_ffff_fff0n, 64, 0, 0);
    broken(f, "resetDescAddr");
    const g = up(PACKED, 4, { holes: [HOLE] });
    putDesc(g, QueueIndex.TX, 0, BigInt(HOLE.start + 64), 64, 0, 0);
    broken(g, "resetDescAddr");
  });

  it("a zero-length chain", () => {
    const f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, buf(f), 0, 0, 0);
    broken(f, "resetZeroLength");
  });

  it("a device-writable buffer in a TX chain, a device-readable one in an RX chain", () => {
    const f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, buf(f), 64, 0, DESC_F_WRITE);
    broken(f, "resetDirection");
    const g = up(PACKED, 4);
    putDesc(g, QueueIndex.RX, 0, buf(g, 1600), 1600, 0, 0);
    broken(g, "resetDirection", QueueIndex.RX);
  });

  it("indirect: with NEXT, inside a table, not negotiated, a length not a multiple of 16", () => {
    const table = (f: Fixture, flags: number) => {
      const t = f.drv.alloc(32, 16);
      const dv = new DataView(f.mem.memory.buffer);
      const w = f.drv.wasm(t);
      dv.setBigUint64(w, buf(f), true);
      dv.setUint32(w + 8, 64, true);
      dv.setUint16(w + 14, flags, true);
      return t;
    };
    let f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, table(f, 0), 16, 0, DESC_F_INDIRECT | DESC_F_NEXT);
    broken(f, "resetNestedIndirect");
    f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, table(f, DESC_F_INDIRECT), 16, 0, DESC_F_INDIRECT);
    broken(f, "resetNestedIndirect");
    f = up(PACKED & ~featureMask(Feature.INDIRECT_DESC), 4);
    putDesc(f, QueueIndex.TX, 0, table(f, 0), 16, 0, DESC_F_INDIRECT);
    broken(f, "resetIndirectUnnegotiated");
    f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, table(f, 0), 24, 0, DESC_F_INDIRECT);
    broken(f, "resetIndirectLen");
  });

  it("a control command whose answer comes before its data", () => {
    const f = up(PACKED | featureMask(Feature.CTRL_VQ, Feature.CTRL_RX), 4, { features: PACKED | featureMask(Feature.CTRL_VQ, Feature.CTRL_RX) });
    putDesc(f, QueueIndex.CTRL, 0, buf(f), 1, 0, DESC_F_WRITE | DESC_F_NEXT);
    putDesc(f, QueueIndex.CTRL, 1, buf(f), 3, 0, 0);
    broken(f, "resetDirection", QueueIndex.CTRL);
  });

  it("reset (status 0) recovers the device, and the ring starts over at position 0, lap 1", () => {
    const f = up(PACKED, 4);
    putDesc(f, QueueIndex.TX, 0, buf(f), 0, 0, 0);
    broken(f, "resetZeroLength");
    f.drv.bringUp(PACKED, 4);
    f.drv.send(frame(1));
    expect(f.dev.collectTx()).toHaveLength(1);
    expect(f.dev.status & Status.NEEDS_RESET).toBe(0);
  });
});

describe("packed rings: the memory contract under garbage", () => {
  it("scribbled descriptors and event areas never make the device write outside guest RAM and its state block, never trap", () => {
    let resets = 0;
    let delivered = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const paint = (m: Uint8Array) => { for (let i = 0; i < m.length; i++) m[i] = (i * 131 + 17) & 0xff; };
      const f = fixture({ holes: [HOLE], guestSize: 2 << 20, seed, layout: "packed", backend: BackendKind.VNET_HDR, features: PACKED | featureMask(Feature.EVENT_IDX), fill: paint });
      const u8 = new Uint8Array(f.mem.memory.buffer);
      const r = rng(seed * 7919);
      f.drv.bringUp(PACKED | featureMask(Feature.EVENT_IDX), 16);
      const allowed = [[f.dev.state, f.dev.state + f.dev.stateSize], ...f.mem.regions.map((g) => [g.wasm, g.wasm + g.size])];
      const dv = new DataView(f.mem.memory.buffer);
      for (let step = 0; step < 30; step++) {
        // Some good buffers among the garbage, so the device gets to write too.
        try { f.drv.postRx(2); } catch { /* ring full */ }
        for (const qi of [QueueIndex.RX, QueueIndex.TX]) {
          const q = f.drv.queues[qi];
          for (let i = 0; i < 4; i++) {
            const addrs = [0n, 0x9ff00n, 0xa0000n, 0xbfff0n, 0xc0000n, BigInt(2 << 20) - 64n, BigInt(Math.floor(r() * (2 << 20))), 0xffff_ffff_ffff_fff0n];
            const w = f.drv.wasm(q.desc + BigInt(16 * Math.floor(r() * 16)));
            dv.setBigUint64(w, addrs[Math.floor(r() * addrs.length)], true);
            dv.setUint32(w + 8, Math.floor(r() * 3000), true);
            dv.setUint16(w + 12, Math.floor(r() * 20), true);
            dv.setUint16(w + 14, (Math.floor(r() * 8)) | (r() < 0.6 ? PDESC_F_AVAIL : 0) | (r() < 0.4 ? PDESC_F_USED : 0), true);
          }
          dv.setUint16(f.drv.wasm(q.avail) + 2 * Math.floor(r() * 2), Math.floor(r() * 65536), true);
        }
        const before = u8.slice();
        f.dev.processTx(() => (r() < 0.9 ? 1 : -1));
        for (let i = 0; i < 3; i++) {
          if (f.dev.receive(payload(14 + Math.floor(r() * 1600), seed), encodeVirtioHdr({}, 12)).kind === "delivered") delivered++;
        }
        f.dev.flushRx();
        const a32 = new Uint32Array(before.buffer);
        const b32 = new Uint32Array(u8.buffer, 0, a32.length);
        for (let w = 0; w < a32.length; w++) {
          if (a32[w] === b32[w]) continue;
          for (let i = 4 * w; i < 4 * w + 4; i++) {
            if (u8[i] !== before[i] && !allowed.some(([a, b]) => i >= a && i < b)) throw new Error(`seed ${seed}: byte ${i} written outside guest RAM and the state block`);
          }
        }
        if (f.dev.status & Status.NEEDS_RESET) {
          resets++;
          f.drv.bringUp(PACKED | featureMask(Feature.EVENT_IDX), 16);
        }
      }
    }
    expect(resets).toBeGreaterThan(50);
    expect(delivered).toBeGreaterThan(10);
  });
});
