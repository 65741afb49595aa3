// The RX path (virtio 1.2, 5.1.6.3-4): frames from the backend into the guest's receive
// buffers, read straight into them (one chain per frame, or a pool of chains with
// MRG_RXBUF), with header translation, the MAC filter, and segmentation for a guest that did
// not negotiate the frame's GSO type.

import { BackendKind, Code, Feature, Metric, NetHdr, QueueIndex, TunHdr } from "../abi";
import { walkChain, WALK_TOO_MANY } from "../virtq/chain";
import { iovecSet, IOV_SIZE } from "../virtq/layout";
import { queueAddUsed, queueBuffersAvailable, queueDisableNotify, queueEnableNotify, queueUnpop, POP_EMPTY } from "../virtq/queue";
import {
  count, countAdd, device, guestMem, poolAt, queueAt, sgAt, walkState, Device, OFF_RX_BACKEND_HDR, OFF_RX_CHAIN_IOV,
  OFF_RX_IOV, OFF_SEG_RX, OFF_SG_CHAIN, OFF_SG_RX, OFF_SG_STAGING, OFF_STAGING, OFF_STAGING_IOV, OFF_SCRATCH_RX,
  RX_POOL_MAX, SegPlan, STAGING_SIZE,
} from "../state";
import { has } from "./features";
import { filterAccepts } from "./filter";
import { logSg } from "./dirty-log";
import { rxTranslate, RX_SEGMENT } from "./offload";
import { ETH_HLEN } from "./parse";
import {
  segHeaders, segmentBuild, segmentCsumOffset, segmentPayload, segmentPayloadOffset, segmentPlan, segPlanAt,
} from "./segment";
import { VH_CSUM_START, VH_GSO_SIZE, VH_GSO_TYPE, VH_NUM_BUFFERS, writeVirtioHdr } from "./hdr";
import { Sg, sgRead, sgStore16, sgTrimFront, sgWrite } from "./sg";
import { MAX_FRAME, fault, queueUsable, popHead, walkInto, backendHdrLen, macAt } from "./datapath";

/** Features that let the device hand the guest frames above the MTU. */
// @ts-ignore: decorator
@inline const GUEST_GSO: u64 = (<u64>1 << Feature.GUEST_TSO4) | (<u64>1 << Feature.GUEST_TSO6)
  | (<u64>1 << Feature.GUEST_USO4) | (<u64>1 << Feature.GUEST_USO6);

/** Bytes (guest header included) the largest frame the guest may be handed needs. */
function rxLargest(d: Device): u32 {
  return d.hdrLen + ((d.negotiated & GUEST_GSO) != 0 ? MAX_FRAME : d.mtu + 18);
}

/**
 * Pops RX chains into the pool until it holds `need` bytes (MRG_RXBUF: a frame may span
 * several chains, virtio 1.2, 5.1.6.4) or one chain (without). Pooled chains are always the
 * last ones popped, in ring order, so the pool can be given back by rewinding the ring
 * (rxPoolRelease). Returns 1 if the pool can grow no more (limits, or a chain that cannot be
 * pooled now), 0 if it stopped for `need` or an empty ring, or a negative Code.
 */
function rxPoolFill(st: usize, need: u32): i32 {
  const d = device(st);
  const q = queueAt(st, QueueIndex.RX);
  const eventIdx = has(d.negotiated, Feature.EVENT_IDX);
  const mrg = has(d.negotiated, Feature.MRG_RXBUF);
  // virtio 1.2, 5.1.6.3.1: with MRG_RXBUF every buffer holds at least the header; without,
  // a chain must hold a header and an Ethernet header to be of any use.
  const minChain = mrg ? d.hdrLen : d.hdrLen + ETH_HLEN;
  const chainIov = st + OFF_RX_CHAIN_IOV;
  while (mrg ? d.rxPoolCap < need : d.rxPoolN == 0) {
    if (d.rxPoolN >= RX_POOL_MAX || d.rxPoolN >= q.size) return 1;
    const head = popHead(st, QueueIndex.RX, q, eventIdx);
    if (head == POP_EMPTY) return 0;
    if (head < 0) return head;
    walkInto(st, chainIov, d.rxPoolIov, true);
    const w = walkState(st);
    const n = walkChain(q, guestMem(st), <u32>head, w);
    if (n < 0 && n != WALK_TOO_MANY) { fault(st, QueueIndex.RX, <u32>-n); return Code.BROKEN; }
    const bad = n == WALK_TOO_MANY || w.total < <u64>minChain;
    if (bad && d.rxPoolN != 0) {
      // Keep the pool contiguous: deal with this chain once the pool has drained.
      queueUnpop(q, w.token);
      return 1;
    }
    if (bad) {
      // Too fragmented to describe, or too small for anything: give it back empty rather
      // than stall the ring on it.
      queueAddUsed(q, w.token, 0);
      count(st, QueueIndex.RX, Metric.DROP_BUFFER_TOO_SMALL);
      continue;
    }
    const e = poolAt(st, d.rxPoolN);
    e.head = w.token;
    e.iovs = <u32>n;
    // A frame is at most 64 KiB; capping keeps the pool's byte count far from overflow.
    e.cap = w.total > 0x100000 ? 0x100000 : <u32>w.total;
    d.rxPoolN++;
    d.rxPoolIov += <u32>n;
    d.rxPoolCap += e.cap;
  }
  return 0;
}

/** Gives the pooled chains back to the ring (queue stop, GET_VRING_BASE): they were the last popped. */
export function rxPoolRelease(st: usize): void {
  const d = device(st);
  const q = queueAt(st, QueueIndex.RX);
  // The pool holds the last chains taken, in ring order: give them back last first.
  for (let i = <i32>d.rxPoolN - 1; i >= 0; i--) queueUnpop(q, poolAt(st, <u32>i).head);
  d.rxPoolN = 0;
  d.rxPoolIov = 0;
  d.rxPoolCap = 0;
  d.rxHead = -1;
}

/** Points the chain list (OFF_SG_CHAIN) at the pool's first chain, or all of it with MRG_RXBUF. */
function rxChainSg(st: usize): Sg {
  const d = device(st);
  const chain = sgAt(st, OFF_SG_CHAIN);
  chain.iov = <u32>(st + OFF_RX_CHAIN_IOV);
  chain.n = has(d.negotiated, Feature.MRG_RXBUF) ? d.rxPoolIov : poolAt(st, 0).iovs;
  chain.nb = d.nativeBase;
  return chain;
}

/** Bytes a frame may use: the whole pool with MRG_RXBUF, else the first chain. */
function rxUsable(st: usize): u32 {
  const d = device(st);
  return has(d.negotiated, Feature.MRG_RXBUF) ? d.rxPoolCap : poolAt(st, 0).cap;
}

/**
 * Hands the first chains of the pool holding `bytes` (header included) to the guest: all but
 * the last used completely (virtio 1.2, 5.1.6.4: num_buffers in the header says how many),
 * then drops them from the pool.
 */
function rxConsume(st: usize, chain: Sg, bytes: u32): void {
  const d = device(st);
  const q = queueAt(st, QueueIndex.RX);
  // Migration: the pages this frame was written into (by the backend or by us) are dirty.
  if (d.logBytes != 0) logSg(st, chain, bytes);
  let k: u32 = 0;
  let iovs: u32 = 0;
  let caps: u32 = 0;
  let left = bytes;
  while (k < d.rxPoolN) {
    const e = poolAt(st, k);
    const use = left < e.cap ? left : e.cap;
    queueAddUsed(q, e.head, use);
    left -= use;
    iovs += e.iovs;
    caps += e.cap;
    k++;
    if (left == 0) break;
  }
  if (d.hdrLen >= <u32>NetHdr.SIZE_V1) sgStore16(chain, VH_NUM_BUFFERS, <u16>k, st + OFF_SCRATCH_RX);
  if (k > 1) countAdd(st, QueueIndex.RX, Metric.BUFFERS_MERGED, k - 1);
  const rest = d.rxPoolN - k;
  if (rest != 0) {
    const iov = st + OFF_RX_CHAIN_IOV;
    memory.copy(iov, iov + <usize>iovs * IOV_SIZE, <usize>(d.rxPoolIov - iovs) * IOV_SIZE);
    memory.copy(changetype<usize>(poolAt(st, 0)), changetype<usize>(poolAt(st, k)), <usize>rest * 16);
  }
  d.rxPoolN = rest;
  d.rxPoolIov -= iovs;
  d.rxPoolCap -= caps;
}

/**
 * Takes RX buffers for the next frame and prepares the iovecs the backend reads into
 * (rxIov()): for a virtio_net_hdr backend the buffers themselves (its header lands where the
 * guest's goes), for tun_hdr an 8-byte header slot then the buffers past the guest header, for
 * plain frames the buffers past the guest header. With MRG_RXBUF the buffers are as many
 * chains as the largest frame may need (`bytes`, or 0 for the largest the guest may be sent).
 * Returns the iovec count, 0 if the guest has not posted enough (notifications are re-enabled),
 * or a negative Code. Finish with rxCommit() or rxAbort().
 */
export function rxNext(st: usize, bytes: u32 = 0): i32 {
  const d = device(st);
  if (d.rxHead >= 0) return Code.SEQUENCE;
  const usable = queueUsable(st, QueueIndex.RX);
  if (usable != Code.OK) return usable;
  const q = queueAt(st, QueueIndex.RX);
  queueDisableNotify(q, has(d.negotiated, Feature.EVENT_IDX));
  const need = bytes != 0 ? bytes : rxLargest(d);
  const full = rxPoolFill(st, need);
  if (full < 0) return full;
  // Short of what the largest frame needs: wait for the guest to post more, unless it cannot
  // (the pool holds all it can give us) or the frame's size is known to fit.
  // Without MRG_RXBUF the one chain is what the guest gave; rxCommit() judges the frame.
  if (d.rxPoolN == 0 || (full == 0 && has(d.negotiated, Feature.MRG_RXBUF) && d.rxPoolCap < need)) {
    count(st, QueueIndex.RX, Metric.DROP_NO_BUFFER);
    return 0;
  }
  const chain = rxChainSg(st);
  d.rxHead = <i32>poolAt(st, 0).head;
  d.rxCap = rxUsable(st);

  if (d.backend == BackendKind.VNET_HDR) {
    d.rxIovStart = <u32>OFF_RX_CHAIN_IOV;
    d.rxIovCount = chain.n;
    return <i32>chain.n;
  }
  // Copy the chain's iovecs (not the data) and cut the guest header off the copy.
  const rx = sgAt(st, OFF_SG_RX);
  const rxIov = st + OFF_RX_IOV;
  let first: usize = rxIov;
  if (d.backend == BackendKind.TUN_HDR) {
    iovecSet(rxIov, 0, d.nativeBase + <u64>(st + OFF_RX_BACKEND_HDR), TunHdr.SIZE);
    first += IOV_SIZE;
  }
  memory.copy(first, <usize>chain.iov, <usize>chain.n * IOV_SIZE);
  rx.iov = <u32>first;
  rx.n = chain.n;
  rx.nb = d.nativeBase;
  sgTrimFront(rx, d.hdrLen);
  const total = rx.n + (d.backend == BackendKind.TUN_HDR ? 1 : 0);
  d.rxIovStart = <u32>(rxIov - st);
  d.rxIovCount = total;
  return <i32>total;
}

/**
 * Completes the pending RX frame after the backend wrote `nread` bytes into rxIov() (its
 * header included). Translates the header, applies the MAC filter and the MTU rule, and adds
 * the used element(s). A GSO frame of a type the guest did not negotiate is segmented here
 * (from a copy). Returns the frame length delivered (for a segmented frame, the number of
 * frames), or -(Metric.DROP_*) if it was dropped; the buffers stay with the device then.
 */
export function rxCommit(st: usize, nread: u32): i32 {
  const d = device(st);
  if (d.rxHead < 0) return Code.SEQUENCE;
  d.rxHead = -1;
  const chain = rxChainSg(st);
  const bhl = backendHdrLen(d);
  let reason: u32 = 0;
  let frameLen: u32 = 0;
  if (nread < bhl + ETH_HLEN) reason = Metric.DROP_RUNT;
  else {
    frameLen = nread - bhl;
    // No frame is larger than a 64 KiB IP datagram with its Ethernet and VLAN headers; a
    // backend claiming more (MRG_RXBUF pools can hold more) is not believed, and such a frame
    // would not fit the staging area segmentation copies it into.
    if (frameLen > MAX_FRAME) reason = Metric.DROP_OVERSIZE;
    else if (frameLen > d.rxCap - d.hdrLen) reason = Metric.DROP_BUFFER_TOO_SMALL;
    else if (d.filtering != 0 && !filterAccepts(st, chain, d.hdrLen, frameLen)) reason = d.lockedMac != 0 && !lockedMacAccepts(st, chain) ? Metric.DROP_LOCKED_MAC : Metric.DROP_FILTERED;
  }
  if (reason == 0) {
    const r = rxTranslate(st, chain, frameLen, d.rxCap);
    if (r == RX_SEGMENT) {
      // Copy out of the buffers (the segments are written back into them) and segment.
      sgRead(chain, 0, st + OFF_STAGING, d.hdrLen);
      sgRead(chain, d.hdrLen, st + OFF_STAGING + NetHdr.SIZE_V1, frameLen);
      return rxSegment(st, frameLen, false);
    }
    if (r < 0) reason = <u32>-r;
    else frameLen = <u32>r;
  }
  if (reason != 0) {
    count(st, QueueIndex.RX, reason);
    return -(<i32>reason);
  }
  rxConsume(st, chain, d.hdrLen + frameLen);
  count(st, QueueIndex.RX, Metric.PACKETS);
  countAdd(st, QueueIndex.RX, Metric.BYTES, frameLen);
  return <i32>frameLen;
}

/** Gives up the pending RX frame (the backend had nothing); the buffers stay pooled. */
export function rxAbort(st: usize): i32 {
  const d = device(st);
  if (d.rxHead < 0) return Code.SEQUENCE;
  d.rxHead = -1;
  return Code.OK;
}

/** Wasm address and size of the staging area for rxSegmentStaged(). */
export function stagingAddr(st: usize): usize { return st + OFF_STAGING; }
export function stagingSize(): u32 { return STAGING_SIZE; }

/**
 * Delivers the GSO frame in the staging area (a virtio_net_hdr at 0, the frame at 12) to a
 * guest that cannot take it whole: segments it into MSS-sized frames, each into its own
 * buffers, with checksums left partial for a guest with GUEST_CSUM and complete otherwise.
 * Returns the number of frames delivered (segments beyond the guest's buffers are dropped and
 * counted), or -(Metric.DROP_*) if the header or frame is not a valid GSO frame.
 */
export function rxSegmentStaged(st: usize, frameLen: u32): i32 {
  const d = device(st);
  if (d.rxHead >= 0) return Code.SEQUENCE;
  const usable = queueUsable(st, QueueIndex.RX);
  if (usable != Code.OK) return usable;
  if (frameLen < ETH_HLEN || frameLen > STAGING_SIZE - NetHdr.SIZE_V1) {
    count(st, QueueIndex.RX, Metric.DROP_OVERSIZE);
    return -Metric.DROP_OVERSIZE;
  }
  return rxSegment(st, frameLen, true);
}

/**
 * With MRG_RXBUF: whether the pool (grown from the ring as needed) holds every segment of `s`,
 * each starting in a buffer of its own. 1 yes (or the pool can grow no more: go ahead),
 * 0 no, or a negative Code.
 */
function rxRoomForSegments(st: usize, s: SegPlan): i32 {
  const d = device(st);
  let k: u32 = 0;
  for (let i: u32 = 0; i < s.count; i++) {
    let need = d.hdrLen + s.hdrLen + segmentPayload(s, i);
    while (need != 0) {
      if (k == d.rxPoolN) {
        const r = rxPoolFill(st, d.rxPoolCap + 1);
        if (r < 0) return r;
        if (k == d.rxPoolN) return r;
      }
      const c = poolAt(st, k).cap;
      need = need > c ? need - c : 0;
      k++;
    }
  }
  return 1;
}

/**
 * Segments the frame in the staging area into the guest's buffers. With `wait`, returns 0
 * (nothing consumed, notifications re-enabled) unless the guest has posted room for every
 * segment; the frame was already read from the backend otherwise, and what does not fit is
 * dropped.
 */
function rxSegment(st: usize, frameLen: u32, wait: bool): i32 {
  const d = device(st);
  const hdr = st + OFF_STAGING;
  const frame = hdr + NetHdr.SIZE_V1;
  const src = sgAt(st, OFF_SG_STAGING);
  src.iov = <u32>(st + OFF_STAGING_IOV);
  src.n = 1;
  src.nb = 0;
  iovecSet(st + OFF_STAGING_IOV, 0, frame, frameLen);
  if (wait && d.filtering != 0 && !filterAccepts(st, src, 0, frameLen)) {
    count(st, QueueIndex.RX, Metric.DROP_FILTERED);
    return -Metric.DROP_FILTERED;
  }
  const area = st + OFF_SEG_RX;
  const guestCsum = has(d.rxFeatures, Feature.GUEST_CSUM);
  const flags = <u32>load<u8>(hdr, 0);
  const gsoType = <u32>load<u8>(hdr, VH_GSO_TYPE);
  const r = (flags & NetHdr.F_NEEDS_CSUM) == 0 || gsoType == NetHdr.GSO_NONE ? -Metric.DROP_BAD_GSO
    : segmentPlan(st, area, src, 0, frameLen, gsoType, <u32>load<u16>(hdr, VH_GSO_SIZE), <u32>load<u16>(hdr, VH_CSUM_START), guestCsum);
  if (r < 0) {
    count(st, QueueIndex.RX, <u32>-r);
    return r;
  }
  const s = segPlanAt(area);
  const q = queueAt(st, QueueIndex.RX);
  const eventIdx = has(d.negotiated, Feature.EVENT_IDX);
  queueDisableNotify(q, eventIdx);
  if (wait) {
    let room = false;
    if (has(d.negotiated, Feature.MRG_RXBUF)) {
      const r = rxRoomForSegments(st, s);
      if (r < 0) return r;
      room = r != 0;
    } else {
      const want = s.count > d.rxPoolN ? s.count - d.rxPoolN : 0;
      room = want == 0 || d.rxPoolN >= q.size || queueBuffersAvailable(q, want > q.size - d.rxPoolN ? q.size - d.rxPoolN : want);
    }
    if (!room) {
      queueEnableNotify(q, eventIdx);
      s.active = 0;
      return 0;
    }
  }
  count(st, QueueIndex.RX, Metric.GSO_SEGMENTED);
  const ghdr = st + OFF_SCRATCH_RX + 8;
  let delivered: u32 = 0;
  for (let i: u32 = 0; i < s.count; i++) {
    const pl = segmentBuild(area, src, i);
    const bytes = d.hdrLen + s.hdrLen + pl;
    const full = rxPoolFill(st, bytes);
    if (full < 0) return full;
    if (d.rxPoolN == 0 || rxUsable(st) < bytes) {
      countAdd(st, QueueIndex.RX, Metric.DROP_NO_BUFFER, s.count - i);
      break;
    }
    const chain = rxChainSg(st);
    if (guestCsum) writeVirtioHdr(ghdr, d.hdrLen, NetHdr.F_NEEDS_CSUM, NetHdr.GSO_NONE, 0, 0, s.l4Off, segmentCsumOffset(s), 1);
    else writeVirtioHdr(ghdr, d.hdrLen, 0, NetHdr.GSO_NONE, 0, 0, 0, 0, 1);
    sgWrite(chain, 0, ghdr, d.hdrLen);
    sgWrite(chain, d.hdrLen, segHeaders(area), s.hdrLen);
    if (pl != 0) sgWrite(chain, d.hdrLen + s.hdrLen, frame + segmentPayloadOffset(s, i), pl);
    rxConsume(st, chain, bytes);
    count(st, QueueIndex.RX, Metric.PACKETS);
    count(st, QueueIndex.RX, Metric.GSO_SEGMENTS);
    countAdd(st, QueueIndex.RX, Metric.BYTES, s.hdrLen + pl);
    delivered++;
  }
  count(st, QueueIndex.RX, guestCsum ? Metric.CSUM_OFFLOADED : Metric.CSUM_SOFTWARE);
  s.active = 0;
  return <i32>delivered;
}

/** vmd's locked lladdr on RX: only frames for our MAC, broadcast or multicast (which rule dropped a frame). */
function lockedMacAccepts(st: usize, chain: Sg): bool {
  const dst = macAt(st, chain, device(st).hdrLen);
  return (dst & 1) != 0 || dst == device(st).mac;
}
