// The virtio-net device model (virtio 1.2, 5.1), transport-neutral: the control side. Status
// and feature negotiation, config space, queue setup, and what happens to the data path when
// the memory table changes. The transport (PCI, MMIO, vhost-user, an emulator's registers)
// lives in the host and calls in here; the data path is tx.ts and rx.ts.

import {
  BackendKind, Code, CsumPolicy, DeviceEvent, Feature, GsoMask, Layout, NetHdr, QueueIndex, Status,
} from "../abi";
import { memClear } from "../mem/guest";
import {
  queueDisableNotify, queueEnableNotify, queuePublish, queueReset, queueResolve, queueSizeValid,
} from "../virtq/queue";
import { device, guestMem, metrics, queueAt, MAGIC, OFF_SEG_TX, STATE_SIZE } from "../state";
import { dependenciesMet, has, DEFAULT_OFFER, GUEST_OFFLOADS, IMPLEMENTED } from "./features";
import { filterNegotiated, filterReset } from "./filter";
import { segPlanAt } from "./segment";
import { fault, queueUsable } from "./datapath";
import { txAbandon } from "./tx";
import { rxPoolRelease } from "./rx";

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
  d.maxPairs = 1;
  d.pairs = 1;
  memClear(guestMem(st));
  filterReset(st);
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
  queueReset(queueAt(st, QueueIndex.CTRL));
  d.announce = 0;
  d.pairs = 1;
  d.guestOffloads = 0;
  d.rxFeatures = 0;
  filterReset(st);
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
      d.rxFeatures = f;
      d.guestOffloads = f & GUEST_OFFLOADS;
      filterNegotiated(st);
      d.hdrLen = has(f, Feature.VERSION_1) || has(f, Feature.MRG_RXBUF) ? NetHdr.SIZE_V1 : NetHdr.SIZE_LEGACY;
      d.events |= DeviceEvent.NEGOTIATED;
    }
  }
  // FEATURES_OK cannot be cleared except by reset.
  next |= d.status & Status.FEATURES_OK;
  d.status = next;
  return next;
}

/** Config space (virtio 1.2, 5.1.4): mac[6], status u16, max_virtqueue_pairs u16, mtu u16. */
export function configByte(st: usize, off: u32): u32 {
  const d = device(st);
  if (off < 6) return <u32>(d.mac >> (<u64>off * 8)) & 0xff;
  let v: u32 = 0;
  if (off < 8) v = (d.linkUp != 0 ? 1 : 0) | (d.announce != 0 ? 2 : 0); // VIRTIO_NET_S_LINK_UP, S_ANNOUNCE
  else if (off < 10) v = d.maxPairs;
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

export function queueSetSize(st: usize, qi: u32, n: u32): i32 {
  if (qi > <u32>QueueIndex.CTRL || !queueSizeValid(n, has(device(st).negotiated, Feature.RING_PACKED))) return Code.INVALID;
  const q = queueAt(st, qi);
  if (q.enabled != 0) return Code.SEQUENCE;
  q.size = n;
  return Code.OK;
}

export function queueSetAddrs(st: usize, qi: u32, desc: u64, avail: u64, used: u64): i32 {
  if (qi > <u32>QueueIndex.CTRL) return Code.INVALID;
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
  if (qi > <u32>QueueIndex.CTRL) return Code.INVALID;
  const q = queueAt(st, qi);
  if (!on) {
    if (qi == <u32>QueueIndex.RX) rxPoolRelease(st);
    else if (qi == <u32>QueueIndex.TX) txAbandon(st);
    // Whatever was completed reaches the driver before the queue stops.
    if (q.enabled != 0 && q.broken == 0 && q.used != 0) queuePublish(q, has(device(st).negotiated, Feature.EVENT_IDX));
    q.enabled = 0;
    return Code.OK;
  }
  if (q.size == 0) return Code.INVALID;
  const packed = has(device(st).negotiated, Feature.RING_PACKED);
  if (!queueSizeValid(q.size, packed)) return Code.INVALID;
  q.packed = packed ? 1 : 0;
  q.memGen = 0;
  const r = queueResolve(q, guestMem(st));
  if (r < 0) {
    fault(st, qi, <u32>-r);
    return Code.BROKEN;
  }
  if (packed) {
    // Where to resume (vhost-user SET_VRING_BASE: avail position | wrap << 15 | used position
    // << 16 | wrap << 31); a ring enabled for the first time since reset starts fresh, both
    // positions at 0 in wrap 1 (virtio 1.2, 2.8.1); one enabled again goes on where it was.
    if (q.resumeSet != 0 || q.started == 0) {
      let b = q.resumeSet != 0 ? q.resume : 0x80008000;
      // DPDK's virtio-user and vhost library send (and take) the avail half only: the used
      // position is the avail one then (nothing is in flight while a ring is stopped).
      if ((b >>> 16) == 0) b |= (b & 0xffff) << 16;
      q.resumeSet = 0;
      if ((b & 0x7fff) >= q.size || ((b >> 16) & 0x7fff) >= q.size) return Code.INVALID;
      q.nextAvail = b & 0x7fff;
      q.availWrap = (b >> 15) & 1;
      q.nextUsed = (b >> 16) & 0x7fff;
      q.usedWrap = b >> 31;
      q.signalled = q.nextUsed | (q.usedWrap << 15);
    }
    q.started = 1;
  } else {
    q.nextUsed = <u32>load<u16>(q.used, 2);
  }
  q.numAdded = 0;
  q.notifyOff = 0;
  q.polling = 0;
  q.enabled = 1;
  return Code.OK;
}

export function queueSetNextAvail(st: usize, qi: u32, idx: u32): i32 {
  if (qi > <u32>QueueIndex.CTRL) return Code.INVALID;
  const q = queueAt(st, qi);
  if (q.enabled != 0) return Code.SEQUENCE;
  q.nextAvail = idx & 0xffff;
  q.resume = idx;
  q.resumeSet = 1;
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

/** Address of counter block of queue `qi` (METRICS_STRIDE bytes). */
export function metricsPtr(st: usize, qi: u32): usize {
  return qi > <u32>QueueIndex.CTRL ? 0 : metrics(st, qi);
}
