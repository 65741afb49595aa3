// A virtqueue: indices and addresses only. The ring itself lives in guest RAM; every access
// goes through the Wasm addresses resolved (and bounds-checked) by queueResolve(), which
// re-runs whenever the guest memory table changes. Split rings (virtio 1.2, 2.7) are here;
// packed rings (2.8) are virtq/packed.ts, and each operation below hands them over there.
//
// A popped buffer is known to the data path by a token: the head index for a split ring, the
// buffer id and the number of descriptors it took for a packed one (packedToken).

import { Layout, Metric } from "../abi";
import { GuestMemory, translate } from "../mem/guest";
import {
  packedAddUsed, packedBuffersAvailable, packedDisableNotify, packedEnableNotify, packedPeek, packedPublish, packedUnpop, EVENT_BYTES,
} from "./packed";
import {
  availBytes, descTableBytes, needEvent, usedBytes, AVAIL_F_NO_INTERRUPT, RING_ENTRIES,
  RING_FLAGS, RING_IDX, USED_ELEM_SIZE, USED_F_NO_NOTIFY,
} from "./layout";

/** Per-queue state, kept in the state block. */
@unmanaged
export class Virtqueue {
  /** 1 for a packed ring (VIRTIO_F_RING_PACKED negotiated when the queue was enabled). */
  packed: u32;
  /** Packed: the wrap counters of the next available and next used positions (start at 1). */
  availWrap: u32;
  usedWrap: u32;
  /** Packed: the used position (| wrap << 15) when the driver was last considered for an interrupt. */
  signalled: u32;
  /** Where to resume at the next enable, as vhost-user's SET_VRING_BASE gives it, once set. */
  resume: u32;
  resumeSet: u32;
  /** Packed: enabled at least once since reset (its positions are live). */
  started: u32;
  /** Queue size N (power of two, 1..32768), 0 while unset. */
  size: u32;
  /** Driver enabled the queue (queue_enable / vhost-user ring started). */
  enabled: u32;
  /** A malformed ring was seen: the queue is stopped until reset. */
  broken: u32;
  /** GuestMemory.gen the cached Wasm addresses were resolved for (0 = not resolved). */
  memGen: u32;
  descGpa: u64;
  availGpa: u64;
  usedGpa: u64;
  /** Wasm addresses of the three parts, valid when memGen matches. */
  desc: u32;
  avail: u32;
  used: u32;
  /** Next available-ring slot to consume (split: free-running, u16 arithmetic; packed: a position 0..N-1). */
  nextAvail: u32;
  /** Next used-ring slot to fill (split: free-running, u16 arithmetic; packed: a position 0..N-1). */
  nextUsed: u32;
  /** Used entries written since the last publish. */
  numAdded: u32;
  /** 1 while the device has asked the driver not to notify (VRING_USED_F_NO_NOTIFY). */
  notifyOff: u32;
  /** 1 while the host polls the ring: notifications stay off even when it runs dry. */
  polling: u32;
}

/** Return of queuePop when the ring has nothing new. Errors are -(Metric.RESET_*). */
// @ts-ignore: decorator
@inline export const POP_EMPTY: i32 = -1;

/** Returns the queue to its reset state (addresses and size cleared). */
export function queueReset(q: Virtqueue): void {
  memory.fill(changetype<usize>(q), 0, offsetof<Virtqueue>());
}

/** Whether `n` is an acceptable queue size: a power of 2 for a split ring, any size for a packed one (virtio 1.2, 2.7 / 2.8). */
export function queueSizeValid(n: u32, packed: bool = false): bool {
  return n != 0 && n <= <u32>Layout.MAX_QUEUE_SIZE && (packed || (n & (n - 1)) == 0);
}

/**
 * Resolves the ring addresses to Wasm addresses if the memory table changed since the last
 * call. Returns 0 or -(Metric.RESET_RING_ADDR) when a part is unmapped or misaligned
 * (virtio 1.2, 2.7: descriptor table 16, available ring 2, used ring 4).
 */
export function queueResolve(q: Virtqueue, mem: usize): i32 {
  const gen = changetype<GuestMemory>(mem).gen;
  if (q.memGen == gen && gen != 0) return 0;
  const n = q.size;
  // Packed: the descriptor ring (16), then the driver and device event areas (4 each).
  const p = q.packed != 0;
  if ((q.descGpa & 15) != 0 || (q.availGpa & (p ? 3 : 1)) != 0 || (q.usedGpa & 3) != 0) return -Metric.RESET_RING_ADDR;
  const d = translate(mem, q.descGpa, descTableBytes(n));
  const a = translate(mem, q.availGpa, p ? EVENT_BYTES : availBytes(n));
  const u = translate(mem, q.usedGpa, p ? EVENT_BYTES : usedBytes(n));
  // Atomic accesses to idx fields trap if misaligned in Wasm memory, whatever the gpa was.
  if (d == 0 || a == 0 || u == 0 || (a & 1) != 0 || (u & 3) != 0) return -Metric.RESET_RING_ADDR;
  q.desc = <u32>d;
  q.avail = <u32>a;
  q.used = <u32>u;
  q.memGen = gen;
  return 0;
}

/** The driver's available index (acquire: entries before it are visible after this load). */
// @ts-ignore: decorator
@inline export function availIdx(q: Virtqueue): u32 {
  return <u32>atomic.load<u16>(q.avail, RING_IDX);
}

/**
 * Takes the next available head. Returns the head index, POP_EMPTY, or -(Metric.RESET_*)
 * when the ring is malformed: the index moved by more than the queue size, or the head is
 * out of range.
 */
export function queuePop(q: Virtqueue): i32 {
  if (q.packed != 0) return packedPeek(q);
  const idx = availIdx(q);
  const pending = (idx - q.nextAvail) & 0xffff;
  if (pending == 0) return POP_EMPTY;
  // virtio 1.2, 2.7.13.3: the driver never has more than N buffers outstanding.
  if (pending > q.size) return -Metric.RESET_AVAIL_JUMP;
  const slot = q.nextAvail & (q.size - 1);
  const head = <u32>load<u16>(q.avail + RING_ENTRIES + 2 * slot);
  if (head >= q.size) return -Metric.RESET_HEAD_INDEX;
  q.nextAvail = (q.nextAvail + 1) & 0xffff;
  return <i32>head;
}

/** Gives back the buffer taken last (it was not used; the driver still owns it on our side). */
export function queueUnpop(q: Virtqueue, token: u32): void {
  if (q.packed != 0) packedUnpop(q, token);
  else q.nextAvail = (q.nextAvail - 1) & 0xffff;
}

/**
 * Writes a used element for the buffer `token` (walkChain's ChainWalk.token); a split ring's
 * becomes visible to the driver at the next queuePublish(), a packed ring's at once.
 */
export function queueAddUsed(q: Virtqueue, token: u32, len: u32): void {
  if (q.packed != 0) { packedAddUsed(q, token, len); return; }
  const head = token;
  const slot = q.nextUsed & (q.size - 1);
  const e = q.used + RING_ENTRIES + USED_ELEM_SIZE * slot;
  store<u32>(e, head, 0);
  store<u32>(e, len, 4);
  q.nextUsed = (q.nextUsed + 1) & 0xffff;
  q.numAdded++;
}

/**
 * Publishes every used element added since the last call with one used-idx store, and says
 * whether the driver wants a used-buffer notification for them (virtio 1.2, 2.7.7.2 and 2.7.10).
 * Returns 1 (notify), 0 (suppressed) or -1 (nothing was published).
 */
export function queuePublish(q: Virtqueue, eventIdx: bool): i32 {
  if (q.packed != 0) return packedPublish(q, eventIdx);
  if (q.numAdded == 0) return -1;
  const newIdx = q.nextUsed;
  const old = (newIdx - q.numAdded) & 0xffff;
  q.numAdded = 0;
  // Release: the used elements above are visible before the index. The seq-cst store also
  // orders the read of used_event / flags below after it (the "full barrier" of 2.7.10).
  atomic.store<u16>(q.used, <u16>newIdx, RING_IDX);
  if (eventIdx) {
    const usedEvent = <u32>atomic.load<u16>(q.avail + RING_ENTRIES + 2 * q.size);
    return needEvent(usedEvent, newIdx, old) ? 1 : 0;
  }
  return (atomic.load<u16>(q.avail, RING_FLAGS) & AVAIL_F_NO_INTERRUPT) != 0 ? 0 : 1;
}

/**
 * Asks the driver to notify on new buffers again (avail_event with EVENT_IDX, else clears
 * NO_NOTIFY), then re-reads the available index so a buffer added in between is not missed.
 * Returns true if there is already more to do.
 */
export function queueEnableNotify(q: Virtqueue, eventIdx: bool): bool {
  if (q.packed != 0) return packedEnableNotify(q, eventIdx);
  if (eventIdx) {
    atomic.store<u16>(q.used + RING_ENTRIES + USED_ELEM_SIZE * q.size, <u16>q.nextAvail);
  } else if (q.notifyOff != 0) {
    atomic.store<u16>(q.used, 0, RING_FLAGS);
  }
  q.notifyOff = 0;
  return availIdx(q) != q.nextAvail;
}

/**
 * Tells the driver notifications are not needed while the device is working through the
 * ring. With EVENT_IDX a stale avail_event already does that, so nothing is written.
 */
export function queueDisableNotify(q: Virtqueue, eventIdx: bool): void {
  if (q.packed != 0) { packedDisableNotify(q); return; }
  if (q.notifyOff != 0) return;
  q.notifyOff = 1;
  if (!eventIdx) atomic.store<u16>(q.used, USED_F_NO_NOTIFY, RING_FLAGS);
}

/** Whether at least `want` buffers are available beyond the ones taken. */
export function queueBuffersAvailable(q: Virtqueue, want: u32): bool {
  if (q.packed != 0) return packedBuffersAvailable(q, want);
  return ((availIdx(q) - q.nextAvail) & 0xffff) >= want;
}
