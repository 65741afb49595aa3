// Packed virtqueues (virtio 1.2, 2.8): one ring of descriptors that the driver makes available
// and the device marks used in place, with a wrap counter on each side instead of indices, and
// an event suppression structure in each direction.
//
//   descriptor ring (align 16)                          driver / device area (align 4)
//   ┌──────────┬─────────┬────────┬───────────┐          ┌──────────────┬───────────┐
//   │ addr u64 │ len u32 │ id u16 │ flags u16 │ × N      │ off_wrap u16 │ flags u16 │
//   └──────────┴─────────┴────────┴───────────┘          └──────────────┴───────────┘
//
// A descriptor is available when its AVAIL flag equals the driver's wrap counter and its USED
// flag does not; the device writes a used descriptor (buffer id, length, both flags equal to
// its own wrap counter) at its next used position and moves on by the number of descriptors
// the buffer took. The device owns the positions between its used and its available position.

import { Virtqueue, POP_EMPTY } from "./queue";

// @ts-ignore: decorator
@inline export const PDESC_ID: u32 = 12;
// @ts-ignore: decorator
@inline export const PDESC_FLAGS: u32 = 14;
// @ts-ignore: decorator
@inline export const PDESC_F_AVAIL: u16 = 1 << 7;
// @ts-ignore: decorator
@inline export const PDESC_F_USED: u16 = 1 << 15;
// @ts-ignore: decorator
@inline const DESC_F_WRITE: u16 = 2;
/** Event suppression flags (virtio 1.2, 2.8.10). */
// @ts-ignore: decorator
@inline const EVENT_ENABLE: u16 = 0;
// @ts-ignore: decorator
@inline const EVENT_DISABLE: u16 = 1;
// @ts-ignore: decorator
@inline const EVENT_DESC: u16 = 2;
// @ts-ignore: decorator
@inline const EVENT_OFF_WRAP: u32 = 0;
// @ts-ignore: decorator
@inline const EVENT_FLAGS: u32 = 2;

/** Bytes of an event suppression structure. */
// @ts-ignore: decorator
@inline export const EVENT_BYTES: u64 = 4;

/** The token of a packed buffer: its id, and how many ring descriptors it took. */
// @ts-ignore: decorator
@inline export function packedToken(id: u32, descs: u32): u32 { return id | (descs << 16); }
// @ts-ignore: decorator
@inline function tokenId(t: u32): u32 { return t & 0xffff; }
// @ts-ignore: decorator
@inline function tokenDescs(t: u32): u32 { return t >>> 16; }

/** Whether the descriptor at `pos` is available in the driver's wrap `wrap` (acquire). */
export function availableAt(q: Virtqueue, pos: u32, wrap: u32): bool {
  const f = atomic.load<u16>(q.desc + pos * 16 + PDESC_FLAGS);
  const avail: u32 = (f & PDESC_F_AVAIL) != 0 ? 1 : 0;
  const used: u32 = (f & PDESC_F_USED) != 0 ? 1 : 0;
  return avail == wrap && used != wrap;
}

/** The position of the next available buffer, or POP_EMPTY. The walk (walkChain) consumes it. */
export function packedPeek(q: Virtqueue): i32 {
  return availableAt(q, q.nextAvail, q.availWrap) ? <i32>q.nextAvail : POP_EMPTY;
}

/** Gives back a buffer taken last (its descriptors become the next available again). */
export function packedUnpop(q: Virtqueue, token: u32): void {
  const n = tokenDescs(token);
  if (n > q.nextAvail) {
    q.nextAvail += q.size - n;
    q.availWrap ^= 1;
  } else {
    q.nextAvail -= n;
  }
}

/**
 * The next available position and wrap (pos | wrap << 15) as if the last `descs` descriptors
 * taken were given back (buffers held and not used: the RX pool).
 */
export function packedAvailBefore(q: Virtqueue, descs: u32): u32 {
  let pos = q.nextAvail;
  let wrap = q.availWrap;
  descs %= q.size * 2;
  if (descs > pos) {
    pos += q.size;
    wrap ^= 1;
    if (descs > pos) { pos += q.size; wrap ^= 1; }
  }
  return (pos - descs) | (wrap << 15);
}

/**
 * Writes the used descriptor of buffer `token` (`len` bytes written into it) at the next used
 * position: id and length first, then the flags with release ordering (virtio 1.2, 2.8.21),
 * so the driver sees the buffer used only with its length in place.
 */
export function packedAddUsed(q: Virtqueue, token: u32, len: u32): void {
  const d = q.desc + q.nextUsed * 16;
  store<u32>(d, len, 8);
  store<u16>(d, <u16>tokenId(token), PDESC_ID);
  const wrap: u16 = q.usedWrap != 0 ? PDESC_F_AVAIL | PDESC_F_USED : 0;
  atomic.store<u16>(d + PDESC_FLAGS, wrap | (len != 0 ? DESC_F_WRITE : 0));
  q.nextUsed += tokenDescs(token);
  if (q.nextUsed >= q.size) {
    q.nextUsed -= q.size;
    q.usedWrap ^= 1;
  }
  q.numAdded++;
}

/**
 * Whether the driver wants a used-buffer notification for the used descriptors written since
 * the last call (its event suppression structure, virtio 1.2, 2.8.10): 1, 0, or -1 when none
 * were written.
 */
export function packedPublish(q: Virtqueue, eventIdx: bool): i32 {
  if (q.numAdded == 0) return -1;
  q.numAdded = 0;
  const old = q.signalled;
  const now = q.nextUsed | (q.usedWrap << 15);
  q.signalled = now;
  // The seq-cst load orders this read after the used flags written above.
  const flags = atomic.load<u16>(q.avail + EVENT_FLAGS);
  if (flags == EVENT_DISABLE) return 0;
  if (flags != EVENT_DESC || !eventIdx) return 1;
  // The driver asks for a notification when the used descriptor at off_wrap is written:
  // vring_need_event over positions, with off moved back by N if it is in the other lap.
  const offWrap = <u32>load<u16>(q.avail + EVENT_OFF_WRAP);
  let off = <i32>(offWrap & 0x7fff);
  if ((offWrap >> 15) != q.usedWrap) off -= <i32>q.size;
  const newIdx = <i32>(now & 0x7fff);
  let oldIdx = <i32>(old & 0x7fff);
  // The range just written crossed the end of the ring (as DPDK's vhost does).
  if (newIdx <= oldIdx) oldIdx -= <i32>q.size;
  return <u32>((newIdx - off - 1) & 0xffff) < <u32>((newIdx - oldIdx) & 0xffff) ? 1 : 0;
}

/**
 * Asks the driver to notify again (the device area: at the next available position with
 * EVENT_IDX, else on every buffer), then looks once more. True if a buffer is already there.
 */
export function packedEnableNotify(q: Virtqueue, eventIdx: bool): bool {
  if (eventIdx) {
    store<u16>(q.used + EVENT_OFF_WRAP, <u16>(q.nextAvail | (q.availWrap << 15)));
    atomic.store<u16>(q.used + EVENT_FLAGS, EVENT_DESC);
  } else if (q.notifyOff != 0) {
    atomic.store<u16>(q.used + EVENT_FLAGS, EVENT_ENABLE);
  }
  q.notifyOff = 0;
  return availableAt(q, q.nextAvail, q.availWrap);
}

/** Tells the driver notifications are not needed while the device works through the ring. */
export function packedDisableNotify(q: Virtqueue): void {
  if (q.notifyOff != 0) return;
  q.notifyOff = 1;
  atomic.store<u16>(q.used + EVENT_FLAGS, EVENT_DISABLE);
}

/**
 * Whether at least `want` buffers are available from the next position (buffers, not
 * descriptors: a chain counts once at its last descriptor). Reads at most the whole ring.
 */
export function packedBuffersAvailable(q: Virtqueue, want: u32): bool {
  let pos = q.nextAvail;
  let wrap = q.availWrap;
  let buffers: u32 = 0;
  for (let i: u32 = 0; i < q.size && buffers < want; i++) {
    if (!availableAt(q, pos, wrap)) return false;
    if ((load<u16>(q.desc + pos * 16 + PDESC_FLAGS) & 1) == 0) buffers++; // no NEXT: the chain ends here
    if (++pos == q.size) { pos = 0; wrap ^= 1; }
  }
  return buffers >= want;
}
