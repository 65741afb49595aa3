// Software segmentation: one large TCP or UDP segment (a GSO frame, virtio 1.2, 5.1.6.2)
// into MSS-sized frames, for a receiver that cannot take the large one: a backend without the
// offload on TX, a guest that did not negotiate GUEST_TSO/USO on RX.
//
// The rules are those of Linux's tcp_gso_segment, __udp_gso_segment and inet_gso_segment:
//   - every frame gets a copy of the headers (Ethernet, VLAN tags, IPv4 with options or IPv6
//     with extension headers, TCP with options or UDP) followed by at most gso_size bytes;
//   - IPv4: total length per frame, the identification incremented per frame, header
//     checksum recomputed; IPv6: payload length per frame;
//   - TCP: sequence number advanced by gso_size per frame; FIN and PSH only on the last frame,
//     CWR only on the first (RFC 3168, 6.1.2: CWR is set once per window reduction);
//   - UDP (GSO_UDP_L4, "USO"): each frame a complete datagram with its own length;
//   - L4 checksums over pseudo-header + header + payload, or left partial (the field holds the
//     pseudo-header sum, virtio 1.2, 5.1.6.2) for a receiver that finishes them itself.
// The payload is never copied here: sums run over the source in place and the TX path hands
// the backend iovecs that point into the guest's buffers.

import { Metric, NetHdr } from "../abi";
import { parsed, OFF_PARSE_SCRATCH, SegPlan, SEG_HDR_MAX, SEG_PLAN_BYTES } from "../state";
import { add16, beWord, finish, fold, sumSimd } from "./checksum";
import { be16, parseSg, IPPROTO_TCP, IPPROTO_UDP, L3_IPV4, L3_IPV6 } from "./parse";
import { Sg, sgRead, sgSum } from "./sg";

// @ts-ignore: decorator
@inline const TCP_FIN: u32 = 0x01;
// @ts-ignore: decorator
@inline const TCP_PSH: u32 = 0x08;
// @ts-ignore: decorator
@inline const TCP_CWR: u32 = 0x80;

// @ts-ignore: decorator
@inline function wr16(p: usize, v: u32): void { store<u8>(p, <u8>(v >> 8)); store<u8>(p, <u8>v, 1); }
// @ts-ignore: decorator
@inline function rd32(p: usize): u32 { return (be16(p, 0) << 16) | be16(p, 2); }
// @ts-ignore: decorator
@inline function wr32(p: usize, v: u32): void { wr16(p, v >> 16); wr16(p + 2, v & 0xffff); }

/** Folded little-endian-order sum of `len` bytes at `p` (an even-aligned start). */
// @ts-ignore: decorator
@inline function sumAt(p: usize, len: u32): u32 { return fold(sumSimd(p, len)); }

// A segmentation area (one for TX, one for RX, so neither direction disturbs the other):
//   SegPlan | template headers [SEG_HDR_MAX] | headers of the segment being built [SEG_HDR_MAX]

// @ts-ignore: decorator
@inline export function segPlanAt(area: usize): SegPlan { return changetype<SegPlan>(area); }
// @ts-ignore: decorator
@inline function templateAt(area: usize): usize { return area + SEG_PLAN_BYTES; }
/** The headers of the segment segmentBuild() built last (SegPlan.hdrLen bytes). */
// @ts-ignore: decorator
@inline export function segHeaders(area: usize): usize { return area + SEG_PLAN_BYTES + SEG_HDR_MAX; }

/**
 * Plans the segmentation of the GSO frame at logical [base, base + frameLen) of `src`:
 * parses it, checks that it really is what gso_type says (TCP over IPv4 for TCPV4, TCP over
 * IPv6 for TCPV6, UDP for UDP_L4; transport header at csum_start; a complete, unfragmented
 * datagram filling the frame) and copies the headers into the template. hdr_len from the
 * guest is never used: the headers' length comes from parsing. Returns 0 or -(Metric.DROP_*).
 */
export function segmentPlan(st: usize, area: usize, src: Sg, base: u32, frameLen: u32, gsoType: u32, gsoSize: u32, csumStart: u32, partial: bool): i32 {
  const s = segPlanAt(area);
  s.active = 0;
  const p = parsed(st);
  parseSg(src, base, frameLen, st + OFF_PARSE_SCRATCH, p);
  const t = gsoType & ~(<u32>NetHdr.GSO_ECN);
  let proto: u32 = 0;
  if (t == NetHdr.GSO_TCPV4 && p.l3Kind == L3_IPV4) proto = IPPROTO_TCP;
  else if (t == NetHdr.GSO_TCPV6 && p.l3Kind == L3_IPV6) proto = IPPROTO_TCP;
  else if (t == NetHdr.GSO_UDP_L4 && p.l3Kind != 0) proto = IPPROTO_UDP;
  if (proto == 0 || p.l4Proto != proto || p.fragment != 0 || p.l4Off != csumStart || p.l3End != frameLen || gsoSize == 0) {
    return -Metric.DROP_BAD_GSO;
  }
  let l4Len: u32 = 8;
  if (proto == IPPROTO_TCP) {
    if (p.l4Off + 20 > frameLen) return -Metric.DROP_BAD_GSO;
    const tmp = segHeaders(area);
    sgRead(src, base + p.l4Off + 12, tmp, 1);
    l4Len = (<u32>load<u8>(tmp) >> 4) << 2;
    if (l4Len < 20) return -Metric.DROP_BAD_GSO;
  }
  const hdrLen = p.l4Off + l4Len;
  if (hdrLen > frameLen || hdrLen > SEG_HDR_MAX) return -Metric.DROP_BAD_GSO;
  const tpl = templateAt(area);
  sgRead(src, base, tpl, hdrLen);
  s.hdrLen = hdrLen;
  s.l3Off = p.l3Off;
  s.l4Off = p.l4Off;
  s.l3Kind = p.l3Kind;
  s.pseudoDstOff = p.pseudoDstOff;
  s.proto = proto;
  s.mss = gsoSize;
  s.payload = frameLen - hdrLen;
  s.count = s.payload == 0 ? 1 : (s.payload + gsoSize - 1) / gsoSize;
  s.next = 0;
  s.base = base;
  s.partial = partial ? 1 : 0;
  s.seq = proto == IPPROTO_TCP ? rd32(tpl + p.l4Off + 4) : 0;
  s.tcpFlags = proto == IPPROTO_TCP ? <u32>load<u8>(tpl + p.l4Off + 13) : 0;
  s.ipId = p.l3Kind == L3_IPV4 ? be16(tpl, p.l3Off + 4) : 0;
  s.active = 1;
  return 0;
}

/** Payload bytes of segment `i`. */
export function segmentPayload(s: SegPlan, i: u32): u32 {
  const at = i * s.mss;
  const left = s.payload - at;
  return left < s.mss ? left : s.mss;
}

/** Logical offset in the source of segment `i`'s payload. */
// @ts-ignore: decorator
@inline export function segmentPayloadOffset(s: SegPlan, i: u32): u32 { return s.base + s.hdrLen + i * s.mss; }

/**
 * Writes segment `i`'s headers to segHeaders(area) (s.hdrLen bytes) with lengths, IPv4 id and
 * header checksum, TCP sequence and flags, and the L4 checksum (complete, summing the payload
 * in place in `src`, or partial). Returns the segment's payload length.
 */
export function segmentBuild(area: usize, src: Sg, i: u32): u32 {
  const s = segPlanAt(area);
  const h = segHeaders(area);
  const hl = s.hdrLen;
  memory.copy(h, templateAt(area), hl);
  const pl = segmentPayload(s, i);
  const l3 = h + s.l3Off;
  const l4 = h + s.l4Off;
  const l4Bytes = hl - s.l4Off + pl;
  if (s.l3Kind == L3_IPV4) {
    wr16(l3 + 2, hl - s.l3Off + pl);
    wr16(l3 + 4, (s.ipId + i) & 0xffff);
    store<u16>(l3 + 10, 0);
    store<u16>(l3 + 10, finish(sumAt(l3, s.l4Off - s.l3Off)));
  } else {
    wr16(l3 + 4, hl - s.l3Off - 40 + pl);
  }
  let field: usize;
  if (s.proto == IPPROTO_TCP) {
    wr32(l4 + 4, s.seq + i * s.mss);
    let f = s.tcpFlags;
    if (i + 1 != s.count) f &= ~(TCP_FIN | TCP_PSH);
    if (i != 0) f &= ~TCP_CWR;
    store<u8>(l4 + 13, <u8>f);
    field = l4 + 16;
  } else {
    wr16(l4 + 4, l4Bytes);
    field = l4 + 6;
  }
  // Pseudo-header (RFC 793 / RFC 8200, 8.1): addresses (a source route's final destination),
  // upper-layer length, protocol.
  const v4 = s.l3Kind == L3_IPV4;
  const addr: u32 = v4 ? 4 : 16;
  let ps = add16(sumAt(l3 + (v4 ? 12 : 8), addr), sumAt(h + s.pseudoDstOff, addr));
  ps = add16(ps, beWord(l4Bytes >> 16));
  ps = add16(ps, beWord(l4Bytes));
  ps = add16(ps, beWord(s.proto));
  if (s.partial != 0) {
    store<u16>(field, <u16>ps);
    return pl;
  }
  store<u16>(field, 0);
  let sum = add16(ps, sumAt(l4, hl - s.l4Off));
  // The payload starts at an even offset of the L4 datagram (every header length is even).
  if (pl != 0) sum = add16(sum, sgSum(src, segmentPayloadOffset(s, i), pl));
  store<u16>(field, finish(sum));
  return pl;
}

/** Offset of the L4 checksum field from the start of the frame (for a partial segment's header). */
export function segmentCsumOffset(s: SegPlan): u32 { return s.proto == IPPROTO_TCP ? 16 : 6; }
