import { describe, expect, it } from "vitest";
import { Code, Feature, Metric, QueueIndex, Status } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture as anyLayoutFixture, type Fixture, type FixtureOptions } from "../helpers/setup.js";

/** These tests look into the split ring's own structures; packed rings have theirs in test/virtq/packed.test.ts. */
const fixture = (o: FixtureOptions = {}) => anyLayoutFixture({ layout: "split", ...o });

const BASE = featureMask(Feature.VERSION_1, Feature.MAC, Feature.INDIRECT_DESC);
const WITH_EVENT_IDX = BASE | featureMask(Feature.EVENT_IDX);

function up(features = BASE, size = 64, seed = 1): Fixture {
  const f = fixture({ seed });
  f.drv.bringUp(features, size);
  return f;
}

const frame = buildFrame({ ip: 4, l4: "udp", payload: payload(300) }).frame;

describe("TX", () => {
  it.each([
    ["header inline", {}],
    ["header in its own descriptor", { separateHeader: true }],
    ["header split mid-field", { splits: [3, 7, 11] }],
    ["one byte per descriptor for the header, frame split at odd points", { splits: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 57, 201] }],
    ["indirect table", { indirect: true, splits: [12, 100] }],
  ])("hands the frame over intact: %s", (_n, opts) => {
    const f = up();
    const head = f.drv.send(frame, opts);
    const out = f.dev.collectTx();
    expect(out.map((o) => Array.from(o.frame))).toEqual([Array.from(frame)]);
    const used = f.drv.takeUsed(QueueIndex.TX);
    expect(used.map((u) => [u.id, u.len])).toEqual([[head, 0]]);
    expect(f.dev.metrics(QueueIndex.TX).packets).toBe(1);
    expect(f.dev.metrics(QueueIndex.TX).bytes).toBe(frame.length);
  });

  it("processes every available buffer per notification and publishes them with one index store", () => {
    const f = up(BASE, 128);
    for (let i = 0; i < 40; i++) f.drv.send(frame, { splits: [i % 13] });
    let stores = 0;
    const usedIdx = f.drv.queues[QueueIndex.TX].used + 2n;
    const sent = f.dev.processTx(() => {
      // The used index stays put while the batch is in flight.
      if (f.drv.r16(usedIdx) !== 0) stores++;
      return frame.length;
    });
    expect(sent).toBe(40);
    expect(stores).toBe(0);
    expect(f.drv.r16(usedIdx)).toBe(40);
    expect(f.irqs[QueueIndex.TX]).toBe(1);
  });

  it("drops a chain shorter than the header and counts it, without stopping", () => {
    const f = up();
    const q = f.drv.queues[QueueIndex.TX];
    const gpa = f.drv.alloc(8);
    f.drv.addChain(QueueIndex.TX, [{ gpa, len: 8 }], false);
    f.drv.send(frame);
    expect(f.dev.collectTx().length).toBe(1);
    expect(f.dev.metrics(QueueIndex.TX).dropHdrShort).toBe(1);
    expect(f.drv.takeUsed(QueueIndex.TX).length).toBe(2);
    expect(q.free.length).toBe(q.size);
  });

  it("drops runt frames (shorter than an Ethernet header)", () => {
    const f = up();
    f.drv.send(new Uint8Array(13));
    expect(f.dev.collectTx().length).toBe(0);
    expect(f.dev.metrics(QueueIndex.TX).dropRunt).toBe(1);
  });

  it("does not touch the rings before DRIVER_OK", () => {
    const f = fixture();
    f.drv.negotiate(BASE);
    f.drv.setupQueues(16);
    f.drv.send(frame);
    expect(f.dev.processTx(() => 0)).toBe(0);
    expect(f.drv.r16(f.drv.queues[QueueIndex.TX].used + 2n)).toBe(0);
    f.drv.start();
    expect(f.dev.processTx(() => 0)).toBe(1);
  });
});

describe("RX", () => {
  it.each([
    ["one buffer", { parts: [1526] }],
    ["header and frame in separate buffers", { parts: [12, 1514] }],
    ["many small buffers", { parts: [5, 7, 100, 3, 1411] }],
    ["indirect table", { parts: [12, 700, 814], indirect: true }],
  ])("writes header and frame into the posted buffers: %s", (_n, opts) => {
    const f = up();
    f.drv.postRx(2, opts);
    expect(f.dev.receive(frame)).toEqual({ kind: "delivered", length: frame.length });
    f.dev.flushRx();
    const rx = f.drv.receiveAll();
    expect(rx.length).toBe(1);
    expect(Array.from(rx[0].frame)).toEqual(Array.from(frame));
    expect(rx[0].hdr).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 });
  });

  it("says no-buffer when the guest posted none, and drops frames that do not fit, keeping the buffer", () => {
    const f = up();
    expect(f.dev.receive(frame).kind).toBe("no-buffer");
    f.drv.postRx(1, { parts: [200] });
    expect(f.dev.receive(frame)).toEqual({ kind: "dropped", reason: Metric.DROP_BUFFER_TOO_SMALL });
    const small = buildFrame({ ip: 4, l4: "udp", payload: payload(20) }).frame;
    expect(f.dev.receive(small).kind).toBe("delivered");
    f.dev.flushRx();
    expect(f.drv.receiveAll().map((r) => r.frame.length)).toEqual([small.length]);
  });

  it("completes buffers too small for any frame with length 0 instead of stalling", () => {
    const f = up();
    f.drv.postRx(1, { parts: [16] });
    f.drv.postRx(1);
    expect(f.dev.receive(frame).kind).toBe("delivered");
    f.dev.flushRx();
    const used = f.drv.takeUsed(QueueIndex.RX);
    expect(used.map((u) => u.len)).toEqual([0, 12 + frame.length]);
  });

  it("writes a 10-byte header for a legacy driver", () => {
    const f = up(featureMask(Feature.MAC));
    f.drv.postRx(1);
    f.dev.receive(frame);
    f.dev.flushRx();
    const [rx] = f.drv.receiveAll();
    expect(rx.raw.length).toBe(10 + frame.length);
    expect(Array.from(rx.frame)).toEqual(Array.from(frame));
  });
});

describe("notification suppression", () => {
  it("honours VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX", () => {
    const f = up();
    f.drv.setAvailFlags(QueueIndex.TX, 1);
    f.drv.send(frame);
    f.dev.processTx(() => 0);
    expect(f.irqs[QueueIndex.TX]).toBe(0);
    expect(f.dev.metrics(QueueIndex.TX).interruptsSuppressed).toBe(1);
    f.drv.setAvailFlags(QueueIndex.TX, 0);
    f.drv.send(frame);
    f.dev.processTx(() => 0);
    expect(f.irqs[QueueIndex.TX]).toBe(1);
  });

  it("interrupts only when used_event is crossed (EVENT_IDX)", () => {
    const f = up(WITH_EVENT_IDX);
    f.drv.setUsedEvent(QueueIndex.TX, 4); // notify when used idx passes 4, i.e. after the 5th
    const irqsAfter: number[] = [];
    for (let i = 0; i < 8; i++) {
      f.drv.send(frame);
      f.dev.processTx(() => 0);
      irqsAfter.push(f.irqs[QueueIndex.TX]);
    }
    expect(irqsAfter).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it("interrupts for a batch that crosses used_event in its middle", () => {
    const f = up(WITH_EVENT_IDX);
    f.drv.setUsedEvent(QueueIndex.TX, 2);
    for (let i = 0; i < 5; i++) f.drv.send(frame);
    f.dev.processTx(() => 0);
    expect(f.irqs[QueueIndex.TX]).toBe(1);
  });

  it("publishes avail_event = next avail index when it runs dry (EVENT_IDX)", () => {
    const f = up(WITH_EVENT_IDX);
    for (let i = 0; i < 3; i++) f.drv.send(frame);
    f.dev.processTx(() => 0);
    expect(f.drv.availEvent(QueueIndex.TX)).toBe(3);
  });

  it("sets VRING_USED_F_NO_NOTIFY while busy and clears it when idle (no EVENT_IDX)", () => {
    const f = up();
    f.drv.send(frame);
    let flagsWhileBusy = -1;
    f.dev.processTx(() => { flagsWhileBusy = f.drv.usedFlags(QueueIndex.TX); return 0; });
    expect(flagsWhileBusy).toBe(1);
    expect(f.drv.usedFlags(QueueIndex.TX)).toBe(0);
  });

  it("asks for an RX notification when the guest has no buffers (EVENT_IDX)", () => {
    const f = up(WITH_EVENT_IDX);
    f.drv.postRx(2);
    f.dev.receive(frame);
    f.dev.receive(frame);
    expect(f.dev.receive(frame).kind).toBe("no-buffer");
    expect(f.drv.availEvent(QueueIndex.RX)).toBe(2);
  });
});

/** Puts a hand-made chain on the TX ring. */
function rawTx(f: Fixture, descs: [bigint, number, number, number][], head = 0): void {
  const q = f.drv.queues[QueueIndex.TX];
  descs.forEach(([addr, len, flags, next], i) => f.drv.writeDesc(q.desc, i, addr, len, flags, next));
  q.chains.set(head, { descs: [], bufs: [] });
  f.drv.publishAvail(QueueIndex.TX, head);
}

function expectBroken(f: Fixture, metric: keyof ReturnType<Fixture["dev"]["metrics"]>, q = QueueIndex.TX): void {
  expect(f.dev.status & Status.NEEDS_RESET).toBe(Status.NEEDS_RESET);
  expect(f.dev.metrics(q)[metric]).toBe(1);
  expect(f.configChanges).toBe(1);
  // The queue stays stopped; nothing more is consumed or published.
  expect(f.dev.processTx(() => 0)).toBe(Code.BROKEN);
}

describe("malformed rings put the device in NEEDS_RESET", () => {
  const buf = (f: Fixture, n = 200) => f.drv.alloc(n);

  it("a descriptor loop", () => {
    const f = up(BASE, 8);
    const b = buf(f);
    rawTx(f, [[b, 100, DESC_F_NEXT, 1], [b, 100, DESC_F_NEXT, 2], [b, 100, DESC_F_NEXT, 0]]);
    expect(f.dev.processTx(() => 0)).toBe(Code.BROKEN);
    expectBroken(f, "resetChainLoop");
  });

  it("a loop inside an indirect table", () => {
    const f = up(BASE, 8);
    const table = f.drv.alloc(32);
    const b = buf(f);
    f.drv.writeDesc(table, 0, b, 50, DESC_F_NEXT, 1);
    f.drv.writeDesc(table, 1, b, 50, DESC_F_NEXT, 0);
    rawTx(f, [[table, 32, DESC_F_INDIRECT, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetChainLoop");
  });

  it("a buffer outside guest RAM, including one that wraps the 64-bit space", () => {
    for (const [addr, len] of [[0xffff_0000n, 100], [0xffff_ffff_ffff_fff0n, 0x20], [BigInt(4 << 20) - 50n, 100]] as [bigint, number][]) {
      const f = up(BASE, 8);
      rawTx(f, [[addr, len, 0, 0]]);
      f.dev.processTx(() => 0);
      expectBroken(f, "resetDescAddr");
    }
  });

  it("a buffer in a guest-physical hole", () => {
    const f = fixture({ holes: [{ start: 0xa0000, end: 0xc0000 }] });
    f.drv.bringUp(BASE, 8);
    rawTx(f, [[0xa0100n, 100, 0, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetDescAddr");
  });

  it("an available index that jumps by more than the queue size", () => {
    const f = up(BASE, 8);
    f.drv.w16(f.drv.queues[QueueIndex.TX].avail + 2n, 9);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetAvailJump");
  });

  it("a head index beyond the queue", () => {
    const f = up(BASE, 8);
    rawTx(f, [], 8);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetHeadIndex");
  });

  it("a next index beyond the queue", () => {
    const f = up(BASE, 8);
    rawTx(f, [[buf(f), 100, DESC_F_NEXT, 8]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetDescIndex");
  });

  it("an indirect descriptor inside an indirect table", () => {
    const f = up(BASE, 8);
    const inner = f.drv.alloc(16);
    f.drv.writeDesc(inner, 0, buf(f), 100, 0, 0);
    const table = f.drv.alloc(16);
    f.drv.writeDesc(table, 0, inner, 16, DESC_F_INDIRECT, 0);
    rawTx(f, [[table, 16, DESC_F_INDIRECT, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetNestedIndirect");
  });

  it("an indirect descriptor when INDIRECT_DESC was not negotiated", () => {
    const f = up(featureMask(Feature.VERSION_1), 8);
    const table = f.drv.alloc(16);
    f.drv.writeDesc(table, 0, buf(f), 100, 0, 0);
    rawTx(f, [[table, 16, DESC_F_INDIRECT, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetIndirectUnnegotiated");
  });

  it("an indirect table whose length is not a multiple of 16", () => {
    const f = up(BASE, 8);
    rawTx(f, [[f.drv.alloc(32), 24, DESC_F_INDIRECT, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetIndirectLen");
  });

  it("a zero-length chain", () => {
    const f = up(BASE, 8);
    const b = buf(f);
    rawTx(f, [[b, 0, DESC_F_NEXT, 1], [b, 0, 0, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetZeroLength");
  });

  it("a device-writable buffer in a TX chain", () => {
    const f = up(BASE, 8);
    rawTx(f, [[buf(f), 100, DESC_F_WRITE, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetDirection");
  });

  it("a device-readable buffer in an RX chain", () => {
    const f = up(BASE, 8);
    f.drv.addChain(QueueIndex.RX, [{ gpa: buf(f, 1600), len: 1600 }], false);
    expect(f.dev.receive(frame)).toEqual({ kind: "not-ready", code: Code.BROKEN });
    expect(f.dev.metrics(QueueIndex.RX).resetDirection).toBe(1);
    expect(f.dev.status & Status.NEEDS_RESET).toBe(Status.NEEDS_RESET);
  });

  it("a chain of 4 GiB or more", () => {
    const f = fixture({ guestSize: 64 << 20 });
    f.drv.bringUp(BASE, 8);
    // 64 descriptors each covering all 64 MiB of guest RAM: valid one by one, 4 GiB together.
    const table = f.drv.alloc(16 * 64);
    for (let i = 0; i < 64; i++) f.drv.writeDesc(table, i, 0n, 64 << 20, i < 63 ? DESC_F_NEXT : 0, i + 1);
    rawTx(f, [[table, 16 * 64, DESC_F_INDIRECT, 0]]);
    f.dev.processTx(() => 0);
    expectBroken(f, "resetChainTooBig");
  });

  it("ring addresses that are unmapped or misaligned", () => {
    for (const [desc, avail, used] of [[0x100008n, 0x200000n, 0x300000n], [0x100000n, 0x200001n, 0x300000n],
      [0x100000n, 0x200000n, 0x300002n], [0x100000n, 0x200000n, 0x7f0000000n]]) {
      const f = fixture();
      f.drv.negotiate(BASE);
      f.dev.configureQueue(QueueIndex.TX, 8, desc, avail, used);
      expect(f.dev.enableQueue(QueueIndex.TX, true)).toBe(Code.BROKEN);
      expect(f.dev.metrics(QueueIndex.TX).resetRingAddr).toBe(1);
    }
  });

  it("reset (status 0) recovers the device", () => {
    const f = up(BASE, 8);
    rawTx(f, [[0xffff_0000n, 100, 0, 0]]);
    f.dev.processTx(() => 0);
    expect(f.dev.status & Status.NEEDS_RESET).toBeTruthy();
    f.drv.bringUp(BASE, 8);
    expect(f.dev.status).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    f.drv.send(frame);
    expect(f.dev.collectTx().length).toBe(1);
  });
});

describe("TX backpressure", () => {
  it("keeps a frame the backend could not take (RETRY) and hands it over again, in order", () => {
    const f = up();
    const frames = [0, 1, 2].map((i) => buildFrame({ ip: 4, l4: "udp", payload: payload(40 + i) }).frame);
    for (const fr of frames) f.drv.send(fr);
    let calls = 0;
    expect(f.dev.processTx(() => (++calls === 2 ? Code.RETRY : 1))).toBe(1);
    expect(f.drv.takeUsed(QueueIndex.TX).length).toBe(1);
    const rest = f.dev.collectTx();
    expect(rest.map((r) => r.frame.length)).toEqual([frames[1].length, frames[2].length]);
    expect(f.dev.metrics(QueueIndex.TX).dropBackend).toBe(0);
    expect(f.dev.metrics(QueueIndex.TX).packets).toBe(3);
  });
});

describe("queue sizes", () => {
  it("works at the largest size, 32768, across the index wrap", () => {
    const f = fixture({ guestSize: 16 << 20 });
    f.drv.bringUp(BASE, 32768);
    const q = f.drv.queues[QueueIndex.TX];
    // Start near the u16 wrap of the free-running indices, as a long-lived ring would be.
    q.availIdx = 65530;
    q.lastUsed = 65530;
    f.drv.w16(q.avail + 2n, 65530);
    f.drv.w16(q.used + 2n, 65530);
    f.dev.setStatus(0);
    f.drv.negotiate(BASE);
    f.dev.configureQueue(QueueIndex.TX, 32768, q.desc, q.avail, q.used);
    f.dev.setNextAvail(QueueIndex.TX, 65530);
    f.dev.enableQueue(QueueIndex.TX, true);
    f.dev.configureQueue(QueueIndex.RX, 32768, f.drv.queues[QueueIndex.RX].desc, f.drv.queues[QueueIndex.RX].avail, f.drv.queues[QueueIndex.RX].used);
    f.dev.enableQueue(QueueIndex.RX, true);
    f.drv.start();
    for (let i = 0; i < 12; i++) f.drv.send(frame);
    expect(f.dev.collectTx().length).toBe(12);
    expect(f.drv.takeUsed(QueueIndex.TX).length).toBe(12);
    expect(f.drv.r16(q.used + 2n)).toBe((65530 + 12) & 0xffff);
  });

  it.each([0, 3, 100, 65536])("refuses size %i", (n) => {
    const f = fixture();
    f.drv.negotiate(BASE);
    expect(f.dev.configureQueue(QueueIndex.TX, n, 0x1000n, 0x2000n, 0x3000n)).toBe(Code.INVALID);
  });
});
