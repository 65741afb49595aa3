// Guest memory: the only memory besides the state block the core may touch.
//
// Guest RAM is a set of regions of guest-physical space, each mapped at an offset of the
// Wasm linear memory (one region for a flat emulator RAM; several for RAM with holes such as
// 0xA0000-0xBFFFF, or for the regions a vhost-user front-end sends). Every guest-supplied
// address goes through here; a lookup that fails returns 0, which is never a valid mapping
// because regions are refused at Wasm address 0.

import { Layout } from "../abi";

/** One region: guest-physical [gpa, gpa + size) lives at Wasm address `wasm`. */
@unmanaged
export class Region {
  gpa: u64;
  size: u64;
  wasm: u64;
}

/**
 * The region table inside the state block.
 *
 *   ┌──────────┬──────────┬───────────────────────────────┐
 *   │ count u32│ gen u32  │ Region[MAX_REGIONS] (24 B each)│
 *   └──────────┴──────────┴───────────────────────────────┘
 * `gen` changes whenever the table changes, so queues re-translate their ring addresses.
 */
@unmanaged
export class GuestMemory {
  count: u32;
  gen: u32;
}

// @ts-ignore: decorator
@inline export const GUEST_MEMORY_SIZE: usize = offsetof<GuestMemory>() + Layout.MAX_REGIONS * offsetof<Region>();

// @ts-ignore: decorator
@inline function regionAt(mem: usize, i: u32): Region {
  return changetype<Region>(mem + offsetof<GuestMemory>() + <usize>i * offsetof<Region>());
}

/** The table's regions, for walking it back from Wasm to guest-physical addresses (dirty logging). */
// @ts-ignore: decorator
@inline export function regionCount(mem: usize): u32 { return changetype<GuestMemory>(mem).count; }
// @ts-ignore: decorator
@inline export function regionGpa(mem: usize, i: u32): u64 { return regionAt(mem, i).gpa; }
// @ts-ignore: decorator
@inline export function regionSize(mem: usize, i: u32): u64 { return regionAt(mem, i).size; }
// @ts-ignore: decorator
@inline export function regionWasm(mem: usize, i: u32): u64 { return regionAt(mem, i).wasm; }

/** Empties the table. */
export function memClear(mem: usize): void {
  const m = changetype<GuestMemory>(mem);
  m.count = 0;
  m.gen++;
}

/**
 * Adds a region. Refused (false) when the table is full, the region is empty, it would sit at
 * Wasm address 0, run past the end of the current linear memory, or overlap another region in
 * guest-physical space.
 */
export function memAdd(mem: usize, gpa: u64, size: u64, wasm: u64): bool {
  const m = changetype<GuestMemory>(mem);
  if (m.count >= <u32>Layout.MAX_REGIONS) return false;
  if (size == 0 || wasm == 0) return false;
  const limit = <u64>memory.size() << 16;
  if (wasm > limit || size > limit - wasm) return false;
  if (gpa + size < gpa) return false; // wraps the 64-bit guest-physical space
  for (let i: u32 = 0; i < m.count; i++) {
    const r = regionAt(mem, i);
    if (gpa < r.gpa + r.size && r.gpa < gpa + size) return false;
  }
  const r = regionAt(mem, m.count);
  r.gpa = gpa;
  r.size = size;
  r.wasm = wasm;
  m.count++;
  m.gen++;
  return true;
}

/** Removes the region that starts at `gpa`; false if there is none. */
export function memRemove(mem: usize, gpa: u64): bool {
  const m = changetype<GuestMemory>(mem);
  for (let i: u32 = 0; i < m.count; i++) {
    const r = regionAt(mem, i);
    if (r.gpa != gpa) continue;
    const last = regionAt(mem, m.count - 1);
    r.gpa = last.gpa;
    r.size = last.size;
    r.wasm = last.wasm;
    m.count--;
    m.gen++;
    return true;
  }
  return false;
}

/** The region containing `gpa`, or 0. */
export function regionFind(mem: usize, gpa: u64): usize {
  const m = changetype<GuestMemory>(mem);
  for (let i: u32 = 0; i < m.count; i++) {
    const r = regionAt(mem, i);
    // Unsigned subtraction: gpa below r.gpa wraps to a huge value and fails the test.
    if (gpa - r.gpa < r.size) return changetype<usize>(r);
  }
  return 0;
}

/**
 * Translates [gpa, gpa + len) to a Wasm address if it lies inside one region, else 0.
 * Overflow-safe for any 64-bit gpa and len.
 */
export function translate(mem: usize, gpa: u64, len: u64): usize {
  const rp = regionFind(mem, gpa);
  if (rp == 0) return 0;
  const r = changetype<Region>(rp);
  const off = gpa - r.gpa;
  if (len > r.size - off) return 0;
  return <usize>(r.wasm + off);
}

/** Bytes available from `gpa` to the end of its region (0 if unmapped); region found in `rp`. */
// @ts-ignore: decorator
@inline export function regionRemaining(rp: usize, gpa: u64): u64 {
  const r = changetype<Region>(rp);
  return r.size - (gpa - r.gpa);
}

/** Wasm address of `gpa` within region `rp` (caller checked the range). */
// @ts-ignore: decorator
@inline export function regionAddr(rp: usize, gpa: u64): usize {
  const r = changetype<Region>(rp);
  return <usize>(r.wasm + (gpa - r.gpa));
}
