// Descriptor chain walking (virtio 1.2, 2.7.5 and 2.7.5.3): turns the chain at a head into
// iovecs pointing at guest RAM, checking every address and length against the guest memory
// table. The walk is bounded: at most N hops in the descriptor table, at most the table size
// in an indirect table, so a looping chain ends in RESET_CHAIN_LOOP instead of a hang.

import { Layout, Metric } from "../abi";
import { regionAddr, regionFind, regionRemaining, translate } from "../mem/guest";
import {
  DESC_ADDR, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, DESC_FLAGS, DESC_LEN, DESC_NEXT,
  DESC_SIZE, iovecSet, IOV_SIZE,
} from "./layout";
import { Virtqueue } from "./queue";
import { packedToken, PDESC_FLAGS, PDESC_ID } from "./packed";

/** Walk parameters and results, kept in the state block. */
@unmanaged
export class ChainWalk {
  /** In: Wasm address of the iovec array to append to. */
  iov: u32;
  /** In: index of the first free iovec. */
  first: u32;
  /** In: capacity of the array. */
  cap: u32;
  /**
   * In: 1 to expect device-writable buffers (RX), 0 for device-readable (TX), WALK_MIXED for
   * readable buffers followed by writable ones (a control command and its answer).
   */
  writable: u32;
  /** In: 1 if VIRTIO_F_INDIRECT_DESC was negotiated. */
  indirect: u32;
  /** Out (WALK_MIXED): index of the first writable iovec (the end if none). */
  split: u32;
  /** Out: the buffer's token for queueAddUsed / queueUnpop (split: the head; packed: id and descriptor count). */
  token: u32;
  /** During a walk: the direction the next buffer must have (DESC_F_WRITE or 0). */
  wantWrite: u32;
  /** In: added to every Wasm address written into an iovec (the memory's native address, or 0). */
  nativeBase: u64;
  /** Out: total bytes of the chain. */
  total: u64;
  /** Out (WALK_MIXED): bytes of the readable part. */
  readBytes: u64;
}

/** ChainWalk.writable for a chain of readable then writable buffers (virtio 1.2, 2.7.4.2). */
// @ts-ignore: decorator
@inline export const WALK_MIXED: u32 = 2;

/** Walk result when the chain has more buffers than the iovec array holds (frame-level drop). */
// @ts-ignore: decorator
@inline export const WALK_TOO_MANY: i32 = -1;

/**
 * Appends the buffers of `[addr, addr + len)` to the iovecs, split at region boundaries.
 * Returns the new iovec count, WALK_TOO_MANY, or -(Metric.RESET_DESC_ADDR).
 */
function appendBuffer(mem: usize, w: ChainWalk, n: u32, addr: u64, len: u64): i32 {
  while (len != 0) {
    const rp = regionFind(mem, addr);
    if (rp == 0) return -Metric.RESET_DESC_ADDR;
    let piece = regionRemaining(rp, addr);
    if (piece > len) piece = len;
    if (n >= w.cap) return WALK_TOO_MANY;
    iovecSet(w.iov, n, w.nativeBase + <u64>regionAddr(rp, addr), piece);
    n++;
    addr += piece;
    len -= piece;
  }
  return <i32>n;
}

/** Starts a walk: no bytes yet, the direction the first buffer must have, no split seen. */
function walkStart(w: ChainWalk): void {
  w.total = 0;
  w.wantWrite = w.writable == 1 ? DESC_F_WRITE : 0;
  w.split = 0xffffffff;
  w.readBytes = 0;
}

/**
 * One buffer of a chain, either layout: its direction (virtio 1.2, 2.7.4.2 / 2.8.4: RX chains
 * all device-writable, TX chains all device-readable, elsewhere the writable buffers after the
 * readable ones), the 4 GiB bound (2.7.5.2), and its iovecs unless `append` is false. Returns
 * the new iovec count, WALK_TOO_MANY, or -(Metric.RESET_*).
 */
function takeBuffer(mem: usize, w: ChainWalk, n: u32, addr: u64, len: u32, flags: u16, append: bool): i32 {
  if (<u32>(flags & DESC_F_WRITE) != w.wantWrite) {
    if (w.writable != WALK_MIXED || w.wantWrite != 0) return -Metric.RESET_DIRECTION;
    w.wantWrite = DESC_F_WRITE;
    w.split = n;
    w.readBytes = w.total;
  }
  w.total += len;
  if (w.total >= 0x1_0000_0000) return -Metric.RESET_CHAIN_TOO_BIG;
  return append ? appendBuffer(mem, w, n, addr, len) : <i32>n;
}

/** Ends a walk: an empty chain is malformed; a chain with no writable part splits at its end. */
function walkEnd(w: ChainWalk, n: u32): i32 {
  if (w.total == 0) return -Metric.RESET_ZERO_LENGTH;
  if (w.writable == WALK_MIXED && w.split == 0xffffffff) {
    w.split = n;
    w.readBytes = w.total;
  }
  return <i32>(n - w.first);
}

/**
 * Walks the chain at `head`. Returns the number of iovecs appended (may be 0 only if the
 * caller treats that as a fault), WALK_TOO_MANY, or -(Metric.RESET_*) for a malformed chain:
 * an index out of range, an unmapped buffer, a loop, a nested or unnegotiated indirect
 * table, a buffer of the wrong direction, an empty chain or one of 4 GiB or more.
 */
export function walkChain(q: Virtqueue, mem: usize, head: u32, w: ChainWalk): i32 {
  if (q.packed != 0) return walkPacked(q, mem, head, w);
  w.token = head;
  let table: usize = q.desc;
  let tableSize: u32 = q.size;
  let idx = head;
  let ttl = tableSize;
  let inIndirect = false;
  let n = w.first;
  walkStart(w);

  while (true) {
    // Guard against infinitely looping chains: each table is walked at most once per entry.
    if (ttl == 0) return -Metric.RESET_CHAIN_LOOP;
    ttl--;
    if (idx >= tableSize) return -Metric.RESET_DESC_INDEX;
    const d = table + <usize>idx * DESC_SIZE;
    const addr = load<u64>(d, DESC_ADDR);
    const len = load<u32>(d, DESC_LEN);
    const flags = load<u16>(d, DESC_FLAGS);

    if ((flags & DESC_F_INDIRECT) != 0) {
      // virtio 1.2, 2.7.5.3.1: no INDIRECT inside an indirect table, never with NEXT,
      // and only if negotiated.
      if (inIndirect) return -Metric.RESET_NESTED_INDIRECT;
      if (w.indirect == 0) return -Metric.RESET_INDIRECT_UNNEGOTIATED;
      if ((flags & DESC_F_NEXT) != 0) return -Metric.RESET_NESTED_INDIRECT;
      if (len == 0 || (len & (DESC_SIZE - 1)) != 0 || len / DESC_SIZE > <u32>Layout.MAX_QUEUE_SIZE) {
        return -Metric.RESET_INDIRECT_LEN;
      }
      const t = translate(mem, addr, len);
      if (t == 0) return -Metric.RESET_DESC_ADDR;
      table = t;
      tableSize = len / DESC_SIZE;
      ttl = tableSize;
      idx = 0;
      inIndirect = true;
      continue;
    }

    const r = takeBuffer(mem, w, n, addr, len, flags, true);
    if (r < 0) return r;
    n = <u32>r;

    if ((flags & DESC_F_NEXT) == 0) break;
    idx = <u32>load<u16>(d, DESC_NEXT);
  }
  return walkEnd(w, n);
}

/**
 * The packed-ring walk (virtio 1.2, 2.8.6-2.8.8): the buffer's descriptors sit at consecutive
 * positions from `pos` (wrapping), linked by NEXT; its id is in the last one; an INDIRECT
 * descriptor stands alone for a table of descriptors walked in order. Same checks as the split
 * walk, and the chain cannot be longer than the ring. Takes the buffer off the ring (the next
 * available position moves past it) and sets w.token, also when its buffers do not fit the
 * iovec array (WALK_TOO_MANY: the caller completes it unused).
 */
function walkPacked(q: Virtqueue, mem: usize, pos: u32, w: ChainWalk): i32 {
  let wrap = q.availWrap;
  let n = w.first;
  let descs: u32 = 0;
  let id: u32 = 0;
  let tooMany = false;
  walkStart(w);
  let inTable = false;
  let table: usize = 0;
  let tableLeft: u32 = 0;
  while (true) {
    let addr: u64;
    let len: u32;
    let flags: u16;
    if (inTable) {
      addr = load<u64>(table, DESC_ADDR);
      len = load<u32>(table, DESC_LEN);
      flags = load<u16>(table, PDESC_FLAGS);
      if ((flags & DESC_F_INDIRECT) != 0) return -Metric.RESET_NESTED_INDIRECT;
      table += DESC_SIZE;
      tableLeft--;
    } else {
      if (descs == q.size) return -Metric.RESET_CHAIN_LOOP;
      const d = <usize>q.desc + <usize>pos * DESC_SIZE;
      addr = load<u64>(d, DESC_ADDR);
      len = load<u32>(d, DESC_LEN);
      flags = load<u16>(d, PDESC_FLAGS);
      id = <u32>load<u16>(d, PDESC_ID);
      descs++;
      if (++pos == q.size) { pos = 0; wrap ^= 1; }
      if ((flags & DESC_F_INDIRECT) != 0) {
        // virtio 1.2, 2.8.8: only if negotiated, never with NEXT, a whole number of descriptors.
        if (w.indirect == 0) return -Metric.RESET_INDIRECT_UNNEGOTIATED;
        if ((flags & DESC_F_NEXT) != 0) return -Metric.RESET_NESTED_INDIRECT;
        if (len == 0 || (len & (DESC_SIZE - 1)) != 0 || len / DESC_SIZE > <u32>Layout.MAX_QUEUE_SIZE) return -Metric.RESET_INDIRECT_LEN;
        table = translate(mem, addr, len);
        if (table == 0) return -Metric.RESET_DESC_ADDR;
        tableLeft = len / DESC_SIZE;
        inTable = true;
        continue;
      }
    }
    // Past the iovec array's end the walk goes on without appending, to find the buffer's id.
    const r = takeBuffer(mem, w, n, addr, len, flags, !tooMany);
    if (r == WALK_TOO_MANY) tooMany = true;
    else if (r < 0) return r;
    else n = <u32>r;
    // The chain ends with an indirect table's last entry, or a ring descriptor without NEXT.
    if (inTable ? tableLeft == 0 : (flags & DESC_F_NEXT) == 0) break;
  }
  if (id >= q.size) return -Metric.RESET_HEAD_INDEX;
  const r = walkEnd(w, n);
  if (r < 0) return r;
  q.nextAvail = pos;
  q.availWrap = wrap;
  w.token = packedToken(id, descs);
  return tooMany ? WALK_TOO_MANY : r;
}
