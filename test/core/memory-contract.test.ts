/**
 * The core's memory contract, checked byte by byte: with the whole memory filled with a
 * canary pattern, the device writes only its state block, the used rings, and the guest's
 * device-writable (RX) buffers; never a TX buffer, a hole, or anything outside guest RAM.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex, Status } from "../../assembly/abi.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { rng } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture, type Fixture } from "../helpers/setup.js";

const ALL = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX,
  Feature.INDIRECT_DESC);
const HOLE = { start: 0xa0000, end: 0xc0000 };

type Range = [number, number];

function paint(u8: Uint8Array): void {
  for (let i = 0; i < u8.length; i++) u8[i] = (i * 131 + 17) & 0xff;
}

/** Wasm ranges the device writes in its rings: the used rings (packed: the descriptor rings, where used descriptors go, and the device event areas). */
function usedRings(f: Fixture): Range[] {
  return [QueueIndex.RX, QueueIndex.TX].flatMap((qi) => {
    const q = f.drv.queues[qi];
    const w = f.drv.wasm(q.used);
    if (!f.drv.packedRings) return [[w, w + 6 + 8 * q.size] as Range];
    const d = f.drv.wasm(q.desc);
    return [[d, d + 16 * q.size] as Range, [w, w + 4] as Range];
  });
}

function stateBlock(f: Fixture): Range {
  return [f.dev.state, f.dev.state + f.dev.stateSize];
}

/** Indices where `now` differs from `before` and that lie in none of `allowed`. */
function strayWrites(before: Uint8Array, now: Uint8Array, allowed: Range[]): number[] {
  const stray: number[] = [];
  const a32 = new Uint32Array(before.buffer, before.byteOffset, before.length >>> 2);
  const b32 = new Uint32Array(now.buffer, now.byteOffset, now.length >>> 2);
  for (let w = 0; w < b32.length; w++) {
    if (a32[w] === b32[w]) continue;
    for (let i = 4 * w; i < 4 * w + 4; i++) {
      if (now[i] === before[i] || allowed.some(([a, b]) => i >= a && i < b)) continue;
      stray.push(i);
    }
    if (stray.length > 8) break;
  }
  return stray;
}

describe("memory contract", () => {
  it.each([BackendKind.PLAIN, BackendKind.VNET_HDR, BackendKind.TUN_HDR])(
    "traffic writes only the state block, used rings and RX buffers (backend %i)", (backend) => {
      const f = fixture({ holes: [HOLE], backend, guestSize: 2 << 20, fill: paint });
      const u8 = new Uint8Array(f.mem.memory.buffer);
      // The guest negotiates CSUM but not GUEST_CSUM: TX partial checksums are finished in
      // software (a backend that takes them gets them untouched) and RX ones in place.
      f.drv.bringUp(ALL & ~featureMask(Feature.GUEST_CSUM), 64);
      const rxBufs: Range[] = [];
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 5; i++) {
          const b = buildFrame({ ip: i % 2 ? 6 : 4, l4: i % 3 ? "tcp" : "udp", payload: payload(50 + 97 * i), csum: "partial" });
          f.drv.send(b.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField }, splits: [5, 12 + b.l4Off + b.csumField + 1] });
        }
        for (const h of f.drv.postRx(4, { parts: [12, 40, 1474] })) {
          for (const buf of f.drv.queues[QueueIndex.RX].chains.get(h)!.bufs) rxBufs.push([f.drv.wasm(buf.gpa), f.drv.wasm(buf.gpa) + buf.len]);
        }
        const before = u8.slice();
        expect(f.dev.processTx(() => 0)).toBe(5);
        for (let i = 0; i < 4; i++) {
          const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(200 + i), csum: "partial" });
          const hdr = backend === BackendKind.VNET_HDR
            ? encodeVirtioHdr({ flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: 16 })
            : backend === BackendKind.TUN_HDR ? new Uint8Array([0, 2, 0, 0, 0, 0, 0, 0]) : undefined;
          expect(f.dev.receive(b.frame, hdr).kind).toBe("delivered");
        }
        f.dev.flushRx();
        expect(strayWrites(before, u8, [stateBlock(f), ...usedRings(f), ...rxBufs])).toEqual([]);
        f.drv.takeUsed(QueueIndex.TX);
        f.drv.receiveAll();
      }
      expect(f.dev.metrics(QueueIndex.TX).csumSoftware + f.dev.metrics(QueueIndex.TX).csumOffloaded).toBe(30);
    });

  it("garbage rings and descriptors never write outside guest RAM and the state block, never trap", () => {
    let resets = 0;
    let delivered = 0;
    for (let seed = 1; seed <= 60; seed++) {
      // Scribbles the split ring's structures; the packed variant is below.
      const f = fixture({ holes: [HOLE], guestSize: 2 << 20, seed, fill: paint, layout: "split" });
      const u8 = new Uint8Array(f.mem.memory.buffer);
      const r = rng(seed * 7919);
      f.drv.bringUp(ALL, 16);
      const guest: Range[] = f.mem.regions.map((g) => [g.wasm, g.wasm + g.size] as Range);
      const before = u8.slice();
      for (let step = 0; step < 30; step++) {
        // Scribble over descriptor tables and avail rings with values biased towards the
        // interesting: small indices, addresses near region edges, every flag combination.
        for (const qi of [QueueIndex.RX, QueueIndex.TX]) {
          const q = f.drv.queues[qi];
          for (let i = 0; i < 4; i++) {
            const addrs = [0n, 0x9ff00n, 0xa0000n, 0xbfff0n, 0xc0000n, BigInt(2 << 20) - 64n, BigInt(Math.floor(r() * (2 << 20))), 0xffff_ffff_ffff_fff0n];
            f.drv.writeDesc(q.desc, Math.floor(r() * 16), addrs[Math.floor(r() * addrs.length)],
              Math.floor(r() * 3000), Math.floor(r() * 8), Math.floor(r() * 20));
          }
          f.drv.w16(q.avail + BigInt(4 + 2 * Math.floor(r() * 16)), Math.floor(r() * 20));
          if (r() < 0.8) f.drv.w16(q.avail + 2n, (f.drv.r16(q.avail + 2n) + Math.floor(r() * 6)) & 0xffff);
          if (r() < 0.05) f.drv.w16(q.avail + 2n, Math.floor(r() * 65536));
        }
        const usedBefore = [QueueIndex.RX, QueueIndex.TX].map((qi) => f.drv.r16(f.drv.queues[qi].used + 2n));
        const availNow = [QueueIndex.RX, QueueIndex.TX].map((qi) => f.drv.r16(f.drv.queues[qi].avail + 2n));
        // Everything the driver just wrote is its own business.
        before.set(u8);
        f.dev.processTx(() => (r() < 0.9 ? 1 : -1));
        for (let i = 0; i < 3; i++) {
          if (f.dev.receive(payload(14 + Math.floor(r() * 1600), seed)).kind === "delivered") delivered++;
        }
        f.dev.flushRx();
        expect(strayWrites(before, u8, [stateBlock(f), ...usedRings(f), ...guest])).toEqual([]);
        // The used index never runs ahead of what the driver made available: this step adds at
        // most as many used entries as were outstanding (available, not yet used), and never
        // more than the ring holds.
        [QueueIndex.RX, QueueIndex.TX].forEach((qi, k) => {
          const used = f.drv.r16(f.drv.queues[qi].used + 2n);
          const advanced = (used - usedBefore[k]) & 0xffff;
          const outstanding = (availNow[k] - usedBefore[k]) & 0xffff;
          expect(advanced).toBeLessThanOrEqual(16);
          expect(advanced).toBeLessThanOrEqual(outstanding);
        });
        if (f.dev.status & Status.NEEDS_RESET) {
          resets++;
          f.drv.bringUp(ALL, 16);
        }
      }
    }
    // The garbage reached both outcomes: rings rejected, and buffers accepted and written.
    expect(resets).toBeGreaterThan(100);
    expect(delivered).toBeGreaterThan(20);
  });
});
