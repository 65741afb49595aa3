/**
 * A device's saved state as bytes (VirtioNetDevice.saveState / VirtioNetDevice.restore): what
 * lets an emulator's snapshot, or a move to another process, carry the device along with the
 * guest's RAM. Versioned; the negotiation and the rings are replayed on restore (adopt), and
 * the rest (receive filter, MAC, announce, queue pairs, guest offloads, link, counters) is the
 * core's own record (assembly/net/saved.ts).
 *
 *   0 magic "VNWS" · 4 format u32 · 8 core layout u32 · 12 status u32 · 16 offered u64 · 24 negotiated u64
 *   32 queues u32, then per queue: size u32 · enabled u32 · desc u64 · driver u64 · device u64 · resume u32 · 0 u32
 *   then the core's record: length u32, bytes
 */

/** "VNWS". */
const MAGIC = 0x53574e56;
/** The format of this record (not the core's layout, which is checked separately). */
export const SAVED_STATE_FORMAT = 1;
const QUEUE_BYTES = 40;

export class SavedStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SavedStateError";
  }
}

export interface SavedQueue {
  size: number;
  enabled: boolean;
  desc: bigint;
  avail: bigint;
  used: bigint;
  /** Where to resume (VirtioNetDevice.nextAvail's encoding: split index, or packed positions and wrap counters). */
  resume: number;
}

export interface SavedState {
  layout: number;
  status: number;
  offered: bigint;
  negotiated: bigint;
  queues: SavedQueue[];
  /** The core's record (opaque here). */
  core: Uint8Array;
}

export function encodeSavedState(s: SavedState): Uint8Array {
  const out = new Uint8Array(36 + QUEUE_BYTES * s.queues.length + 4 + s.core.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, SAVED_STATE_FORMAT, true);
  v.setUint32(8, s.layout, true);
  v.setUint32(12, s.status, true);
  v.setBigUint64(16, s.offered, true);
  v.setBigUint64(24, s.negotiated, true);
  v.setUint32(32, s.queues.length, true);
  s.queues.forEach((q, i) => {
    const at = 36 + QUEUE_BYTES * i;
    v.setUint32(at, q.size, true);
    v.setUint32(at + 4, q.enabled ? 1 : 0, true);
    v.setBigUint64(at + 8, q.desc, true);
    v.setBigUint64(at + 16, q.avail, true);
    v.setBigUint64(at + 24, q.used, true);
    v.setUint32(at + 32, q.resume >>> 0, true);
  });
  const at = 36 + QUEUE_BYTES * s.queues.length;
  v.setUint32(at, s.core.length, true);
  out.set(s.core, at + 4);
  return out;
}

/** Parses a saved state; SavedStateError for anything that is not one of this format. */
export function decodeSavedState(bytes: Uint8Array): SavedState {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (n: number) => {
    if (bytes.length < n) throw new SavedStateError(`saved device state truncated: ${bytes.length} bytes, ${n} needed`);
  };
  need(36);
  if (v.getUint32(0, true) !== MAGIC) throw new SavedStateError("not a saved virtio-net-wasm device state (bad magic)");
  const format = v.getUint32(4, true);
  if (format !== SAVED_STATE_FORMAT) throw new SavedStateError(`saved device state format ${format}, this build reads ${SAVED_STATE_FORMAT}`);
  const n = v.getUint32(32, true);
  if (n > 3) throw new SavedStateError(`saved device state claims ${n} queues`);
  need(36 + QUEUE_BYTES * n + 4);
  const queues: SavedQueue[] = [];
  for (let i = 0; i < n; i++) {
    const at = 36 + QUEUE_BYTES * i;
    queues.push({
      size: v.getUint32(at, true), enabled: v.getUint32(at + 4, true) !== 0, desc: v.getBigUint64(at + 8, true),
      avail: v.getBigUint64(at + 16, true), used: v.getBigUint64(at + 24, true), resume: v.getUint32(at + 32, true),
    });
  }
  const at = 36 + QUEUE_BYTES * n;
  const len = v.getUint32(at, true);
  need(at + 4 + len);
  return {
    layout: v.getUint32(8, true), status: v.getUint32(12, true), offered: v.getBigUint64(16, true),
    negotiated: v.getBigUint64(24, true), queues, core: bytes.slice(at + 4, at + 4 + len),
  };
}
