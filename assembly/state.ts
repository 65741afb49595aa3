// The state block: all mutable state of one device, at an address the host chooses.
//
// The core keeps nothing anywhere else (no globals, no data segments, no heap), so several
// devices can live in one memory, an emulator's memory can host one, and instantiating the
// module writes nothing. Layout (offsets from the block's start, each 16-byte aligned):
//
//   ┌───────────────┬─────────────┬──────────────┬───────────────────┬────────────┐
//   │ Device        │ GuestMemory │ Virtqueue×3 │ metrics u64×N×3   │ ChainWalk  │
//   ├───────────────┼─────────────┼──────────────┼───────────────────┼────────────┤
//   │ Parsed        │ Sg tx/rx/rxChain/tool │ headers & scratch │ parse scratch   │
//   ├───────────────┴───────────────────────┴───────────────────┴─────────────────┤
//   │ txIov[MAX_IOV] │ rxIov[MAX_IOV] │ rxChain[MAX_IOV] │ toolIov[64]              │
//   ├──────────────────────────────────────────────────────────────────────────────┤
//   │ SegPlan, segment headers, segIov[MAX_IOV+2] │ RX pool │ staging (64 KiB frame) │
//   ├──────────────────────────────────────────────────────────────────────────────┤
//   │ forwarding table │ RxFilter, MAC table, VLAN bitmap │ control command iovecs   │
//   └──────────────────────────────────────────────────────────────────────────────┘
//
// Queues 0 and 1 are the pair's RX and TX, queue 2 the control queue (QueueIndex).

import { Ctrl, Forward, Layout, MetricCount } from "./abi";
import { GUEST_MEMORY_SIZE } from "./mem/guest";
import { Virtqueue } from "./virtq/queue";
import { ChainWalk } from "./virtq/chain";
import { IOV_SIZE } from "./virtq/layout";
import { Parsed, PARSE_MAX } from "./net/parse";
import { Sg } from "./net/sg";

/** Marks an initialised state block ("vnw1"). */
// @ts-ignore: decorator
@inline export const MAGIC: u32 = 0x31776e76;

/** Device-wide state. */
@unmanaged
export class Device {
  magic: u32;
  layout: u32;
  /** Device status register (virtio 1.2, 2.1). */
  status: u32;
  /** DeviceEvent bits not yet taken by the host. */
  events: u32;
  offered: u64;
  driver: u64;
  /** Valid once FEATURES_OK was accepted. */
  negotiated: u64;
  /** Native address of Wasm address 0, added to iovec bases (0 for hosts without native I/O). */
  nativeBase: u64;
  /** MAC bytes in memory order in the low 48 bits. */
  mac: u64;
  mtu: u32;
  linkUp: u32;
  backend: u32;
  csumPolicy: u32;
  lockedMac: u32;
  /** virtio_net_hdr size the driver uses: 12 with VERSION_1 or MRG_RXBUF, else 10. */
  hdrLen: u32;
  /** TX head popped by txNext and not yet completed, or -1. */
  txHead: i32;
  txFrameLen: u32;
  /** Offset from the state block of the first iovec of the pending TX frame. */
  txIovStart: u32;
  rxHead: i32;
  /** Bytes of the pending RX chain. */
  rxCap: u32;
  /** Offset from the state block of the first iovec for the host's readv. */
  rxIovStart: u32;
  rxIovCount: u32;
  /** GSO types the backend takes whole (bit per NetHdr.GSO_* value, ECN as bit 7). */
  backendGso: u32;
  /** 1 between a txNext() that handed out a frame and its txDone(). */
  txAwait: u32;
  /** RX chains popped and held for the next frames (the pool), their iovecs and bytes. */
  rxPoolN: u32;
  rxPoolIov: u32;
  rxPoolCap: u32;
  /** Bytes the backend may write for the pending RX frame (its header included). */
  rxOffered: u32;
  /** 1 while RX frames must pass the receive filter (locked MAC, or a filter the guest set). */
  filtering: u32;
  /** VIRTIO_NET_S_ANNOUNCE in config status: the host asked the guest to announce itself, not yet acked. */
  announce: u32;
  /** max_virtqueue_pairs in config space. */
  maxPairs: u32;
  /** Queue pairs in use (VQ_PAIRS_SET; 1 until the driver sets more). */
  pairs: u32;
  /** The guest offloads in effect: the negotiated GUEST_* features until CTRL_GUEST_OFFLOADS changes them. */
  guestOffloads: u64;
  /** What the RX path goes by: the negotiated features with the GUEST_* offloads as in effect now. */
  rxFeatures: u64;
  /** The dirty log (net/dirty-log.ts): Wasm address and bytes of the bitmap; 0 bytes: off. */
  logAddr: u32;
  logBytes: u32;
}

/** The receive filter the guest programs through the control queue (virtio 1.2, 5.1.6.5.1-3). */
@unmanaged
export class RxFilter {
  /** RxMode bits. */
  mode: u32;
  /** Entries in the MAC table: unicast first, then multicast. */
  uniCount: u32;
  multiCount: u32;
  _pad: u32;
}

/** Software segmentation in progress (net/segment.ts). */
@unmanaged
export class SegPlan {
  /** 1 while a TX frame is being segmented. */
  active: u32;
  /** Next segment to build, and how many there are. */
  next: u32;
  count: u32;
  /** Bytes of headers copied into each segment (Ethernet to the end of TCP/UDP). */
  hdrLen: u32;
  l3Off: u32;
  l4Off: u32;
  l3Kind: u32;
  proto: u32;
  mss: u32;
  /** Payload bytes of the large segment. */
  payload: u32;
  /** Logical offset of the frame in the source list. */
  base: u32;
  /** 1: leave L4 checksums partial (pseudo-header sum in the field) for the receiver. */
  partial: u32;
  seq: u32;
  tcpFlags: u32;
  ipId: u32;
  /** Bytes of the segment last handed out (for counters). */
  segLen: u32;
  /** Offset of the pseudo-header's destination address in the headers (Parsed.pseudoDstOff). */
  pseudoDstOff: u32;
}

/** One pooled RX chain: its head, number of iovecs and bytes. */
@unmanaged
export class PoolEntry {
  head: u32;
  iovs: u32;
  cap: u32;
  pad: u32;
}

// Offsets of the areas. `(x) + 15 & ~15` rounds an area up to a v128 boundary; it is written
// out rather than called because an @inline constant must be a constant expression (asc 0.28
// refuses a call there with AS212, and a plain global would cost a start function).
// @ts-ignore: decorator
@inline export const OFF_DEVICE: usize = 0;
// @ts-ignore: decorator
@inline export const OFF_MEM: usize = ((offsetof<Device>()) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_QUEUES: usize = ((OFF_MEM + GUEST_MEMORY_SIZE) + 15 & ~15);
// @ts-ignore: decorator
@inline export const QUEUE_STRIDE: usize = ((offsetof<Virtqueue>()) + 15 & ~15);
// @ts-ignore: decorator
@inline export const QUEUE_COUNT: u32 = 3;
// @ts-ignore: decorator
@inline export const OFF_METRICS: usize = OFF_QUEUES + <usize>QUEUE_COUNT * QUEUE_STRIDE;
// @ts-ignore: decorator
@inline export const METRICS_STRIDE: usize = 8 * MetricCount.N;
// @ts-ignore: decorator
@inline export const OFF_WALK: usize = ((OFF_METRICS + <usize>QUEUE_COUNT * METRICS_STRIDE) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_PARSED: usize = ((OFF_WALK + offsetof<ChainWalk>()) + 15 & ~15);
// @ts-ignore: decorator
@inline export const SG_STRIDE: usize = ((offsetof<Sg>()) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_SG_TX: usize = ((OFF_PARSED + offsetof<Parsed>()) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_SG_RX: usize = OFF_SG_TX + SG_STRIDE;
// @ts-ignore: decorator
@inline export const OFF_SG_CHAIN: usize = OFF_SG_RX + SG_STRIDE;
// @ts-ignore: decorator
@inline export const OFF_SG_TOOL: usize = OFF_SG_CHAIN + SG_STRIDE;
/** Copy of the guest's TX virtio_net_hdr (read once: the guest may change its buffer). */
// @ts-ignore: decorator
@inline export const OFF_TX_GUEST_HDR: usize = OFF_SG_TOOL + SG_STRIDE;
/** The header handed to the backend in front of the TX frame. */
// @ts-ignore: decorator
@inline export const OFF_TX_BACKEND_HDR: usize = OFF_TX_GUEST_HDR + 16;
/** Bytes that replace a TX checksum field finished in software. */
// @ts-ignore: decorator
@inline export const OFF_TX_PATCH: usize = OFF_TX_BACKEND_HDR + 16;
/** Where the backend's own header lands on RX when it differs from the guest's (tun_hdr). */
// @ts-ignore: decorator
@inline export const OFF_RX_BACKEND_HDR: usize = OFF_TX_PATCH + 16;
/** Small scratch for split reads and writes. */
// @ts-ignore: decorator
@inline export const OFF_SCRATCH: usize = OFF_RX_BACKEND_HDR + 16;
/** Scratch for the RX path's own header writes (num_buffers, segment headers). */
// @ts-ignore: decorator
@inline export const OFF_SCRATCH_RX: usize = OFF_SCRATCH + 32;
// @ts-ignore: decorator
@inline export const OFF_PARSE_SCRATCH: usize = OFF_SCRATCH_RX + 32;
// @ts-ignore: decorator
@inline export const IOV_ARRAY_BYTES: usize = <usize>Layout.MAX_IOV * IOV_SIZE;
// @ts-ignore: decorator
@inline export const OFF_TX_IOV: usize = ((OFF_PARSE_SCRATCH + PARSE_MAX) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_RX_IOV: usize = OFF_TX_IOV + IOV_ARRAY_BYTES;
// @ts-ignore: decorator
@inline export const OFF_RX_CHAIN_IOV: usize = OFF_RX_IOV + IOV_ARRAY_BYTES;
// @ts-ignore: decorator
@inline export const TOOL_IOV_MAX: u32 = 64;
// @ts-ignore: decorator
@inline export const OFF_TOOL_IOV: usize = OFF_RX_CHAIN_IOV + IOV_ARRAY_BYTES;
/** Largest header block a segmented frame may have (Ethernet + tags + IP + extensions + TCP). */
// @ts-ignore: decorator
@inline export const SEG_HDR_MAX: u32 = 256;
// @ts-ignore: decorator
@inline export const SEG_PLAN_BYTES: usize = ((offsetof<SegPlan>()) + 15 & ~15);
/** A segmentation area: SegPlan, template headers, the built segment's headers (net/segment.ts). */
// @ts-ignore: decorator
@inline export const SEG_AREA_BYTES: usize = SEG_PLAN_BYTES + 2 * <usize>SEG_HDR_MAX;
// @ts-ignore: decorator
@inline export const OFF_SEG_TX: usize = ((OFF_TOOL_IOV + <usize>TOOL_IOV_MAX * IOV_SIZE) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_SEG_RX: usize = OFF_SEG_TX + SEG_AREA_BYTES;
/** The backend header of a TX segment (virtio_net_hdr with a partial checksum, or tun_hdr). */
// @ts-ignore: decorator
@inline export const OFF_SEG_BACKEND_HDR: usize = OFF_SEG_RX + SEG_AREA_BYTES;
/** iovecs of one TX segment: backend header, headers, payload pieces. */
// @ts-ignore: decorator
@inline export const OFF_SEG_IOV: usize = OFF_SEG_BACKEND_HDR + 16;
/** Most chains held in the RX pool (a 64 KiB frame over 256-byte buffers). */
// @ts-ignore: decorator
@inline export const RX_POOL_MAX: u32 = 256;
// @ts-ignore: decorator
@inline export const OFF_RX_POOL: usize = OFF_SEG_IOV + IOV_ARRAY_BYTES + 2 * IOV_SIZE;
/** A GSO frame handed over whole for segmentation into the guest (virtio_net_hdr v1 + frame). */
// @ts-ignore: decorator
@inline export const OFF_STAGING: usize = OFF_RX_POOL + <usize>RX_POOL_MAX * 16;
// @ts-ignore: decorator
@inline export const STAGING_SIZE: u32 = 12 + 65535 + 18;
// @ts-ignore: decorator
@inline export const OFF_STAGING_IOV: usize = ((OFF_STAGING + STAGING_SIZE) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_SG_STAGING: usize = OFF_STAGING_IOV + IOV_SIZE;
/** Forwarding table (net/forward.ts): a header, then Forward.TABLE_MAX entries. */
// @ts-ignore: decorator
@inline export const OFF_FWD: usize = ((OFF_SG_STAGING + SG_STRIDE) + 15 & ~15);
// @ts-ignore: decorator
@inline export const FWD_BYTES: usize = 64 + <usize>Forward.TABLE_MAX * 16;
/** The receive filter: RxFilter, the MAC table (u64 per entry), the VLAN bitmap (1 bit per id). */
// @ts-ignore: decorator
@inline export const OFF_FILTER: usize = ((OFF_FWD + FWD_BYTES) + 15 & ~15);
// @ts-ignore: decorator
@inline export const OFF_MAC_TABLE: usize = OFF_FILTER + 16;
// @ts-ignore: decorator
@inline export const OFF_VLAN_BITS: usize = OFF_MAC_TABLE + <usize>Ctrl.MAC_TABLE_MAX * 8;
/** iovecs of one control command (readable part, then the writable ack). */
// @ts-ignore: decorator
@inline export const CTRL_IOV_MAX: u32 = 64;
// @ts-ignore: decorator
@inline export const OFF_CTRL_IOV: usize = OFF_VLAN_BITS + <usize>Ctrl.VLAN_IDS / 8;
// @ts-ignore: decorator
@inline export const OFF_SG_CTRL: usize = OFF_CTRL_IOV + <usize>CTRL_IOV_MAX * IOV_SIZE;
// @ts-ignore: decorator
@inline export const OFF_SG_CTRL_ACK: usize = OFF_SG_CTRL + SG_STRIDE;
// @ts-ignore: decorator
@inline export const STATE_SIZE: usize = ((OFF_SG_CTRL_ACK + SG_STRIDE) + 15 & ~15);

// @ts-ignore: decorator
@inline export function device(st: usize): Device { return changetype<Device>(st + OFF_DEVICE); }
// @ts-ignore: decorator
@inline export function guestMem(st: usize): usize { return st + OFF_MEM; }
// @ts-ignore: decorator
@inline export function queueAt(st: usize, q: u32): Virtqueue { return changetype<Virtqueue>(st + OFF_QUEUES + <usize>q * QUEUE_STRIDE); }
// @ts-ignore: decorator
@inline export function metrics(st: usize, q: u32): usize { return st + OFF_METRICS + <usize>q * METRICS_STRIDE; }
// @ts-ignore: decorator
@inline export function walkState(st: usize): ChainWalk { return changetype<ChainWalk>(st + OFF_WALK); }
// @ts-ignore: decorator
@inline export function parsed(st: usize): Parsed { return changetype<Parsed>(st + OFF_PARSED); }
// @ts-ignore: decorator
@inline export function poolAt(st: usize, i: u32): PoolEntry { return changetype<PoolEntry>(st + OFF_RX_POOL + <usize>i * 16); }
// @ts-ignore: decorator
@inline export function sgAt(st: usize, off: usize): Sg { return changetype<Sg>(st + off); }
// @ts-ignore: decorator
@inline export function rxFilter(st: usize): RxFilter { return changetype<RxFilter>(st + OFF_FILTER); }

/** Adds one to counter `m` of queue `q`. */
// @ts-ignore: decorator
@inline export function count(st: usize, q: u32, m: u32): void {
  const p = metrics(st, q) + <usize>m * 8;
  store<u64>(p, load<u64>(p) + 1);
}

/** Adds `v` to counter `m` of queue `q`. */
// @ts-ignore: decorator
@inline export function countAdd(st: usize, q: u32, m: u32, v: u64): void {
  const p = metrics(st, q) + <usize>m * 8;
  store<u64>(p, load<u64>(p) + v);
}
