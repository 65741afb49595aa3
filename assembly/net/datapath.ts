// What the TX and RX paths (tx.ts, rx.ts) share: whether a queue may be processed, popping a
// head with notification suppression, preparing a chain walk, the backend's header length,
// publishing completed buffers, and the fault that puts the device in NEEDS_RESET.

import { BackendKind, Code, DeviceEvent, Feature, Layout, Metric, Status, TunHdr } from "../abi";
import {
  queueDisableNotify, queueEnableNotify, queuePop, queuePublish, queueResolve, Virtqueue, POP_EMPTY,
} from "../virtq/queue";
import { count, device, guestMem, queueAt, walkState, Device, OFF_RX_BACKEND_HDR } from "../state";
import { has } from "./features";
import { Sg, sgRead } from "./sg";
import { logQueue } from "./dirty-log";

/** Largest frame accepted without segmentation offload: 64 KiB IP datagram + Ethernet + VLAN. */
// @ts-ignore: decorator
@inline export const MAX_FRAME: u32 = 65535 + 14 + 4;

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

/**
 * Checks that a queue may be processed now and its ring addresses still resolve. Returns
 * Code.OK, NOT_READY or BROKEN. The device does not touch rings before DRIVER_OK
 * (virtio 1.2, 2.1.2), nor a stopped queue.
 */
export function queueUsable(st: usize, qi: u32): i32 {
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
export function popHead(st: usize, qi: u32, q: Virtqueue, eventIdx: bool): i32 {
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
export function walkInto(st: usize, iov: usize, first: u32, writable: bool): void {
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

/** Bytes of the backend's header in front of each TX frame. */
export function backendHdrLen(d: Device): u32 {
  if (d.backend == BackendKind.VNET_HDR) return d.hdrLen;
  if (d.backend == BackendKind.TUN_HDR) return TunHdr.SIZE;
  return 0;
}

/** The 6-byte MAC at logical offset `off` of `sg`, in the low 48 bits (as Device.mac). */
export function macAt(st: usize, sg: Sg, off: u32): u64 {
  const tmp = st + OFF_RX_BACKEND_HDR + 8; // 8 free bytes: the tun_hdr slot is 8 of 16
  store<u64>(tmp, 0);
  sgRead(sg, off, tmp, 6);
  return load<u64>(tmp);
}

/** Publishes completed buffers of queue `qi`; returns 1 if an interrupt is due, else 0. */
export function flush(st: usize, qi: u32): i32 {
  const q = queueAt(st, qi);
  if (q.size == 0 || q.broken != 0 || q.used == 0) return 0;
  const r = queuePublish(q, has(device(st).negotiated, Feature.EVENT_IDX));
  if (r < 0) return 0;
  // Migration: the used ring (or a packed ring's descriptors) was written.
  logQueue(st, q);
  count(st, qi, r != 0 ? Metric.INTERRUPTS : Metric.INTERRUPTS_SUPPRESSED);
  return r;
}
