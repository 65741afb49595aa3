// The virtio-net device model (virtio 1.2, 5.1), transport-neutral: status and feature
// negotiation, config space, queue setup, and the TX/RX paths. The transport (PCI, MMIO,
// vhost-user, an emulator's registers) lives in the host and calls in here.

import {
  BackendKind, Code, CsumPolicy, DeviceEvent, Feature, Layout, Metric, NetHdr, QueueIndex, Status,
  TunHdr,
} from "../abi";
import { memClear } from "../mem/guest";
import { walkChain, WALK_TOO_MANY } from "../virtq/chain";
import { IOV_SIZE } from "../virtq/layout";
import {
  queueAddUsed, queueDisableNotify, queueEnableNotify, queuePop, queuePublish, queueReset,
  queueResolve, queueSizeValid, queueUnpop, SplitQueue, POP_EMPTY,
} from "../virtq/queue";
import {
  count, countAdd, device, guestMem, metrics, queueAt, sgAt, walkState, Device, MAGIC,
  METRICS_STRIDE, OFF_RX_BACKEND_HDR, OFF_RX_CHAIN_IOV, OFF_RX_IOV, OFF_SG_CHAIN, OFF_SG_RX,
  OFF_SG_TX, OFF_TX_BACKEND_HDR, OFF_TX_GUEST_HDR, OFF_TX_IOV, STATE_SIZE,
} from "../state";
import { bit, dependenciesMet, has, DEFAULT_OFFER, IMPLEMENTED } from "./features";
import { rxTranslate, txTranslate } from "./offload";
import { ETH_HLEN } from "./parse";
import { Sg, sgRead, sgTrimFront } from "./sg";

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
  d.rxHead = -1;
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
 * Each frame returned must be finished with txDone() before the next txNext().
 */
export function txNext(st: usize): i32 {
  const d = device(st);
  if (d.txHead >= 0) return Code.SEQUENCE;
  const usable = queueUsable(st, QueueIndex.TX);
  if (usable != Code.OK) return usable;
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

    const bhl = backendHdrLen(d);
    if (bhl != 0) {
      store<u64>(iov, d.nativeBase + <u64>(st + OFF_TX_BACKEND_HDR), 0);
      store<u64>(iov, <u64>bhl, 8);
      d.txIovStart = <u32>OFF_TX_IOV;
    } else {
      d.txIovStart = <u32>(OFF_TX_IOV + IOV_SIZE);
    }
    d.txHead = head;
    d.txFrameLen = frameLen;
    return <i32>(sg.n + (bhl != 0 ? 1 : 0));
  }
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
 * that it could not now (the frame stays on the ring), any other negative value that it failed
 * (counted as DROP_BACKEND). The buffer goes back to the guest at the next txFlush().
 */
export function txDone(st: usize, sent: i32): i32 {
  const d = device(st);
  if (d.txHead < 0) return Code.SEQUENCE;
  const q = queueAt(st, QueueIndex.TX);
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

/**
 * Takes the next RX chain and prepares the iovecs the backend reads into (rxIov()): for a
 * virtio_net_hdr backend the whole chain (its header lands where the guest's goes), for
 * tun_hdr an 8-byte header slot then the chain past the guest header, for plain frames the
 * chain past the guest header. Returns the iovec count, 0 if the guest posted no buffer
 * (notifications are re-enabled), or a negative Code. Finish with rxCommit() or rxAbort().
 */
export function rxNext(st: usize): i32 {
  const d = device(st);
  if (d.rxHead >= 0) return Code.SEQUENCE;
  const usable = queueUsable(st, QueueIndex.RX);
  if (usable != Code.OK) return usable;
  const q = queueAt(st, QueueIndex.RX);
  const eventIdx = has(d.negotiated, Feature.EVENT_IDX);
  const chainIov = st + OFF_RX_CHAIN_IOV;
  queueDisableNotify(q, eventIdx);

  while (true) {
    const head = popHead(st, QueueIndex.RX, q, eventIdx);
    if (head == POP_EMPTY) {
      count(st, QueueIndex.RX, Metric.DROP_NO_BUFFER);
      return 0;
    }
    if (head < 0) return head;
    walkInto(st, chainIov, 0, true);
    const w = walkState(st);
    const n = walkChain(q, guestMem(st), <u32>head, w);
    if (n < 0 && n != WALK_TOO_MANY) { fault(st, QueueIndex.RX, <u32>-n); return Code.BROKEN; }
    // A chain too fragmented to describe, or too small for a header and an Ethernet header,
    // cannot hold any frame: give it back empty rather than stall the ring on it.
    if (n == WALK_TOO_MANY || <u32>w.total < d.hdrLen + ETH_HLEN) {
      queueAddUsed(q, <u32>head, 0);
      count(st, QueueIndex.RX, Metric.DROP_BUFFER_TOO_SMALL);
      continue;
    }
    const chain = sgAt(st, OFF_SG_CHAIN);
    chain.iov = <u32>chainIov;
    chain.n = <u32>n;
    chain.nb = d.nativeBase;
    d.rxHead = head;
    d.rxCap = <u32>w.total;

    if (d.backend == BackendKind.VNET_HDR) {
      d.rxIovStart = <u32>OFF_RX_CHAIN_IOV;
      d.rxIovCount = <u32>n;
      return n;
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
    memory.copy(first, chainIov, <usize>n * IOV_SIZE);
    rx.iov = <u32>first;
    rx.n = <u32>n;
    rx.nb = d.nativeBase;
    sgTrimFront(rx, d.hdrLen);
    const total = rx.n + (d.backend == BackendKind.TUN_HDR ? 1 : 0);
    d.rxIovStart = <u32>(rxIov - st);
    d.rxIovCount = total;
    return <i32>total;
  }
}

/** Bytes of backend header at the front of what the backend reads into rxIov(). */
function rxBackendHdrLen(d: Device): u32 {
  if (d.backend == BackendKind.TUN_HDR) return TunHdr.SIZE;
  if (d.backend == BackendKind.VNET_HDR) return d.hdrLen;
  return 0;
}

/**
 * Completes the pending RX chain after the backend wrote `nread` bytes into rxIov() (its
 * header included). Translates the header, applies the MAC filter and the MTU rule, and adds
 * the used element. Returns the frame length delivered, or -(Metric.DROP_*) if the frame was
 * dropped, in which case the chain stays with the device for the next frame.
 */
export function rxCommit(st: usize, nread: u32): i32 {
  const d = device(st);
  const head = d.rxHead;
  if (head < 0) return Code.SEQUENCE;
  const q = queueAt(st, QueueIndex.RX);
  const chain = sgAt(st, OFF_SG_CHAIN);
  const bhl = rxBackendHdrLen(d);
  let reason: u32 = 0;
  let frameLen: u32 = 0;
  if (nread < bhl + ETH_HLEN) reason = Metric.DROP_RUNT;
  else {
    frameLen = nread - bhl;
    if (frameLen > d.rxCap - d.hdrLen) reason = Metric.DROP_BUFFER_TOO_SMALL;
    else if (d.lockedMac != 0 && !destinationAccepted(st, chain)) reason = Metric.DROP_LOCKED_MAC;
  }
  if (reason == 0) {
    const r = rxTranslate(st, chain, frameLen, d.rxCap);
    if (r < 0) reason = <u32>-r;
    else frameLen = <u32>r;
  }
  d.rxHead = -1;
  if (reason != 0) {
    queueUnpop(q);
    count(st, QueueIndex.RX, reason);
    return -(<i32>reason);
  }
  queueAddUsed(q, <u32>head, d.hdrLen + frameLen);
  count(st, QueueIndex.RX, Metric.PACKETS);
  countAdd(st, QueueIndex.RX, Metric.BYTES, frameLen);
  return <i32>frameLen;
}

/** Gives the pending RX chain back unused (the backend had nothing, or the frame did not fit). */
export function rxAbort(st: usize): i32 {
  const d = device(st);
  if (d.rxHead < 0) return Code.SEQUENCE;
  queueUnpop(queueAt(st, QueueIndex.RX));
  d.rxHead = -1;
  return Code.OK;
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
