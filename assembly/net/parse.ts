// Finding the L3 and L4 headers of an Ethernet frame: 802.1Q / 802.1ad tags, IPv4 with
// options, IPv6 with extension headers. Every field starts as "unknown" and is only set once
// the bytes behind it were checked to be inside the frame, so a truncated or malformed frame
// yields unknown, never stale or uninitialised offsets (the seed's hdr_extract could).

import { Sg, sgContig, sgRead, sgSpan } from "./sg";

// @ts-ignore: decorator
@inline export const L3_UNKNOWN: u32 = 0;
// @ts-ignore: decorator
@inline export const L3_IPV4: u32 = 4;
// @ts-ignore: decorator
@inline export const L3_IPV6: u32 = 6;
// @ts-ignore: decorator
@inline export const PROTO_UNKNOWN: u32 = 255;

// @ts-ignore: decorator
@inline export const IPPROTO_ICMP: u32 = 1;
// @ts-ignore: decorator
@inline export const IPPROTO_TCP: u32 = 6;
// @ts-ignore: decorator
@inline export const IPPROTO_UDP: u32 = 17;
// @ts-ignore: decorator
@inline export const IPPROTO_ICMPV6: u32 = 58;

// @ts-ignore: decorator
@inline export const ETH_HLEN: u32 = 14;
/** Bytes gathered for parsing when the headers are not in the first buffer. */
// @ts-ignore: decorator
@inline export const PARSE_MAX: u32 = 1024;
/** Most VLAN tags walked (802.1ad outer + 802.1Q inner, with room for one more). */
// @ts-ignore: decorator
@inline const MAX_TAGS: u32 = 3;
/** Most IPv6 extension headers walked before giving up. */
// @ts-ignore: decorator
@inline const MAX_EXT_HEADERS: u32 = 8;

/** Parse result; field order matches ParseField in abi.ts (a test checks the offsets). */
@unmanaged
export class Parsed {
  l3Kind: u32;
  l3Off: u32;
  l4Proto: u32;
  l4Off: u32;
  fragment: u32;
  vlanTags: u32;
  l3End: u32;
  /** Offset of the pseudo-header's destination address (4 or 16 bytes); see finalDestination. */
  pseudoDstOff: u32;
}

// @ts-ignore: decorator
@inline export function be16(p: usize, off: u32): u32 {
  return (<u32>load<u8>(p + off) << 8) | <u32>load<u8>(p + off + 1);
}

/** Hop-by-hop, routing, fragment, AH and destination options (RFC 8200, 4; RFC 4302). */
// @ts-ignore: decorator
@inline function isExtensionHeader(next: u32): bool {
  return next == 0 || next == 43 || next == 44 || next == 51 || next == 60;
}

/** Parsing stopped because it needed bytes beyond the contiguous view but inside the frame. */
// @ts-ignore: decorator
@inline const NEED_MORE: i32 = 1;

function reset(out: Parsed): void {
  out.l3Kind = L3_UNKNOWN;
  out.l3Off = 0;
  out.l4Proto = PROTO_UNKNOWN;
  out.l4Off = 0;
  out.fragment = 0;
  out.vlanTags = 0;
  out.l3End = 0;
  out.pseudoDstOff = 0;
}

// @ts-ignore: decorator
@inline const IPOPT_EOL: u32 = 0;
// @ts-ignore: decorator
@inline const IPOPT_NOP: u32 = 1;
// @ts-ignore: decorator
@inline const IPOPT_LSRR: u32 = 131;
// @ts-ignore: decorator
@inline const IPOPT_SSRR: u32 = 137;

/**
 * Where an IPv4 header's options (at `p + l3`, `ihl` bytes in view) put the final destination:
 * a loose or strict source route that still has addresses to visit ends in it, and transport
 * checksums are computed with it (RFC 791 3.1; RFC 9293 3.1). Otherwise the header's
 * destination. Malformed options end the walk (the kernel that built the frame checked them).
 */
function ipv4FinalDestination(p: usize, l3: u32, ihl: u32): u32 {
  let off = l3 + 20;
  const end = l3 + ihl;
  while (off < end) {
    const kind = <u32>load<u8>(p + off);
    if (kind == IPOPT_EOL) break;
    if (kind == IPOPT_NOP) { off++; continue; }
    if (off + 2 > end) break;
    const len = <u32>load<u8>(p + off + 1);
    if (len < 2 || off + len > end) break;
    if ((kind == IPOPT_LSRR || kind == IPOPT_SSRR) && len >= 7) {
      // The pointer (1-based, from the option's start) names the next address; route data
      // is exhausted once it passes the last whole address.
      const pointer = <u32>load<u8>(p + off + 2);
      const last = off + 3 + ((len - 3) & ~3) - 4;
      if (pointer >= 4 && off + pointer - 1 <= last) return last;
    }
    off += len;
  }
  return l3 + 16;
}

// @ts-ignore: decorator
@inline const IPV6_ROUTING: u32 = 43;

/**
 * Where an IPv6 routing header at `p + off` (`len` bytes in view) with segments left puts the
 * final destination the transport checksum covers (RFC 8200 8.1): the last address of a type 0
 * or type 2 header, segment list[0] of a segment routing header (type 4, RFC 8754 4.1).
 * 0 for a routing type whose addresses are compressed (RPL, type 3) or none left.
 */
function ipv6FinalDestination(p: usize, off: u32, len: u32): u32 {
  if (load<u8>(p + off + 3) == 0) return 0;
  const kind = <u32>load<u8>(p + off + 2);
  const addresses = (len - 8) >> 4;
  if (addresses == 0) return 0;
  if (kind == 0 || kind == 2) return off + 8 + ((addresses - 1) << 4);
  if (kind == 4) return off + 8;
  return 0;
}

/**
 * Parses the `avail` contiguous bytes at `p` of a frame of `frameLen` bytes into `out`.
 * Returns 0 when done (fields may be unknown) or NEED_MORE when a header runs past `avail`.
 */
function parseView(p: usize, avail: u32, frameLen: u32, out: Parsed): i32 {
  reset(out);
  if (avail > frameLen) avail = frameLen;
  let typeOff: u32 = 12;
  if (typeOff + 2 > avail) return typeOff + 2 <= frameLen ? NEED_MORE : 0;
  let etype = be16(p, typeOff);
  let tags: u32 = 0;
  while (etype == 0x8100 || etype == 0x88a8 || etype == 0x9100) {
    if (tags == MAX_TAGS) return 0;
    tags++;
    typeOff += 4;
    if (typeOff + 2 > avail) return typeOff + 2 <= frameLen ? NEED_MORE : 0;
    etype = be16(p, typeOff);
  }
  out.vlanTags = tags;
  const l3 = typeOff + 2;

  if (etype == 0x0800) {
    if (l3 + 20 > avail) return l3 + 20 <= frameLen ? NEED_MORE : 0;
    const vihl = <u32>load<u8>(p + l3);
    const ihl = (vihl & 15) << 2;
    if ((vihl >> 4) != 4 || ihl < 20) return 0;
    const total = be16(p, l3 + 2);
    if (total < ihl || l3 + total > frameLen) return 0;
    if (l3 + ihl > avail) return NEED_MORE;
    out.l3Kind = L3_IPV4;
    out.l3Off = l3;
    out.l3End = l3 + total;
    out.pseudoDstOff = ihl > 20 ? ipv4FinalDestination(p, l3, ihl) : l3 + 16;
    // More-fragments flag or a fragment offset: no complete L4 datagram in this frame.
    if ((be16(p, l3 + 6) & 0x3fff) != 0) out.fragment = 1;
    out.l4Proto = <u32>load<u8>(p + l3 + 9);
    out.l4Off = l3 + ihl;
    return 0;
  }

  if (etype == 0x86dd) {
    if (l3 + 40 > avail) return l3 + 40 <= frameLen ? NEED_MORE : 0;
    if ((<u32>load<u8>(p + l3) >> 4) != 6) return 0;
    const payload = be16(p, l3 + 4);
    // Payload length 0 means a jumbogram (RFC 2675), which Ethernet cannot carry.
    if (payload == 0 || l3 + 40 + payload > frameLen) return 0;
    const end = l3 + 40 + payload;
    out.l3Kind = L3_IPV6;
    out.l3Off = l3;
    out.l3End = end;
    out.pseudoDstOff = l3 + 24;
    let next = <u32>load<u8>(p + l3 + 6);
    let off = l3 + 40;
    // (Written as a conditional loop: asc 0.28 drops code after a for (;;) left by `break`.)
    let hops: u32 = 0;
    while (isExtensionHeader(next)) {
      if (hops == MAX_EXT_HEADERS) return 0;
      hops++;
      if (off + 8 > end) return 0;
      if (off + 8 > avail) return NEED_MORE;
      const nh = <u32>load<u8>(p + off);
      let len: u32;
      if (next == 44) {
        // Fragment header: offset in the upper 13 bits, M flag in bit 0 (RFC 8200, 4.5).
        if ((be16(p, off + 2) & 0xfff9) != 0) out.fragment = 1;
        len = 8;
      } else if (next == 51) {
        len = (<u32>load<u8>(p + off + 1) + 2) << 2; // AH counts 4-byte units (RFC 4302)
      } else {
        len = (<u32>load<u8>(p + off + 1) + 1) << 3;
        if (next == IPV6_ROUTING && load<u8>(p + off + 3) != 0) {
          // Segments left: the final destination is in the header's address list.
          if (off + len > end) return 0;
          if (off + len > avail) return NEED_MORE;
          const final = ipv6FinalDestination(p, off, len);
          if (final != 0) out.pseudoDstOff = final;
        }
      }
      next = nh;
      off += len;
    }
    if (off > end) return 0;
    out.l4Proto = next;
    out.l4Off = off;
    return 0;
  }
  return 0;
}

/**
 * Parses the frame that starts at logical offset `base` of `sg` (frameLen bytes). Tries the
 * buffer holding the frame's first byte in place and gathers up to PARSE_MAX bytes into
 * `scratch` only if a header runs past it. Headers beyond PARSE_MAX bytes leave it unknown.
 */
export function parseSg(sg: Sg, base: u32, frameLen: u32, scratch: usize, out: Parsed): void {
  let first = sgSpan(sg, base);
  if (first > frameLen) first = frameLen;
  if (first != 0) {
    const p = sgContig(sg, base, first);
    if (p != 0 && parseView(p, first, frameLen, out) != NEED_MORE) return;
  }
  const take = frameLen < PARSE_MAX ? frameLen : PARSE_MAX;
  const got = sgRead(sg, base, scratch, take);
  if (parseView(scratch, got, frameLen, out) == NEED_MORE) reset(out);
}

/** Offset of the L4 checksum field from the L4 header for TCP (16), UDP (6), ICMP/ICMPv6 (2), else 0. */
export function csumFieldOffset(proto: u32): u32 {
  if (proto == IPPROTO_TCP) return 16;
  if (proto == IPPROTO_UDP) return 6;
  if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) return 2;
  return 0;
}

