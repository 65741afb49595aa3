/**
 * A guest driver stripped to what a benchmark needs: every descriptor chain is built once,
 * and a round just republishes the heads (one u16 store each, plus the avail index), so the
 * driver side costs the same few stores per frame for the engine and for its floor.
 */
import { BackendKind, Feature, QueueIndex } from "../assembly/abi.js";
import { featureMask } from "../host/device/features.js";
import { createGuestMemory } from "../host/memory/layout.js";
import { VirtioNetDevice } from "../host/device/virtio-net.js";
import { encodeVirtioHdr, type VirtioNetHdr } from "../host/device/header.js";

export const RING = 256;

export interface RingBench {
  dev: VirtioNetDevice;
  u8: Uint8Array;
  /** Wasm address of guest-physical 0. */
  guestBase: number;
  /** Wasm addresses of each TX frame's bytes (after the header). */
  txFrames: number[];
  frameLen: number;
  /** Makes all TX chains available again (after the device completed them). */
  refillTx(): void;
  refillRx(): void;
}

export interface RingBenchOptions {
  frame: Uint8Array;
  /** Give the device the memory's native address, for iovecs that go to real syscalls. */
  nativeBase?: (memory: WebAssembly.Memory) => bigint;
  hdr?: Partial<VirtioNetHdr>;
  backend?: BackendKind;
  features?: bigint;
  /** GSO types the backend takes whole (GsoMask); default the device's. */
  backendGso?: number;
  /** Ring size (default RING). */
  ring?: number;
}

export function ringBench(opts: RingBenchOptions): RingBench {
  const ring = opts.ring ?? RING;
  const mem = createGuestMemory({ guestSize: Math.max(16 << 20, ring * (opts.frame.length + 2048) + (4 << 20)) });
  const dev = new VirtioNetDevice({
    memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, backend: opts.backend,
    nativeBase: opts.nativeBase?.(mem.memory), features: opts.features, backendGso: opts.backendGso,
  });
  const u8 = new Uint8Array(mem.memory.buffer);
  const dv = new DataView(mem.memory.buffer);
  const base = mem.guestBase;
  let next = 0x1000;
  const alloc = (n: number, align = 16) => { next = Math.ceil(next / align) * align; const at = next; next += n; return at; };
  const features = opts.features ?? featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX);
  dev.setStatus(1); dev.setStatus(3); dev.setDriverFeatures(features); dev.setStatus(11);
  const rings: { desc: number; avail: number; used: number; idx: number }[] = [];
  for (const q of [QueueIndex.RX, QueueIndex.TX]) {
    const desc = alloc(16 * ring), avail = alloc(6 + 2 * ring, 2), used = alloc(6 + 8 * ring, 4);
    dev.configureQueue(q, ring, BigInt(desc), BigInt(avail), BigInt(used));
    dev.enableQueue(q, true);
    rings[q] = { desc, avail, used, idx: 0 };
  }
  dev.setStatus(15);
  const hdr = encodeVirtioHdr(opts.hdr ?? {});
  const txFrames: number[] = [];
  const tx = rings[QueueIndex.TX];
  for (let i = 0; i < ring; i++) {
    const buf = alloc(12 + opts.frame.length, 64);
    u8.set(hdr, base + buf);
    u8.set(opts.frame, base + buf + 12);
    txFrames.push(base + buf + 12);
    const d = base + tx.desc + 16 * i;
    dv.setBigUint64(d, BigInt(buf), true);
    dv.setUint32(d + 8, 12 + opts.frame.length, true);
    dv.setUint16(d + 12, 0, true);
  }
  const rx = rings[QueueIndex.RX];
  for (let i = 0; i < ring; i++) {
    const buf = alloc(1526 + 64, 64);
    const d = base + rx.desc + 16 * i;
    dv.setBigUint64(d, BigInt(buf), true);
    dv.setUint32(d + 8, 1526 + 64, true);
    dv.setUint16(d + 12, 2, true);
  }
  const refill = (r: typeof tx) => () => {
    for (let i = 0; i < ring; i++) dv.setUint16(base + r.avail + 4 + 2 * ((r.idx + i) % ring), i, true);
    r.idx = (r.idx + ring) & 0xffff;
    dv.setUint16(base + r.avail + 2, r.idx, true);
  };
  return { dev, u8, guestBase: base, txFrames, frameLen: opts.frame.length, refillTx: refill(tx), refillRx: refill(rx) };
}
