// Checksum offload translation between the guest's virtio_net_hdr and the backend's header:
// virtio_net_hdr itself (Linux tap with IFF_VNET_HDR, in-process ports), struct tun_hdr
// (OpenBSD tap with TUNSCAP) or none (plain frames). This is vmd's vhdr2thdr / thdr2vhdr
// with the reviewers' questions answered:
//   - a partial checksum is handed on untouched only to a receiver that said it can finish it
//     (a backend that takes one, a guest that negotiated GUEST_CSUM); everyone else gets the
//     checksum computed here, in place on RX, through a 2-byte patch iovec on TX (the device
//     never writes a guest's TX buffer);
//   - csum_start/csum_offset are checked against the frame before they are used;
//   - a guest that sets NEEDS_CSUM without CSUM gets the configured CsumPolicy.

import { BackendKind, CsumPolicy, Feature, GsoMask, Layout, Metric, NetHdr, QueueIndex, TunHdr } from "../abi";
import {
  count, device, parsed, Device, OFF_PARSE_SCRATCH, OFF_RX_BACKEND_HDR, OFF_SCRATCH, OFF_TX_BACKEND_HDR,
  OFF_TX_GUEST_HDR, OFF_TX_PATCH, OFF_SEG_TX,
} from "../state";
import { add16, beWord, finish } from "./checksum";
import { gsoAllowed, has } from "./features";
import {
  TH_FLAGS, TH_MSS, TH_VTAG, VH_CSUM_OFFSET, VH_CSUM_START, VH_FLAGS, VH_GSO_SIZE, VH_GSO_TYPE, VH_HDR_LEN,
  writeVirtioHdr,
} from "./hdr";
import {
  csumFieldOffset, parseSg, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3_IPV4,
  L3_IPV6, Parsed,
} from "./parse";
import { Sg, sgPatch, sgRead, sgStore16, sgSum, sgWrite } from "./sg";
import { segmentPlan } from "./segment";

/** Room for an Ethernet header with one 802.1Q tag on top of the MTU. */
// @ts-ignore: decorator
@inline const L2_OVERHEAD: u32 = 18;

/** Result of a translation: >= 0 ok, else -(Metric.DROP_*) naming why the frame is dropped. */
// @ts-ignore: decorator
@inline export const XLATE_OK: i32 = 0;
/** TX result: a large segment the backend cannot take; segmentPlan() has planned its split. */
// @ts-ignore: decorator
@inline export const TX_SEGMENT: i32 = 1;

/** RX result: a GSO frame the guest cannot take whole; the caller segments it. */
// @ts-ignore: decorator
@inline export const RX_SEGMENT: i32 = -1000;

/** Whether the backend takes a GSO frame of this type whole (DeviceOption.BACKEND_GSO). */
function backendTakesGso(d: Device, gsoType: u32): bool {
  if (d.backend == BackendKind.PLAIN) return false;
  const t = gsoType & ~(<u32>NetHdr.GSO_ECN);
  if ((d.backendGso & (<u32>1 << t)) == 0) return false;
  if ((gsoType & NetHdr.GSO_ECN) != 0 && (d.backendGso & GsoMask.ECN) == 0) return false;
  // tun_hdr can only say TUN_H_TCP_MSS.
  return d.backend != BackendKind.TUN_HDR || t == NetHdr.GSO_TCPV4 || t == NetHdr.GSO_TCPV6;
}

/** True if the checksum field [start + off, +2) lies inside a frame of `len` bytes. */
// @ts-ignore: decorator
@inline function csumInFrame(start: u32, off: u32, len: u32): bool {
  return start < len && off + 2 <= len - start;
}

/**
 * Folded little-endian-order pseudo-header sum for the L4 datagram described by `p`
 * (RFC 793/768 for IPv4, RFC 8200 8.1 for IPv6), over `frame` starting at logical `base`.
 * The destination is the final one when a source route is under way (Parsed.pseudoDstOff).
 */
export function pseudoSum(frame: Sg, base: u32, p: Parsed, proto: u32): u32 {
  const l4len = p.l3End - p.l4Off;
  let s: u32;
  if (p.l3Kind == L3_IPV4) {
    s = add16(sgSum(frame, base + p.l3Off + 12, 4), sgSum(frame, base + p.pseudoDstOff, 4));
    s = add16(s, beWord(l4len));
  } else {
    s = add16(sgSum(frame, base + p.l3Off + 8, 16), sgSum(frame, base + p.pseudoDstOff, 16));
    s = add16(s, beWord(l4len >> 16));
    s = add16(s, beWord(l4len));
  }
  return add16(s, beWord(proto));
}

// ───────────────────────────────────────── TX ─────────────────────────────────────────────

/**
 * Finishes the partial checksum at csumStart in software for a TX frame: sums from csumStart
 * to the end of the frame (the field holds the pseudo-header sum, virtio 1.2, 5.1.6.2) and
 * makes the 2-byte result read from the patch area instead of the guest's buffer.
 */
function txCompleteInSoftware(st: usize, sg: Sg, frameLen: u32, start: u32, off: u32): i32 {
  const v = finish(sgSum(sg, start, frameLen - start));
  store<u16>(st + OFF_TX_PATCH, v);
  // Leave headroom for the backend header iovec in front (slot 0) of the array.
  if (!sgPatch(sg, Layout.MAX_IOV - 1, start + off, 2, st + OFF_TX_PATCH)) return -Metric.DROP_TOO_MANY_SEGMENTS;
  count(st, QueueIndex.TX, Metric.CSUM_SOFTWARE);
  return XLATE_OK;
}

/**
 * Translates the guest's TX header (copied to OFF_TX_GUEST_HDR) for the backend: writes the
 * backend's header to OFF_TX_BACKEND_HDR and, where a checksum must be finished here,
 * patches `sg`. Returns XLATE_OK or -(Metric.DROP_*).
 */
export function txTranslate(st: usize, sg: Sg, frameLen: u32): i32 {
  const d = device(st);
  const gh = st + OFF_TX_GUEST_HDR;
  const bh = st + OFF_TX_BACKEND_HDR;
  memory.fill(bh, 0, 16);
  const flags = <u32>load<u8>(gh, VH_FLAGS);
  const gsoType = <u32>load<u8>(gh, VH_GSO_TYPE);
  if (gsoType != NetHdr.GSO_NONE) return txGso(st, sg, frameLen, flags, gsoType);

  // virtio 1.2, 5.1.6.2.2: the device ignores flags it does not know and csum_start/offset
  // unless NEEDS_CSUM is set. DATA_VALID and RSC_INFO are not meaningful on TX.
  if ((flags & NetHdr.F_NEEDS_CSUM) == 0) {
    count(st, QueueIndex.TX, Metric.CSUM_NONE);
    return XLATE_OK;
  }

  const start = <u32>load<u16>(gh, VH_CSUM_START);
  const off = <u32>load<u16>(gh, VH_CSUM_OFFSET);
  if (!csumInFrame(start, off, frameLen)) return -Metric.DROP_BAD_CSUM_OFFSETS;

  let software = false;
  if (!has(d.negotiated, Feature.CSUM)) {
    count(st, QueueIndex.TX, Metric.CSUM_UNNEGOTIATED);
    if (d.csumPolicy == CsumPolicy.DROP) return -Metric.DROP_CSUM_POLICY;
    software = d.csumPolicy == CsumPolicy.COMPLETE;
  }

  if (d.backend == BackendKind.VNET_HDR && !software) {
    // Pass the partial checksum through: the kernel (or the peer port) finishes it, or never
    // needs to (virtio 1.2, 5.1.5: between two guests nobody computes it).
    writeVirtioHdr(bh, d.hdrLen, NetHdr.F_NEEDS_CSUM, NetHdr.GSO_NONE, 0, 0, start, off, 0);
    count(st, QueueIndex.TX, Metric.CSUM_OFFLOADED);
    return XLATE_OK;
  }

  if (d.backend == BackendKind.TUN_HDR && !software) {
    // tun_hdr can only say "TCP" or "UDP": confirm by parsing that the field really is the
    // TCP or UDP checksum of a complete datagram before claiming so.
    const p = parsed(st);
    parseSg(sg, 0, frameLen, st + OFF_PARSE_SCRATCH, p);
    if (p.l3Kind != 0 && p.fragment == 0 && p.l4Off == start && p.l3End == frameLen) {
      let th: u32 = 0;
      if (p.l4Proto == IPPROTO_TCP && off == 16) th = TunHdr.F_TCP_CSUM;
      else if (p.l4Proto == IPPROTO_UDP && off == 6) th = TunHdr.F_UDP_CSUM;
      if (th != 0 && start + off + 2 <= p.l3End) {
        store<u16>(bh, <u16>th, TH_FLAGS);
        count(st, QueueIndex.TX, Metric.CSUM_OFFLOADED);
        return XLATE_OK;
      }
    }
  }

  return txCompleteInSoftware(st, sg, frameLen, start, off);
}

/**
 * A GSO frame from the guest (virtio 1.2, 5.1.6.2): the type must have been negotiated
 * (HOST_TSO4/6, HOST_ECN, HOST_USO), NEEDS_CSUM must be set with offsets inside the frame and
 * the field where TCP or UDP keeps it, gso_size must be non-zero. A backend that takes the
 * type gets it whole: a virtio_net_hdr backend as is (the kernel segments only if the packet
 * leaves the machine), tun_hdr as TUN_H_TCP_MSS after parsing confirms TCP at csum_start.
 * Any other backend gets it segmented here (TX_SEGMENT). hdr_len is a hint (no GUEST_HDRLEN)
 * and is never used.
 */
function txGso(st: usize, sg: Sg, frameLen: u32, flags: u32, gsoType: u32): i32 {
  const d = device(st);
  const gh = st + OFF_TX_GUEST_HDR;
  const bh = st + OFF_TX_BACKEND_HDR;
  if (!gsoAllowed(d.negotiated, gsoType, true)) return -Metric.DROP_GSO_UNSUPPORTED;
  const start = <u32>load<u16>(gh, VH_CSUM_START);
  const off = <u32>load<u16>(gh, VH_CSUM_OFFSET);
  const gsoSize = <u32>load<u16>(gh, VH_GSO_SIZE);
  const udp = (gsoType & ~(<u32>NetHdr.GSO_ECN)) == NetHdr.GSO_UDP_L4;
  if ((flags & NetHdr.F_NEEDS_CSUM) == 0 || gsoSize == 0 || off != (udp ? 6 : 16)) return -Metric.DROP_BAD_GSO;
  if (!csumInFrame(start, off, frameLen)) return -Metric.DROP_BAD_CSUM_OFFSETS;
  if (!backendTakesGso(d, gsoType)) {
    return segmentPlan(st, st + OFF_SEG_TX, sg, 0, frameLen, gsoType, gsoSize, start, d.backend == BackendKind.VNET_HDR) < 0
      ? -Metric.DROP_BAD_GSO : TX_SEGMENT;
  }
  if (d.backend == BackendKind.VNET_HDR) {
    writeVirtioHdr(bh, d.hdrLen, NetHdr.F_NEEDS_CSUM, gsoType, <u32>load<u16>(gh, VH_HDR_LEN), gsoSize, start, off, 0);
  } else {
    const p = parsed(st);
    parseSg(sg, 0, frameLen, st + OFF_PARSE_SCRATCH, p);
    if (p.l4Proto != IPPROTO_TCP || p.fragment != 0 || p.l4Off != start || p.l3End != frameLen) return -Metric.DROP_BAD_GSO;
    store<u16>(bh, <u16>(TunHdr.F_TCP_CSUM | TunHdr.F_TCP_MSS), TH_FLAGS);
    store<u16>(bh, <u16>gsoSize, TH_MSS);
  }
  count(st, QueueIndex.TX, Metric.CSUM_OFFLOADED);
  count(st, QueueIndex.TX, Metric.GSO_OFFLOADED);
  return XLATE_OK;
}

// ───────────────────────────────────────── RX ─────────────────────────────────────────────

/**
 * Computes the checksum of the L4 datagram of `p` from scratch, in place in the guest's RX
 * buffer: zeroes the field, sums pseudo-header (none for ICMPv4) and datagram up to the IP
 * end (so Ethernet padding is never summed), stores the result.
 */
function rxFullChecksum(st: usize, chain: Sg, base: u32, p: Parsed, fieldOff: u32): void {
  const scratch = st + OFF_SCRATCH;
  const field = base + p.l4Off + fieldOff;
  sgStore16(chain, field, 0, scratch);
  let s = sgSum(chain, base + p.l4Off, p.l3End - p.l4Off);
  if (p.l4Proto != IPPROTO_ICMP) s = add16(s, pseudoSum(chain, base, p, p.l4Proto));
  sgStore16(chain, field, finish(s), scratch);
}

/** IPv4 header checksum (RFC 791) computed in place. */
function rxIpv4HeaderChecksum(st: usize, chain: Sg, base: u32, p: Parsed): void {
  const scratch = st + OFF_SCRATCH;
  const field = base + p.l3Off + 10;
  sgStore16(chain, field, 0, scratch);
  const ihl = p.l4Off - p.l3Off;
  sgStore16(chain, field, finish(sgSum(chain, base + p.l3Off, ihl)), scratch);
}

/**
 * Shifts frame bytes [12, frameLen) right by 4 and writes an 802.1Q tag at 12 (tun_hdr's
 * TUN_H_VTAG: virtio has no VLAN offload field). Copies backwards in PARSE_MAX chunks.
 */
function rxInsertVlanTag(st: usize, chain: Sg, base: u32, frameLen: u32, tci: u32): void {
  const buf = st + OFF_PARSE_SCRATCH;
  let end = frameLen;
  while (end > 12) {
    let chunk = end - 12;
    if (chunk > 1024) chunk = 1024;
    sgRead(chain, base + end - chunk, buf, chunk);
    sgWrite(chain, base + end - chunk + 4, buf, chunk);
    end -= chunk;
  }
  const tag = st + OFF_SCRATCH;
  store<u8>(tag, 0x81, 0);
  store<u8>(tag, 0x00, 1);
  store<u8>(tag, <u8>(tci >> 8), 2);
  store<u8>(tag, <u8>tci, 3);
  sgWrite(chain, base + 12, tag, 4);
}

/**
 * Translates a received frame in the guest's RX chain (`chain`: the guest header at 0, the
 * frame at `base` = hdrLen). The backend's header is in the guest header area (virtio_net_hdr
 * backends) or at OFF_RX_BACKEND_HDR (tun_hdr). Writes the final guest header, finishing in
 * place whatever the guest cannot take. Returns the frame length (it may grow by a re-inserted
 * VLAN tag) or -(Metric.DROP_*).
 */
export function rxTranslate(st: usize, chain: Sg, frameLen: u32, cap: u32): i32 {
  const d = device(st);
  const base = d.hdrLen;
  const guestCsum = has(d.rxFeatures, Feature.GUEST_CSUM);
  const hdr = st + OFF_SCRATCH + 16;
  let flags: u32 = 0;
  let start: u32 = 0;
  let off: u32 = 0;
  let gsoType: u32 = NetHdr.GSO_NONE;
  let gsoSize: u32 = 0;
  let gsoHdrLen: u32 = 0;

  if (d.backend == BackendKind.VNET_HDR) {
    sgRead(chain, 0, hdr, base);
    const inFlags = <u32>load<u8>(hdr, VH_FLAGS);
    gsoType = <u32>load<u8>(hdr, VH_GSO_TYPE);
    if (gsoType != NetHdr.GSO_NONE) {
      gsoSize = <u32>load<u16>(hdr, VH_GSO_SIZE);
      gsoHdrLen = <u32>load<u16>(hdr, VH_HDR_LEN);
      if ((inFlags & NetHdr.F_NEEDS_CSUM) == 0 || gsoSize == 0) return -Metric.DROP_BAD_GSO;
      let ipv6 = false;
      if ((gsoType & ~(<u32>NetHdr.GSO_ECN)) == NetHdr.GSO_UDP_L4) {
        const p = parsed(st);
        parseSg(chain, base, frameLen, st + OFF_PARSE_SCRATCH, p);
        ipv6 = p.l3Kind == L3_IPV6;
      }
      // GSO goes whole only to a guest that negotiated it (virtio 1.2, 5.1.6.4.1); for any
      // other the caller segments it.
      if (!guestCsum || !gsoAllowed(d.rxFeatures, gsoType, false, ipv6)) return RX_SEGMENT;
    }
    if ((inFlags & NetHdr.F_NEEDS_CSUM) != 0) {
      start = <u32>load<u16>(hdr, VH_CSUM_START);
      off = <u32>load<u16>(hdr, VH_CSUM_OFFSET);
      if (!csumInFrame(start, off, frameLen)) return -Metric.DROP_BAD_CSUM_OFFSETS;
      if (guestCsum) {
        flags = NetHdr.F_NEEDS_CSUM;
        count(st, QueueIndex.RX, Metric.CSUM_OFFLOADED);
      } else {
        // virtio 1.2, 5.1.6.4.1: without GUEST_CSUM, flags are 0 and the packet is complete.
        const v = finish(sgSum(chain, base + start, frameLen - start));
        sgStore16(chain, base + start + off, v, st + OFF_SCRATCH);
        start = 0;
        off = 0;
        count(st, QueueIndex.RX, Metric.CSUM_SOFTWARE);
      }
    } else if ((inFlags & NetHdr.F_DATA_VALID) != 0 && guestCsum) {
      flags = NetHdr.F_DATA_VALID;
      count(st, QueueIndex.RX, Metric.CSUM_DATA_VALID);
    } else {
      count(st, QueueIndex.RX, Metric.CSUM_NONE);
    }
  } else if (d.backend == BackendKind.TUN_HDR) {
    const th = st + OFF_RX_BACKEND_HDR;
    const tflags = <u32>load<u16>(th, TH_FLAGS);
    const mss = (tflags & TunHdr.F_TCP_MSS) != 0 ? <u32>load<u16>(th, TH_MSS) : 0;
    if ((tflags & TunHdr.F_TCP_MSS) != 0 && (mss == 0 || (tflags & TunHdr.F_TCP_CSUM) == 0)) return -Metric.DROP_BAD_GSO;
    if ((tflags & TunHdr.F_VTAG) != 0) {
      if (frameLen + 4 > cap - base) return -Metric.DROP_BUFFER_TOO_SMALL;
      rxInsertVlanTag(st, chain, base, frameLen, <u32>load<u16>(th, TH_VTAG));
      frameLen += 4;
      count(st, QueueIndex.RX, Metric.VLAN_REINSERTED);
    }
    const l4flags = tflags & (TunHdr.F_TCP_CSUM | TunHdr.F_UDP_CSUM | TunHdr.F_ICMP_CSUM);
    if ((tflags & TunHdr.F_IPV4_CSUM) != 0 || l4flags != 0) {
      const p = parsed(st);
      parseSg(chain, base, frameLen, st + OFF_PARSE_SCRATCH, p);
      if ((tflags & TunHdr.F_IPV4_CSUM) != 0) {
        if (p.l3Kind != L3_IPV4) return -Metric.DROP_BAD_BACKEND_HDR;
        rxIpv4HeaderChecksum(st, chain, base, p);
        count(st, QueueIndex.RX, Metric.CSUM_SOFTWARE_L3);
      }
      if (l4flags != 0) {
        const want = l4flags == TunHdr.F_TCP_CSUM ? IPPROTO_TCP
          : l4flags == TunHdr.F_UDP_CSUM ? IPPROTO_UDP
          : l4flags == TunHdr.F_ICMP_CSUM ? (p.l3Kind == L3_IPV6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)
          : 0; // more than one flag: the kernel never does that (if_tun.c rejects it on write)
        const fieldOff = csumFieldOffset(want);
        if (want == 0 || p.l3Kind == 0 || p.fragment != 0 || p.l4Proto != want
          || p.l4Off + fieldOff + 2 > p.l3End) return -Metric.DROP_BAD_BACKEND_HDR;
        if (mss != 0) {
          // TUN_H_TCP_MSS: a TSO frame; virtio can carry it to a guest that negotiated GUEST_TSO.
          gsoType = p.l3Kind == L3_IPV4 ? NetHdr.GSO_TCPV4 : NetHdr.GSO_TCPV6;
          if (!guestCsum || !gsoAllowed(d.rxFeatures, gsoType, false) || p.l3End != frameLen) return -Metric.DROP_GSO_UNSUPPORTED;
          gsoSize = mss;
        }
        if (guestCsum && want != IPPROTO_ICMP && want != IPPROTO_ICMPV6 && p.l3End == frameLen) {
          // virtio 1.2, 5.1.6.4.1: the field holds the pseudo-header sum and csum_start/offset
          // finish it. Written here rather than trusted from the sender.
          sgStore16(chain, base + p.l4Off + fieldOff, <u16>pseudoSum(chain, base, p, want), st + OFF_SCRATCH);
          flags = NetHdr.F_NEEDS_CSUM;
          start = p.l4Off;
          off = fieldOff;
          count(st, QueueIndex.RX, Metric.CSUM_OFFLOADED);
        } else {
          rxFullChecksum(st, chain, base, p, fieldOff);
          count(st, QueueIndex.RX, want == IPPROTO_TCP || want == IPPROTO_UDP ? Metric.CSUM_SOFTWARE : Metric.CSUM_SOFTWARE_L3);
        }
      }
    } else {
      count(st, QueueIndex.RX, Metric.CSUM_NONE);
    }
  } else {
    count(st, QueueIndex.RX, Metric.CSUM_NONE);
  }

  // virtio 1.2, 5.1.4.1: the MTU bounds received non-GSO packets only.
  if (gsoType == NetHdr.GSO_NONE && has(d.negotiated, Feature.MTU) && frameLen > d.mtu + L2_OVERHEAD) return -Metric.DROP_OVERSIZE;
  if (gsoType != NetHdr.GSO_NONE) count(st, QueueIndex.RX, Metric.GSO_OFFLOADED);
  writeVirtioHdr(hdr, base, flags, gsoType, gsoHdrLen, gsoSize, start, off, 1);
  sgWrite(chain, 0, hdr, base);
  return <i32>frameLen;
}

