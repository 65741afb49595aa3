// Split virtqueue layout (virtio 1.2, 2.7). Wasm is little-endian, as virtio 1.x rings are,
// so every field is a plain load/store at the offsets below.
//
//   descriptor table (align 16)     available ring (align 2)          used ring (align 4)
//   ┌──────────────┐                ┌────────┬────────┐               ┌────────┬────────┐
//   │ addr    u64  │ 0              │flags u16│idx u16 │ 0            │flags u16│idx u16 │ 0
//   │ len     u32  │ 8              ├────────┴────────┤               ├─────────────────┤
//   │ flags   u16  │ 12             │ ring[N]   u16   │ 4            │ ring[N] {id u32, │ 4
//   │ next    u16  │ 14             ├─────────────────┤               │          len u32}│
//   └──────────────┘ × N            │ used_event u16  │ 4 + 2N       ├─────────────────┤
//                                   └─────────────────┘               │ avail_event u16 │ 4 + 8N
//                                                                     └─────────────────┘

// @ts-ignore: decorator
@inline export const DESC_SIZE: u32 = 16;
// @ts-ignore: decorator
@inline export const DESC_ADDR: u32 = 0;
// @ts-ignore: decorator
@inline export const DESC_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const DESC_FLAGS: u32 = 12;
// @ts-ignore: decorator
@inline export const DESC_NEXT: u32 = 14;

// @ts-ignore: decorator
@inline export const DESC_F_NEXT: u16 = 1;
// @ts-ignore: decorator
@inline export const DESC_F_WRITE: u16 = 2;
// @ts-ignore: decorator
@inline export const DESC_F_INDIRECT: u16 = 4;

// @ts-ignore: decorator
@inline export const RING_FLAGS: u32 = 0;
// @ts-ignore: decorator
@inline export const RING_IDX: u32 = 2;
// @ts-ignore: decorator
@inline export const RING_ENTRIES: u32 = 4;
// @ts-ignore: decorator
@inline export const USED_ELEM_SIZE: u32 = 8;

/** VRING_AVAIL_F_NO_INTERRUPT: the driver asks for no used-buffer notifications. */
// @ts-ignore: decorator
@inline export const AVAIL_F_NO_INTERRUPT: u16 = 1;
/** VRING_USED_F_NO_NOTIFY: the device asks for no available-buffer notifications. */
// @ts-ignore: decorator
@inline export const USED_F_NO_NOTIFY: u16 = 1;

/** Bytes of the descriptor table for a queue of `n` entries. */
// @ts-ignore: decorator
@inline export function descTableBytes(n: u32): u64 { return <u64>n * DESC_SIZE; }
/** Bytes of the available ring including used_event. */
// @ts-ignore: decorator
@inline export function availBytes(n: u32): u64 { return 6 + 2 * <u64>n; }
/** Bytes of the used ring including avail_event. */
// @ts-ignore: decorator
@inline export function usedBytes(n: u32): u64 { return 6 + <u64>USED_ELEM_SIZE * n; }

/**
 * vring_need_event (virtio 1.2, 2.7.10): true if `eventIdx` lies in [old, newIdx) modulo 2^16,
 * i.e. the other side asked to be notified somewhere in the range just published.
 */
// @ts-ignore: decorator
@inline export function needEvent(eventIdx: u32, newIdx: u32, old: u32): bool {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/** An iovec as the host's readv/writev take it: { u64 base; u64 len } (native addresses). */
@unmanaged
export class Iovec {
  base: u64;
  len: u64;
}

// @ts-ignore: decorator
@inline export const IOV_SIZE: u32 = 16;

/** Entry `i` of the iovec array at `array`. */
// @ts-ignore: decorator
@inline export function iovecAt(array: usize, i: u32 = 0): Iovec {
  return changetype<Iovec>(array + <usize>i * IOV_SIZE);
}

/** Sets entry `i` of the iovec array at `array`. */
// @ts-ignore: decorator
@inline export function iovecSet(array: usize, i: u32, base: u64, len: u64): void {
  const v = iovecAt(array, i);
  v.base = base;
  v.len = len;
}
