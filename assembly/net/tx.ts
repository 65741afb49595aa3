// The TX path (virtio 1.2, 5.1.6.2): frames from the guest's transmit ring to the backend as
// iovec arrays into guest RAM, with header translation, policies, the locked MAC, and large
// segments split for a backend that cannot take them.

import { BackendKind, Code, Feature, Layout, Metric, NetHdr, QueueIndex } from "../abi";
import { walkChain, WALK_TOO_MANY } from "../virtq/chain";
import { iovecSet, IOV_SIZE } from "../virtq/layout";
import { queueAddUsed, queueDisableNotify, queueUnpop, Virtqueue, POP_EMPTY } from "../virtq/queue";
import {
  count, countAdd, device, guestMem, queueAt, sgAt, walkState, OFF_SEG_BACKEND_HDR, OFF_SEG_IOV, OFF_SEG_TX,
  OFF_SG_TX, OFF_TX_BACKEND_HDR, OFF_TX_GUEST_HDR, OFF_TX_IOV,
} from "../state";
import { has } from "./features";
import { txTranslate, TX_SEGMENT } from "./offload";
import { ETH_HLEN } from "./parse";
import { segHeaders, segmentBuild, segmentCsumOffset, segmentPayloadOffset, segPlanAt } from "./segment";
import { writeVirtioHdr } from "./hdr";
import { Sg, sgRead, sgSliceIov, sgTrimFront } from "./sg";
import { MAX_FRAME, fault, queueUsable, popHead, walkInto, backendHdrLen, macAt } from "./datapath";

/** Drops a TX chain: completes it (used len 0) and counts why. */
function txDrop(st: usize, q: Virtqueue, head: u32, reason: u32): void {
  queueAddUsed(q, head, 0);
  count(st, QueueIndex.TX, reason);
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
    const token = w.token;
    if (n == WALK_TOO_MANY) { txDrop(st, q, token, Metric.DROP_TOO_MANY_SEGMENTS); continue; }
    if (n < 0) { fault(st, QueueIndex.TX, <u32>-n); return Code.BROKEN; }

    sg.iov = <u32>(iov + IOV_SIZE);
    sg.n = <u32>n;
    sg.nb = d.nativeBase;
    const total = <u32>w.total;
    // The header may be split across descriptors anywhere (ANY_LAYOUT / VERSION_1).
    if (total < d.hdrLen) { txDrop(st, q, token, Metric.DROP_HDR_SHORT); continue; }
    sgRead(sg, 0, st + OFF_TX_GUEST_HDR, d.hdrLen);
    sgTrimFront(sg, d.hdrLen);
    const frameLen = total - d.hdrLen;
    if (frameLen < ETH_HLEN) { txDrop(st, q, token, Metric.DROP_RUNT); continue; }
    if (frameLen > MAX_FRAME) { txDrop(st, q, token, Metric.DROP_OVERSIZE); continue; }
    if (d.lockedMac != 0 && !sourceIsOurs(st, sg)) { txDrop(st, q, token, Metric.DROP_LOCKED_MAC); continue; }

    const r = txTranslate(st, sg, frameLen);
    if (r < 0) { txDrop(st, q, token, <u32>-r); continue; }
    d.txHead = <i32>token;
    d.txFrameLen = frameLen;
    if (r == TX_SEGMENT) {
      count(st, QueueIndex.TX, Metric.GSO_SEGMENTED);
      return txSegmentNext(st);
    }

    const bhl = backendHdrLen(d);
    if (bhl != 0) {
      iovecSet(iov, 0, d.nativeBase + <u64>(st + OFF_TX_BACKEND_HDR), bhl);
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
    iovecSet(iov, 0, d.nativeBase + <u64>bh, bhl);
    n = 1;
  }
  iovecSet(iov, n, d.nativeBase + <u64>segHeaders(st + OFF_SEG_TX), s.hdrLen);
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

/** The TX queue stops with a frame half-sent: complete its chain (nothing more of it goes out). */
export function txAbandon(st: usize): void {
  const d = device(st);
  if (d.txHead < 0) return;
  const q = queueAt(st, QueueIndex.TX);
  const s = segPlanAt(st + OFF_SEG_TX);
  if (s.active != 0 && s.next != 0) queueAddUsed(q, <u32>d.txHead, 0);
  else queueUnpop(q, <u32>d.txHead);
  s.active = 0;
  d.txHead = -1;
  d.txAwait = 0;
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
      queueUnpop(q, <u32>d.txHead);
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
    queueUnpop(q, <u32>d.txHead);
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
