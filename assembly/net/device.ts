// The virtio-net device model (virtio 1.2, 5.1), transport-neutral: status and feature
// negotiation, config space, queue setup, and the TX/RX paths. The transport (PCI, MMIO,
// vhost-user, an emulator's registers) lives in the host and calls in here.

import {
  BackendKind, Code, CsumPolicy, DeviceEvent, Feature, GsoMask, Layout, Metric, NetHdr, QueueIndex, Status,
  TunHdr,
} from "../abi";
import { memClear } from "../mem/guest";
import { walkChain, WALK_TOO_MANY } from "../virtq/chain";
import { IOV_SIZE } from "../virtq/layout";
import {
  availIdx, queueAddUsed, queueDisableNotify, queueEnableNotify, queuePop, queuePublish, queueReset,
  queueResolve, queueSizeValid, queueUnpop, SplitQueue, POP_EMPTY,
} from "../virtq/queue";
import {
  count, countAdd, device, guestMem, metrics, poolAt, queueAt, sgAt, walkState, Device, MAGIC,
  OFF_RX_BACKEND_HDR, OFF_RX_CHAIN_IOV, OFF_RX_IOV, OFF_SEG_BACKEND_HDR, OFF_SEG_IOV, OFF_SEG_RX, OFF_SEG_TX,
  OFF_SG_CHAIN, OFF_SG_RX, OFF_SG_STAGING, OFF_SG_TX, OFF_STAGING, OFF_STAGING_IOV, OFF_TX_BACKEND_HDR,
  OFF_TX_GUEST_HDR, OFF_TX_IOV, OFF_SCRATCH_RX, RX_POOL_MAX, SegPlan, STAGING_SIZE, STATE_SIZE,
} from "../state";
import { dependenciesMet, gsoAllowed, has, DEFAULT_OFFER, IMPLEMENTED } from "./features";
import { rxTranslate, txTranslate, RX_SEGMENT, TX_SEGMENT } from "./offload";
import { ETH_HLEN } from "./parse";
import { segHeaders, segmentBuild, segmentCsumOffset, segmentPayload, segmentPayloadOffset, segmentPlan, segPlanAt } from "./segment";
import { VH_CSUM_START, VH_GSO_SIZE, VH_GSO_TYPE, VH_NUM_BUFFERS, writeVirtioHdr } from "./hdr";
import { Sg, sgRead, sgSliceIov, sgStore16, sgTrimFront, sgWrite } from "./sg";

/** Largest frame accepted without segmentation offload: 64 KiB IP datagram + Ethernet + VLAN. */
// @ts-ignore: decorator
@inline const MAX_FRAME: u32 = 65535 + 14 + 4;

/** Zeroes the state block and sets defaults: default offer, MTU 1500, link up, plain backend. */
export function deviceInit(st: usize): void {
  memory.fill(st, 0, STATE_SIZE);
  const d = device(st);
  d.magic = MAGIC;
  d.layout = Layout.VERSION;
  d.offered = DEFAULT_OFFER;
  d.mtu = 1500;
  d.linkUp = 1;
  d.backend = BackendKind.PLAIN;
  d.csumPolicy = CsumPolicy.COMPLETE;
  d.hdrLen = NetHdr.SIZE_V1;
  d.backendGso = GsoMask.TAP_DEFAULT;
  d.txHead = -1;
  d.rxHead = -1;
  memClear(guestMem(st));
}

/** Device reset (status 0, virtio 1.2, 2.1.2): queues, features and status return to initial values. */
export function deviceReset(st: usize): void {
  const d = device(st);
  d.status = 0;
  d.driver = 0;
  d.negotiated = 0;
  d.hdrLen = NetHdr.SIZE_V1;
  d.txHead = -1;
  d.txAwait = 0;
  segPlanAt(st + OFF_SEG_TX).active = 0;
  d.rxHead = -1;
  d.rxPoolN = 0;
  d.rxPoolIov = 0;
  d.rxPoolCap = 0;
  queueReset(queueAt(st, QueueIndex.RX));
  queueReset(queueAt(st, QueueIndex.TX));
  d.events |= DeviceEvent.RESET;
}

/**
 * Sets the features the device offers. Refused if the set needs features this core does not
 * implement or breaks the dependency table (a device MUST NOT offer a feature without its
 * prerequisites, virtio 1.2, 2.2.1), or once the driver has started negotiating.
 */
export function setOffered(st: usize, f: u64): i32 {
  const d = device(st);
  if (d.status != 0) return Code.SEQUENCE;
  if ((f & ~IMPLEMENTED) != 0 || !dependenciesMet(f)) return Code.INVALID;
  d.offered = f;
  return Code.OK;
}

/** The driver writes its feature bits (allowed until FEATURES_OK). */
export function setDriverFeatures(st: usize, f: u64): i32 {
  const d = device(st);
  if ((d.status & Status.FEATURES_OK) != 0) return Code.SEQUENCE;
  d.driver = f;
  return Code.OK;
}

/**
 * Writes the status register. 0 resets. Setting FEATURES_OK validates the driver's features:
 * a subset of the offer whose dependencies are met is accepted (negotiated, NEGOTIATED event);
 * otherwise FEATURES_OK stays clear, which is how the driver learns of the refusal
 * (virtio 1.2, 3.1.1). Bits the device owns (NEEDS_RESET) cannot be set by the driver.
 */
export function setStatus(st: usize, v: u32): u32 {
  const d = device(st);
  if (v == 0) {
    deviceReset(st);
    return 0;
  }
  let next = (v & ~(<u32>Status.NEEDS_RESET)) | (d.status & Status.NEEDS_RESET);
  if ((next & Status.FEATURES_OK) != 0 && (d.status & Status.FEATURES_OK) == 0) {
    const f = d.driver;
    if ((f & ~d.offered) != 0 || !dependenciesMet(f)) {
      next &= ~(<u32>Status.FEATURES_OK);
    } else {
      d.negotiated = f;
      d.hdrLen = has(f, Feature.VERSION_1) || has(f, Feature.MRG_RXBUF) ? NetHdr.SIZE_V1 : NetHdr.SIZE_LEGACY;
      d.events |= DeviceEvent.NEGOTIATED;
    }
  }
  // FEATURES_OK cannot be cleared except by reset.
  next |= d.status & Status.FEATURES_OK;
  d.status = next;
  return next;
}

/** The device found a fault it cannot recover from by itself (virtio 1.2, 2.1.2). */
export function fault(st: usize, q: u32, cause: u32): void {
  const d = device(st);
  queueAt(st, q).broken = 1;
  count(st, q, cause);
  if ((d.status & Status.NEEDS_RESET) == 0) {
    d.status |= Status.NEEDS_RESET;
    d.events |= DeviceEvent.NEEDS_RESET;
    if ((d.status & Status.DRIVER_OK) != 0) d.events |= DeviceEvent.CONFIG_CHANGED;
  }
}

// ─────────────────────────────────── config space ──────────────────────────────────────────

/** Config space (virtio 1.2, 5.1.4): mac[6], status u16, max_virtqueue_pairs u16, mtu u16. */
export function configByte(st: usize, off: u32): u32 {
  const d = device(st);
  if (off < 6) return <u32>(d.mac >> (<u64>off * 8)) & 0xff;
  let v: u32 = 0;
  if (off < 8) v = d.linkUp != 0 ? 1 : 0; // VIRTIO_NET_S_LINK_UP
  else if (off < 10) v = 1;
  else if (off < 12) v = d.mtu;
  else return 0;
  return (off & 1) == 0 ? v & 0xff : (v >> 8) & 0xff;
}

/** Reads `size` (1, 2 or 4) bytes of config space at `off`, little-endian. */
export function configRead(st: usize, off: u32, size: u32): u32 {
  let v: u32 = 0;
  for (let i: u32 = 0; i < size && i < 4; i++) v |= configByte(st, off + i) << (8 * i);
  return v;
}

/** Link state change: a config-change notification is due (VIRTIO_NET_F_STATUS). */
export function setLink(st: usize, up: bool): void {
  const d = device(st);
  const v: u32 = up ? 1 : 0;
  if (d.linkUp == v) return;
  d.linkUp = v;
  if (has(d.negotiated, Feature.STATUS) && (d.status & Status.DRIVER_OK) != 0) d.events |= DeviceEvent.CONFIG_CHANGED;
}

// ───────────────────────────────────── queues ──────────────────────────────────────────────

export function queueSetSize(st: usize, qi: u32, n: u32): i32 {
  if (qi > <u32>QueueIndex.TX || !queueSizeValid(n)) return Code.INVALID;
  const q = queueAt(st, qi);
  if (q.enabled != 0) return Code.SEQUENCE;
  q.size = n;
  return Code.OK;
}

export function queueSetAddrs(st: usize, qi: u32, desc: u64, avail: u64, used: u64): i32 {
  if (qi > <u32>QueueIndex.TX) return Code.INVALID;
  const q = queueAt(st, qi);
  if (q.enabled != 0) return Code.SEQUENCE;
  q.descGpa = desc;
  q.availGpa = avail;
  q.usedGpa = used;
  q.memGen = 0;
  return Code.OK;
}

/**
 * Enables or disables a queue. Enabling checks the ring addresses (fault on failure) and
 * starts at the ring's current used index; the next available index is whatever was set
 * (0 after reset, or SET_VRING_BASE's value).
 */
export function queueEnable(st: usize, qi: u32, on: bool): i32 {
  if (qi > <u32>QueueIndex.TX) return Code.INVALID;
  const q = queueAt(st, qi);
  if (!on) {
    if (qi == <u32>QueueIndex.RX) rxPoolRelease(st);
    else txAbandon(st);
    // Whatever was completed reaches the driver before the queue stops.
    if (q.enabled != 0 && q.broken == 0 && q.used != 0) queuePublish(q, has(device(st).negotiated, Feature.EVENT_IDX));
    q.enabled = 0;
    return Code.OK;
  }
  if (q.size == 0) return Code.INVALID;
  q.memGen = 0;
  const r = queueResolve(q, guestMem(st));
  if (r < 0) {
    fault(st, qi, <u32>-r);
    return Code.BROKEN;
  }
  q.nextUsed = <u32>load<u16>(q.used, 2);
  q.numAdded = 0;
  q.notifyOff = 0;
  q.polling = 0;
  q.enabled = 1;
  return Code.OK;
}

export function queueSetNextAvail(st: usize, qi: u32, idx: u32): i32 {
  if (qi > <u32>QueueIndex.TX) return Code.INVALID;
  const q = queueAt(st, qi);
  if (q.enabled != 0) return Code.SEQUENCE;
  q.nextAvail = idx & 0xffff;
  return Code.OK;
}

/**
 * Host polling of queue `qi` on or off. On: the driver is told not to notify, and stays told
 * when the ring runs dry. Off: notifications are asked for again and the ring is looked at once
 * more (virtio 1.2, 2.7.10); returns 1 if work is already there (the host must take it before
 * it sleeps), 0 if not, or a negative Code.
 */
export function queueSetPolling(st: usize, qi: u32, on: bool): i32 {
  if (qi > 1) return Code.INVALID;
  const q = queueAt(st, qi);
  const eventIdx = has(device(st).negotiated, Feature.EVENT_IDX);
  q.polling = on ? 1 : 0;
  if (queueUsable(st, qi) != Code.OK) return 0;
  if (on) {
    queueDisableNotify(q, eventIdx);
    return 0;
  }
  return queueEnableNotify(q, eventIdx) ? 1 : 0;
}

/**
 * Checks that a queue may be processed now and its ring addresses still resolve. Returns
 * Code.OK, NOT_READY or BROKEN. The device does not touch rings before DRIVER_OK
 * (virtio 1.2, 2.1.2), nor a stopped queue.
 */
function queueUsable(st: usize, qi: u32): i32 {
  const d = device(st);
  const q = queueAt(st, qi);
  if (q.broken != 0) return Code.BROKEN;
  if ((d.status & Status.DRIVER_OK) == 0 || q.enabled == 0 || q.size == 0) return Code.NOT_READY;
  const r = queueResolve(q, guestMem(st));
  if (r < 0) {
    fault(st, qi, <u32>-r);
    return Code.BROKEN;
  }
  return Code.OK;
}

/**
 * Pops the next head, re-enabling notifications when the ring runs dry (and looking once
 * more, so a buffer added meanwhile is seen). Returns a head, POP_EMPTY, or Code.BROKEN.
 */
function popHead(st: usize, qi: u32, q: SplitQueue, eventIdx: bool): i32 {
  let head = queuePop(q);
  if (head == POP_EMPTY) {
    // A polling host looks again by itself; the driver need not kick (vhost busy polling).
    if (q.polling != 0) return POP_EMPTY;
    if (!queueEnableNotify(q, eventIdx)) return POP_EMPTY;
    queueDisableNotify(q, eventIdx);
    head = queuePop(q);
    if (head == POP_EMPTY) return POP_EMPTY;
  }
  if (head < 0) {
    fault(st, qi, <u32>-head);
    return Code.BROKEN;
  }
  return head;
}

/** Prepares the chain walk for queue `qi` into the iovec array at `iov`, from slot `first`. */
function walkInto(st: usize, iov: usize, first: u32, writable: bool): void {
  const w = walkState(st);
  const d = device(st);
  w.iov = <u32>iov;
  w.first = first;
  // Keep 3 slots spare: a checksum patch may split two iovecs and the header takes slot 0.
  w.cap = Layout.MAX_IOV - 3;
  w.writable = writable ? 1 : 0;
  w.indirect = has(d.negotiated, Feature.INDIRECT_DESC) ? 1 : 0;
  w.nativeBase = d.nativeBase;
}

// ─────────────────────────────────────── TX ────────────────────────────────────────────────

/** Drops a TX chain: completes it (used len 0) and counts why. */
function txDrop(st: usize, q: SplitQueue, head: u32, reason: u32): void {
  queueAddUsed(q, head, 0);
  count(st, QueueIndex.TX, reason);
}

/** Bytes of the backend's header in front of each TX frame. */
function backendHdrLen(d: Device): u32 {
  if (d.backend == BackendKind.VNET_HDR) return d.hdrLen;
  if (d.backend == BackendKind.TUN_HDR) return TunHdr.SIZE;
  return 0;
}

/**
 * Takes the next frame from the TX ring and makes it ready for the backend: returns the
 * number of iovecs at txIov() (backend header first, if any, then the frame in guest RAM),
 * 0 if the ring is empty, or a negative Code. Frames the device must drop (bad header,
 * policy, locked MAC) are completed and counted here and never reach the host.
 * A large segment the backend cannot take comes out as several frames, one per call, built
 * from a header copy and iovecs into the guest's buffer; its chain completes after the last.
 * Each frame returned must be finished with txDone() before the next txNext().
 */
export function txNext(st: usize): i32 {
  const d = device(st);
  if (d.txAwait != 0) return Code.SEQUENCE;
  // Checked for a frame half-sent as segments too: its ring may have moved or broken meanwhile.
  const usable = queueUsable(st, QueueIndex.TX);
  if (usable != Code.OK) return usable;
  if (segPlanAt(st + OFF_SEG_TX).active != 0) return txSegmentNext(st);
  const q = queueAt(st, QueueIndex.TX);
  const eventIdx = has(d.negotiated, Feature.EVENT_IDX);
  const sg = sgAt(st, OFF_SG_TX);
  const iov = st + OFF_TX_IOV;
  queueDisableNotify(q, eventIdx);

  while (true) {
    const head = popHead(st, QueueIndex.TX, q, eventIdx);
    if (head == POP_EMPTY) return 0;
    if (head < 0) return head;

    // Slot 0 is kept for the backend header; the chain starts at slot 1.
    walkInto(st, iov, 1, false);
    const w = walkState(st);
    const n = walkChain(q, guestMem(st), <u32>head, w);
    if (n == WALK_TOO_MANY) { txDrop(st, q, <u32>head, Metric.DROP_TOO_MANY_SEGMENTS); continue; }
    if (n < 0) { fault(st, QueueIndex.TX, <u32>-n); return Code.BROKEN; }

    sg.iov = <u32>(iov + IOV_SIZE);
    sg.n = <u32>n;
    sg.nb = d.nativeBase;
    const total = <u32>w.total;
    // The header may be split across descriptors anywhere (ANY_LAYOUT / VERSION_1).
    if (total < d.hdrLen) { txDrop(st, q, <u32>head, Metric.DROP_HDR_SHORT); continue; }
    sgRead(sg, 0, st + OFF_TX_GUEST_HDR, d.hdrLen);
    sgTrimFront(sg, d.hdrLen);
    const frameLen = total - d.hdrLen;
    if (frameLen < ETH_HLEN) { txDrop(st, q, <u32>head, Metric.DROP_RUNT); continue; }
    if (frameLen > MAX_FRAME) { txDrop(st, q, <u32>head, Metric.DROP_OVERSIZE); continue; }
    if (d.lockedMac != 0 && !sourceIsOurs(st, sg)) { txDrop(st, q, <u32>head, Metric.DROP_LOCKED_MAC); continue; }

    const r = txTranslate(st, sg, frameLen);
    if (r < 0) { txDrop(st, q, <u32>head, <u32>-r); continue; }
    d.txHead = head;
    d.txFrameLen = frameLen;
    if (r == TX_SEGMENT) {
      count(st, QueueIndex.TX, Metric.GSO_SEGMENTED);
      return txSegmentNext(st);
    }

    const bhl = backendHdrLen(d);
    if (bhl != 0) {
      store<u64>(iov, d.nativeBase + <u64>(st + OFF_TX_BACKEND_HDR), 0);
      store<u64>(iov, <u64>bhl, 8);
      d.txIovStart = <u32>OFF_TX_IOV;
    } else {
      d.txIovStart = <u32>(OFF_TX_IOV + IOV_SIZE);
    }
    d.txAwait = 1;
    return <i32>(sg.n + (bhl != 0 ? 1 : 0));
  }
}

/**
 * Builds the next segment of the large TX frame being segmented: iovecs at OFF_SEG_IOV for
 * the backend header (a virtio_net_hdr with the partial checksum for a VNET_HDR backend), the
 * segment's headers and its payload, in place in the guest's buffers.
 */
function txSegmentNext(st: usize): i32 {
  const d = device(st);
  const s = segPlanAt(st + OFF_SEG_TX);
  const sg = sgAt(st, OFF_SG_TX);
  const pl = segmentBuild(st + OFF_SEG_TX, sg, s.next);
  const iov = st + OFF_SEG_IOV;
  let n: u32 = 0;
  const bhl = backendHdrLen(d);
  if (bhl != 0) {
    // Each segment's checksum is left partial for a virtio_net_hdr backend; tun_hdr gets an
    // empty header (the checksums are complete).
    const bh = st + OFF_SEG_BACKEND_HDR;
    if (d.backend == BackendKind.VNET_HDR) {
      writeVirtioHdr(bh, d.hdrLen, NetHdr.F_NEEDS_CSUM, NetHdr.GSO_NONE, 0, 0, s.l4Off, segmentCsumOffset(s), 0);
    } else {
      memory.fill(bh, 0, bhl);
    }
    store<u64>(iov, d.nativeBase + <u64>bh, 0);
    store<u64>(iov, <u64>bhl, 8);
    n = 1;
  }
  store<u64>(iov + <usize>n * IOV_SIZE, d.nativeBase + <u64>segHeaders(st + OFF_SEG_TX), 0);
  store<u64>(iov + <usize>n * IOV_SIZE, <u64>s.hdrLen, 8);
  n++;
  if (pl != 0) {
    const m = sgSliceIov(sg, segmentPayloadOffset(s, s.next), pl, iov + <usize>n * IOV_SIZE, <u32>Layout.MAX_IOV);
    n += m;
  }
  s.segLen = s.hdrLen + pl;
  d.txIovStart = <u32>OFF_SEG_IOV;
  d.txAwait = 1;
  return <i32>n;
}

/**
 * Guest memory was removed (or the table cleared): nothing the device holds may point into it
 * any more. Pooled RX chains go back to the ring (they are walked again, against the new table,
 * when next taken); a TX frame half-sent as segments is finished (its chain completes, nothing
 * more of it goes out) or, if nothing of it went out, goes back to the ring whole. Ring
 * addresses re-resolve on next use; a ring that is gone puts the queue in NEEDS_RESET.
 */
export function memoryRemoved(st: usize): void {
  const d = device(st);
  if (d.rxPoolN != 0) rxPoolRelease(st);
  d.rxHead = -1;
  if (d.txHead >= 0) {
    const q = queueAt(st, QueueIndex.TX);
    const r = queueResolve(q, guestMem(st));
    if (r < 0) {
      fault(st, QueueIndex.TX, <u32>-r);
      segPlanAt(st + OFF_SEG_TX).active = 0;
      d.txHead = -1;
      d.txAwait = 0;
    } else {
      txAbandon(st);
    }
  }
}

/** The TX queue stops with a frame half-sent: complete its chain (nothing more of it goes out). */
function txAbandon(st: usize): void {
  const d = device(st);
  if (d.txHead < 0) return;
  const q = queueAt(st, QueueIndex.TX);
  const s = segPlanAt(st + OFF_SEG_TX);
  if (s.active != 0 && s.next != 0) queueAddUsed(q, <u32>d.txHead, 0);
  else queueUnpop(q);
  s.active = 0;
  d.txHead = -1;
  d.txAwait = 0;
}

/** The 6-byte MAC at logical offset `off` of `sg`, in the low 48 bits (as Device.mac). */
function macAt(st: usize, sg: Sg, off: u32): u64 {
  const tmp = st + OFF_RX_BACKEND_HDR + 8; // 8 free bytes: the tun_hdr slot is 8 of 16
  store<u64>(tmp, 0);
  sgRead(sg, off, tmp, 6);
  return load<u64>(tmp);
}

/** Source MAC check for vmd's "locked lladdr": frame bytes 6..11 must be the device's MAC. */
function sourceIsOurs(st: usize, sg: Sg): bool {
  return macAt(st, sg, 6) == device(st).mac;
}

/**
 * Finishes the frame returned by txNext(): `sent` >= 0 means the backend took it, Code.RETRY
 * that it could not now (the frame stays on the ring, or for a segment, stays the next one),
 * any other negative value that it failed (counted as DROP_BACKEND; the rest of a segmented
 * frame is dropped with it). The buffer goes back to the guest at the next txFlush().
 */
export function txDone(st: usize, sent: i32): i32 {
  const d = device(st);
  if (d.txAwait == 0 || d.txHead < 0) return Code.SEQUENCE;
  d.txAwait = 0;
  const q = queueAt(st, QueueIndex.TX);
  const s = segPlanAt(st + OFF_SEG_TX);
  if (s.active != 0) {
    if (sent == Code.RETRY) {
      if (s.next != 0) return Code.OK;
      // Nothing of it went out yet: the chain goes back to the ring as a whole.
      s.active = 0;
      queueUnpop(q);
      d.txHead = -1;
      return Code.OK;
    }
    if (sent >= 0) {
      count(st, QueueIndex.TX, Metric.PACKETS);
      count(st, QueueIndex.TX, Metric.GSO_SEGMENTS);
      countAdd(st, QueueIndex.TX, Metric.BYTES, s.segLen);
      s.next++;
      if (s.next < s.count) return Code.OK;
    } else {
      count(st, QueueIndex.TX, Metric.DROP_BACKEND);
    }
    s.active = 0;
    queueAddUsed(q, <u32>d.txHead, 0);
    d.txHead = -1;
    return Code.OK;
  }
  if (sent == Code.RETRY) {
    // Backpressure: the chain goes back to the ring and is taken again by the next txNext().
    queueUnpop(q);
    d.txHead = -1;
    return Code.OK;
  }
  // virtio 1.2, 2.7.8: used length is the bytes written into the buffer: none for TX.
  queueAddUsed(q, <u32>d.txHead, 0);
  if (sent >= 0) {
    count(st, QueueIndex.TX, Metric.PACKETS);
    countAdd(st, QueueIndex.TX, Metric.BYTES, d.txFrameLen);
  } else {
    count(st, QueueIndex.TX, Metric.DROP_BACKEND);
  }
  d.txHead = -1;
  return Code.OK;
}

/** Publishes completed buffers of queue `qi`; returns 1 if an interrupt is due, else 0. */
export function flush(st: usize, qi: u32): i32 {
  const q = queueAt(st, qi);
  if (q.size == 0 || q.broken != 0 || q.used == 0) return 0;
  const r = queuePublish(q, has(device(st).negotiated, Feature.EVENT_IDX));
  if (r < 0) return 0;
  count(st, qi, r != 0 ? Metric.INTERRUPTS : Metric.INTERRUPTS_SUPPRESSED);
  return r;
}

// ─────────────────────────────────────── RX ────────────────────────────────────────────────

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
      queueUnpop(q);
      return 1;
    }
    if (bad) {
      // Too fragmented to describe, or too small for anything: give it back empty rather
      // than stall the ring on it.
      queueAddUsed(q, <u32>head, 0);
      count(st, QueueIndex.RX, Metric.DROP_BUFFER_TOO_SMALL);
      continue;
    }
    const e = poolAt(st, d.rxPoolN);
    e.head = <u32>head;
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
  q.nextAvail = (q.nextAvail - d.rxPoolN) & 0xffff;
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
    store<u64>(rxIov, d.nativeBase + <u64>(st + OFF_RX_BACKEND_HDR), 0);
    store<u64>(rxIov, <u64>TunHdr.SIZE, 8);
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

/** Bytes of backend header at the front of what the backend reads into rxIov(). */
function rxBackendHdrLen(d: Device): u32 {
  if (d.backend == BackendKind.TUN_HDR) return TunHdr.SIZE;
  if (d.backend == BackendKind.VNET_HDR) return d.hdrLen;
  return 0;
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
  const bhl = rxBackendHdrLen(d);
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
    else if (d.lockedMac != 0 && !destinationAccepted(st, chain)) reason = Metric.DROP_LOCKED_MAC;
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
  store<u64>(st + OFF_STAGING_IOV, <u64>frame, 0);
  store<u64>(st + OFF_STAGING_IOV, <u64>frameLen, 8);
  const area = st + OFF_SEG_RX;
  const guestCsum = has(d.negotiated, Feature.GUEST_CSUM);
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
      const posted = ((availIdx(q) - q.nextAvail) & 0xffff) + d.rxPoolN;
      room = posted >= s.count || posted >= q.size;
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

/** vmd's locked lladdr on RX: only frames for our MAC, broadcast or multicast. */
function destinationAccepted(st: usize, chain: Sg): bool {
  const dst = macAt(st, chain, device(st).hdrLen);
  return (dst & 1) != 0 || dst == device(st).mac;
}

/** Address of counter block of queue `qi` (METRICS_STRIDE bytes). */
export function metricsPtr(st: usize, qi: u32): usize {
  return qi > <u32>QueueIndex.TX ? 0 : metrics(st, qi);
}
