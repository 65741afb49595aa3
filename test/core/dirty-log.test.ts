/**
 * Dirty logging (live migration): with a log set, every guest page the device writes is marked
 * (1 bit per 4 KiB page), none missing, and nothing marked further than a page from a write:
 * for TX completions, RX frames, frames merged over several buffers and frames segmented into
 * the guest's buffers, on the ring layout the run uses (VNW_RING=packed for packed rings). The
 * written pages are found independently, by comparing guest RAM before and after.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { featureMask, FULL_OFFER } from "../../host/device/features.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture, type Fixture } from "../helpers/setup.js";

const PAGE = 4096;

function setup(features: bigint) {
  const f = fixture({ features: FULL_OFFER, backend: BackendKind.VNET_HDR, guestSize: 2 << 20, fill: (u8) => u8.fill(0xa5), devices: 2 });
  f.drv.bringUp(features, 64);
  // The bitmap lives outside guest RAM and the device's state block: in the second block's room.
  const at = f.mem.stateAddresses[1];
  const bytes = Math.ceil(f.mem.guestSize / PAGE / 8);
  new Uint8Array(f.mem.memory.buffer).fill(0, at, at + bytes + 64);
  return { f, at, bytes };
}

function guestPages(f: Fixture): Uint8Array {
  const u8 = new Uint8Array(f.mem.memory.buffer);
  return u8.slice(f.mem.guestBase, f.mem.guestBase + f.mem.guestSize);
}

/** Pages (of guest-physical 0..size) whose bytes differ. */
function written(before: Uint8Array, after: Uint8Array): Set<number> {
  const out = new Set<number>();
  for (let p = 0; p * PAGE < before.length; p++) {
    for (let i = p * PAGE; i < (p + 1) * PAGE; i++) if (before[i] !== after[i]) { out.add(p); break; }
  }
  return out;
}

function marked(f: Fixture, at: number, bytes: number): Set<number> {
  const u8 = new Uint8Array(f.mem.memory.buffer, at, bytes);
  const out = new Set<number>();
  u8.forEach((b, i) => { for (let k = 0; k < 8; k++) if (b & (1 << k)) out.add(i * 8 + k); });
  return out;
}

/** The driver's part: frames to send, buffers to fill (its own writes, not the device's). */
function prepare(f: Fixture): void {
  for (let i = 0; i < 6; i++) f.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(100 + 300 * i) }).frame, { splits: [20] });
  // Small buffers: frames merge over several.
  f.drv.postRx(24, { parts: [512] });
}

/** The device's part: TX completions, RX frames (merged), and a large segment split into the buffers. */
function deviceWork(f: Fixture, segment: boolean): void {
  f.dev.collectTx();
  for (let i = 0; i < 3; i++) f.dev.receive(buildFrame({ ip: 4, l4: "udp", payload: payload(200 + 500 * i) }).frame, encodeVirtioHdr({}, 12));
  if (segment) {
    const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(3000), csum: "partial" });
    f.dev.receive(b.frame, encodeVirtioHdr({ flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1000, csumStart: b.l4Off, csumOffset: 16 }, 12));
  }
  f.dev.flushRx();
}

/** The driver takes back what the device completed. */
function reap(f: Fixture): void {
  f.drv.takeUsed(QueueIndex.TX);
  f.drv.receiveMerged();
}

describe("dirty logging", () => {
  it.each([
    ["TX completions, RX frames merged over several buffers", FULL_OFFER, false],
    ["and a large segment split into the buffers of a guest without GUEST_TSO", FULL_OFFER & ~featureMask(Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN), true],
  ])("marks exactly the pages the device wrote: %s", (_n, features, segment) => {
    const { f, at, bytes } = setup(features);
    expect(f.dev.core.setDirtyLog(f.dev.state, at, bytes)).toBe(0);
    prepare(f);
    const before = guestPages(f);
    deviceWork(f, segment);
    if (segment) expect(f.dev.metrics(QueueIndex.RX).gsoSegmented).toBe(1);
    expect(f.dev.metrics(QueueIndex.RX).buffersMerged).toBeGreaterThan(0);
    const w = written(before, guestPages(f));
    const m = marked(f, at, bytes);
    expect(w.size).toBeGreaterThanOrEqual(2);
    // None missing.
    expect([...w].filter((p) => !m.has(p))).toEqual([]);
    // Extras only within a page of a write (a ring area marked whole, a header written with its old bytes).
    expect([...m].filter((p) => !w.has(p) && !w.has(p - 1) && !w.has(p + 1))).toEqual([]);
  });

  it("marks nothing while off, and a log shorter than guest RAM is never written past its end", () => {
    const { f, at, bytes } = setup(FULL_OFFER);
    prepare(f);
    deviceWork(f, false);
    reap(f);
    expect(marked(f, at, bytes + 64).size).toBe(0);
    // One byte of log: pages 0..7 only; the byte after stays untouched.
    expect(f.dev.core.setDirtyLog(f.dev.state, at, 1)).toBe(0);
    new Uint8Array(f.mem.memory.buffer).fill(0, at, at + 2);
    prepare(f);
    deviceWork(f, false);
    expect(new Uint8Array(f.mem.memory.buffer)[at + 1]).toBe(0);
    expect(f.dev.core.setDirtyLog(f.dev.state, 0, 0)).toBe(0);
    expect(f.dev.core.setDirtyLog(f.dev.state, f.mem.memory.buffer.byteLength, 16)).toBeLessThan(0);
  });
});
