// Dirty logging for live migration (vhost-user VHOST_F_LOG_ALL / LOG_SHMFD): while a log is set,
// every guest page the device writes is marked in a bitmap the front-end reads, one bit per
// 4 KiB page of guest-physical memory, set with an atomic OR (the front-end clears bits while
// we set them). What the device writes: RX buffers (marked as each frame is handed to the
// guest, merged and segmented frames included) and the queues' device-written areas (the used
// ring, or a packed ring's descriptors and device event area, marked when completions are
// published). Off, it costs one load per frame.

import { Code } from "../abi";
import { regionCount, regionGpa, regionSize, regionWasm } from "../mem/guest";
import { device, guestMem } from "../state";
import { iovBase, iovLen, Sg } from "./sg";
import { Virtqueue } from "../virtq/queue";
import { descTableBytes, usedBytes } from "../virtq/layout";
import { EVENT_BYTES } from "../virtq/packed";

// @ts-ignore: decorator
@inline const PAGE_SHIFT: u64 = 12;

/** Sets the log: `bytes` of bitmap at Wasm address `at` (0 bytes: logging off). */
export function setDirtyLog(st: usize, at: usize, bytes: u32): i32 {
  const d = device(st);
  if (bytes == 0) {
    d.logAddr = 0;
    d.logBytes = 0;
    return Code.OK;
  }
  const limit = <u64>memory.size() << 16;
  if (at == 0 || <u64>at + bytes > limit) return Code.INVALID;
  d.logAddr = <u32>at;
  d.logBytes = bytes;
  return Code.OK;
}

/** Marks the pages of guest-physical [gpa, gpa + len) (bits past the log's end are left alone). */
export function logGpa(st: usize, gpa: u64, len: u64): void {
  const d = device(st);
  if (len == 0 || d.logBytes == 0) return;
  const last = (gpa + len - 1) >> PAGE_SHIFT;
  for (let p = gpa >> PAGE_SHIFT; p <= last; p++) {
    const byte = p >> 3;
    if (byte >= <u64>d.logBytes) return;
    atomic.or<u8>(<usize>d.logAddr + <usize>byte, <u8>(<u32>1 << <u32>(p & 7)));
  }
}

/** Marks the guest pages behind Wasm [addr, addr + len) (a buffer the device wrote). */
function logWasm(st: usize, addr: u64, len: u64): void {
  const mem = guestMem(st);
  const n = regionCount(mem);
  for (let i: u32 = 0; i < n && len != 0; i++) {
    const w = regionWasm(mem, i);
    const size = regionSize(mem, i);
    if (addr < w || addr - w >= size) continue;
    let piece = size - (addr - w);
    if (piece > len) piece = len;
    logGpa(st, regionGpa(mem, i) + (addr - w), piece);
    addr += piece;
    len -= piece;
    i = <u32>-1; // the rest may lie in any region: look again from the first
  }
}

/** Marks the first `bytes` of the buffers in `sg` (an RX chain just handed to the guest). */
export function logSg(st: usize, sg: Sg, bytes: u32): void {
  if (device(st).logBytes == 0) return;
  for (let i: u32 = 0; i < sg.n && bytes != 0; i++) {
    let len = iovLen(sg, i);
    if (len > bytes) len = bytes;
    logWasm(st, <u64>iovBase(sg, i), len);
    bytes -= len;
  }
}

/** Marks the areas of queue `q` the device writes: the used ring; a packed ring's descriptors and device event area. */
export function logQueue(st: usize, q: Virtqueue): void {
  if (device(st).logBytes == 0 || q.size == 0) return;
  if (q.packed != 0) {
    logGpa(st, q.descGpa, descTableBytes(q.size));
    logGpa(st, q.usedGpa, EVENT_BYTES);
  } else {
    logGpa(st, q.usedGpa, usedBytes(q.size));
  }
}
