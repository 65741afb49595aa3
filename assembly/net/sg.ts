// Scatter-gather lists: a frame as an array of iovecs { u64 base; u64 len } whose bases are
// native addresses (Wasm address + nativeBase) so the host can hand the array straight to
// readv/writev. Every helper takes the list as (iov, n, nb) and works on logical offsets of
// the frame, so headers split anywhere, even mid-field, read the same as contiguous ones.

import { iovecAt, iovecSet, IOV_SIZE } from "../virtq/layout";
import { sumBlock, add16 } from "./checksum";

/** A frame described by iovecs. */
@unmanaged
export class Sg {
  /** Wasm address of the iovec array. */
  iov: u32;
  /** Number of iovecs in use. */
  n: u32;
  /** Native base subtracted from iovec bases to get Wasm addresses. */
  nb: u64;
}

// @ts-ignore: decorator
@inline export function iovBase(sg: Sg, i: u32): usize {
  return <usize>(iovecAt(sg.iov, i).base - sg.nb);
}

// @ts-ignore: decorator
@inline export function iovLen(sg: Sg, i: u32): u32 {
  return <u32>iovecAt(sg.iov, i).len;
}

// @ts-ignore: decorator
@inline function setIov(sg: Sg, i: u32, wasm: usize, len: u64): void {
  iovecSet(sg.iov, i, <u64>wasm + sg.nb, len);
}

/** Total bytes of the list. */
export function sgTotal(sg: Sg): u32 {
  let t: u32 = 0;
  for (let i: u32 = 0; i < sg.n; i++) t += iovLen(sg, i);
  return t;
}

/**
 * Wasm address of `len` bytes at logical offset `off` if they sit in one iovec, else 0.
 * The fast path for headers, which are almost always contiguous.
 */
export function sgContig(sg: Sg, off: u32, len: u32): usize {
  for (let i: u32 = 0; i < sg.n; i++) {
    const l = iovLen(sg, i);
    if (off < l) return len <= l - off ? iovBase(sg, i) + off : 0;
    off -= l;
  }
  return 0;
}

/** Bytes from logical offset `off` to the end of the iovec holding it (0 past the end). */
export function sgSpan(sg: Sg, off: u32): u32 {
  for (let i: u32 = 0; i < sg.n; i++) {
    const l = iovLen(sg, i);
    if (off < l) return l - off;
    off -= l;
  }
  return 0;
}

/**
 * Copies `n` bytes between non-overlapping ranges. Headers and MACs are a few bytes, and a
 * memory.copy of a variable length is a call out of the compiled code (about as costly as
 * copying a 64-byte frame): short copies are done in place.
 */
// @ts-ignore: decorator
@inline export function copy(dst: usize, src: usize, n: u32): void {
  if (n > 32) {
    memory.copy(dst, src, n);
    return;
  }
  let i: u32 = 0;
  for (; i + 8 <= n; i += 8) store<u64>(dst + i, load<u64>(src + i));
  for (; i < n; i++) store<u8>(dst + i, load<u8>(src + i));
}

/** Copies up to `len` bytes from logical offset `off` to `dst`; returns bytes copied. */
export function sgRead(sg: Sg, off: u32, dst: usize, len: u32): u32 {
  let done: u32 = 0;
  for (let i: u32 = 0; i < sg.n && done < len; i++) {
    const l = iovLen(sg, i);
    if (off >= l) { off -= l; continue; }
    let take = l - off;
    if (take > len - done) take = len - done;
    copy(dst + done, iovBase(sg, i) + off, take);
    done += take;
    off = 0;
  }
  return done;
}

/** Copies `len` bytes from `src` to logical offset `off`; returns bytes copied. */
export function sgWrite(sg: Sg, off: u32, src: usize, len: u32): u32 {
  let done: u32 = 0;
  for (let i: u32 = 0; i < sg.n && done < len; i++) {
    const l = iovLen(sg, i);
    if (off >= l) { off -= l; continue; }
    let take = l - off;
    if (take > len - done) take = len - done;
    copy(iovBase(sg, i) + off, src + done, take);
    done += take;
    off = 0;
  }
  return done;
}

/**
 * Folded little-endian-order checksum sum of the logical range [off, off + len), each piece
 * byte-swapped according to its position so odd-length and odd-offset pieces add up right.
 */
export function sgSum(sg: Sg, off: u32, len: u32): u32 {
  let s: u32 = 0;
  let at: u32 = 0;
  for (let i: u32 = 0; i < sg.n && at < len; i++) {
    const l = iovLen(sg, i);
    if (off >= l) { off -= l; continue; }
    let take = l - off;
    if (take > len - at) take = len - at;
    s = add16(s, sumBlock(iovBase(sg, i) + off, take, at));
    at += take;
    off = 0;
  }
  return s;
}

/** Removes the first `bytes` bytes from the list (entries shift down). */
export function sgTrimFront(sg: Sg, bytes: u32): void {
  let drop: u32 = 0;
  while (drop < sg.n && bytes >= iovLen(sg, drop) && bytes != 0) {
    bytes -= iovLen(sg, drop);
    drop++;
  }
  if (drop != 0) {
    memory.copy(<usize>sg.iov, <usize>sg.iov + <usize>drop * IOV_SIZE, <usize>(sg.n - drop) * IOV_SIZE);
    sg.n -= drop;
  }
  if (bytes != 0 && sg.n != 0) setIov(sg, 0, iovBase(sg, 0) + bytes, iovLen(sg, 0) - bytes);
}

/** Cuts the list to its first `len` bytes. */
export function sgTruncate(sg: Sg, len: u32): void {
  let at: u32 = 0;
  for (let i: u32 = 0; i < sg.n; i++) {
    const l = iovLen(sg, i);
    if (at + l >= len) {
      setIov(sg, i, iovBase(sg, i), len - at);
      sg.n = len == at ? i : i + 1;
      return;
    }
    at += l;
  }
}

/** Inserts an iovec at index `i` (caller checked capacity). */
function insertAt(sg: Sg, i: u32, wasm: usize, len: u32): void {
  const at = <usize>sg.iov + <usize>i * IOV_SIZE;
  memory.copy(at + IOV_SIZE, at, <usize>(sg.n - i) * IOV_SIZE);
  sg.n++;
  setIov(sg, i, wasm, len);
}

/**
 * Makes bytes [off, off + len) of the frame read from `patch` instead, without touching the
 * guest's buffer (the device must not write device-readable buffers, virtio 1.2, 2.7.4.1).
 * Splits iovecs as needed, at most two more. Returns false if `cap` would be exceeded or the
 * range is not inside the frame.
 */
export function sgPatch(sg: Sg, cap: u32, off: u32, len: u32, patch: usize): bool {
  if (sg.n + 3 > cap) return false;
  // Split so that [off, off + len) covers whole iovecs, then replace those by one.
  if (!splitAt(sg, off) || !splitAt(sg, off + len)) return false;
  let at: u32 = 0;
  let first: u32 = 0;
  while (first < sg.n && at < off) { at += iovLen(sg, first); first++; }
  let last = first;
  let covered: u32 = 0;
  while (last < sg.n && covered < len) { covered += iovLen(sg, last); last++; }
  if (covered != len) return false;
  const removed = last - first;
  const base = <usize>sg.iov;
  memory.copy(base + <usize>(first + 1) * IOV_SIZE, base + <usize>last * IOV_SIZE, <usize>(sg.n - last) * IOV_SIZE);
  sg.n = sg.n - removed + 1;
  setIov(sg, first, patch, len);
  return true;
}

/** Ensures an iovec boundary at logical offset `off` (0 < off <= total). */
function splitAt(sg: Sg, off: u32): bool {
  let at: u32 = 0;
  for (let i: u32 = 0; i < sg.n; i++) {
    const l = iovLen(sg, i);
    if (off == at) return true;
    if (off < at + l) {
      const b = iovBase(sg, i);
      const head = off - at;
      setIov(sg, i, b, head);
      insertAt(sg, i + 1, b + head, l - head);
      return true;
    }
    at += l;
  }
  return off == at;
}

/** Reads a network-order u16 at logical offset `off` (0 if out of range; callers check bounds first). */
export function sgRead16be(sg: Sg, off: u32, scratch: usize): u32 {
  const p = sgContig(sg, off, 2);
  if (p != 0) return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p, 1);
  store<u16>(scratch, 0);
  sgRead(sg, off, scratch, 2);
  return (<u32>load<u8>(scratch) << 8) | <u32>load<u8>(scratch, 1);
}

/** Stores `v` as the little-endian u16 `v` (i.e. its bytes in memory order) at logical offset `off`. */
export function sgStore16(sg: Sg, off: u32, v: u16, scratch: usize): void {
  const p = sgContig(sg, off, 2);
  if (p != 0) { store<u16>(p, v); return; }
  store<u16>(scratch, v);
  sgWrite(sg, off, scratch, 2);
}

/**
 * Writes iovecs describing logical bytes [off, off + len) of `sg` to `out` (entries keep the
 * list's native bases), at most `cap`. Returns the number written.
 */
export function sgSliceIov(sg: Sg, off: u32, len: u32, out: usize, cap: u32): u32 {
  let n: u32 = 0;
  let done: u32 = 0;
  for (let i: u32 = 0; i < sg.n && done < len && n < cap; i++) {
    const l = iovLen(sg, i);
    if (off >= l) { off -= l; continue; }
    let take = l - off;
    if (take > len - done) take = len - done;
    iovecSet(out, n, iovecAt(sg.iov, i).base + <u64>off, take);
    n++;
    done += take;
    off = 0;
  }
  return n;
}
