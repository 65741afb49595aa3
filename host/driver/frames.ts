/**
 * Frame builders and an independent reference for checksums: a plain byte-at-a-time RFC 1071
 * implementation in TypeScript, sharing nothing with the core. Builders return where they put
 * each header, so verification never depends on the core's parser.
 */

/** RFC 1071 ones' complement sum of big-endian 16-bit words, folded to 16 bits. */
export function onesSum(bytes: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * What a receiver of a partial checksum does (virtio 1.2, 5.1.6.2: a guest with GUEST_CSUM, a
 * virtio_net_hdr backend; an OpenBSD stack at the TCP/UDP header for M_*_CSUM_OUT): sum from
 * `start` to the end of the frame and store the complement at `start + off`. Returns a copy.
 */
export function completePartial(frame: Uint8Array, start: number, off: number): Uint8Array {
  const out = frame.slice();
  const v = internetChecksum(out.subarray(start));
  out[start + off] = v >> 8;
  out[start + off + 1] = v & 0xff;
  return out;
}

/** The checksum field value (big-endian number) for `bytes` plus an initial sum. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesSum(bytes, initial) & 0xffff;
}

export type L4 = "tcp" | "udp" | "icmp";
export type Ext = "hop" | "dst" | "routing" | "frag";

export interface FrameSpec {
  ip: 4 | 6;
  l4: L4;
  payload: Uint8Array;
  /** VLAN tag protocol identifiers outermost first (0x8100, 0x88a8). */
  vlans?: number[];
  /** IPv4 options bytes (multiple of 4, at most 40). */
  ipv4OptionBytes?: number;
  /**
   * A source route: addresses still to visit after `dst`, the last one the final destination
   * (IPv4: a loose source route option, RFC 791 3.1, after `ipv4OptionBytes` of NOPs; IPv6: a
   * segment routing header, RFC 8754, with segments left = its length, after `ext`). L4
   * checksums use the final destination (RFC 791 3.1 via RFC 9293 3.1, RFC 8200 8.1).
   */
  sourceRoute?: ArrayLike<number>[];
  /** IPv6 extension headers in order (each 8 bytes; a "frag" header with offset 0 and M=0, an atomic fragment). */
  ext?: Ext[];
  /** How to fill the L4 checksum: complete, partial (pseudo-header sum, as with NEEDS_CSUM) or zero. */
  csum?: "full" | "partial" | "zero";
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  /** TCP options bytes (multiple of 4, at most 40). */
  tcpOptionBytes?: number;
  /** Ethernet padding bytes after the IP datagram. */
  padding?: number;
  /** IP source / destination (4 or 16 bytes); defaults are documentation addresses. */
  src?: ArrayLike<number>;
  dst?: ArrayLike<number>;
  sport?: number;
  dport?: number;
  /** TCP flags byte (default PSH|ACK). */
  tcpFlags?: number;
  seq?: number;
  ack?: number;
  /** VLAN ids, one per tag (default 100, 101, ...). */
  vlanIds?: number[];
  /** ICMP / ICMPv6 type (default echo request), id and sequence. */
  icmpType?: number;
  icmpId?: number;
  icmpSeq?: number;
}

export interface BuiltFrame {
  frame: Uint8Array;
  l3Off: number;
  l4Off: number;
  l3End: number;
  /** IP protocol number of the L4 header. */
  proto: number;
  /** Offset of the checksum field from l4Off. */
  csumField: number;
  ip: 4 | 6;
  /** Where the pseudo-header's destination address is when it is not the IP header's (a source route's final destination). */
  finalDstOff?: number;
}

export const DEVICE_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const PEER_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);
const SRC4 = [192, 0, 2, 1];
const DST4 = [198, 51, 100, 7];
const SRC6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const EXT_NUMBER: Record<Ext, number> = { hop: 0, dst: 60, routing: 43, frag: 44 };

function protoOf(l4: L4, ip: 4 | 6): number {
  return l4 === "tcp" ? 6 : l4 === "udp" ? 17 : ip === 4 ? 1 : 58;
}

/** Pseudo-header sum (folded) for the datagram in `b` as built (with a source route's final destination). */
export function pseudoHeaderSum(b: BuiltFrame): number {
  const f = b.frame;
  const len = b.l3End - b.l4Off;
  if (b.ip === 4) {
    const ph = new Uint8Array(12);
    ph.set(f.subarray(b.l3Off + 12, b.l3Off + 16), 0);
    const dst = b.finalDstOff ?? b.l3Off + 16;
    ph.set(f.subarray(dst, dst + 4), 4);
    ph[9] = b.proto;
    ph[10] = len >> 8;
    ph[11] = len & 0xff;
    return onesSum(ph);
  }
  const ph = new Uint8Array(40);
  ph.set(f.subarray(b.l3Off + 8, b.l3Off + 24), 0);
  const dst = b.finalDstOff ?? b.l3Off + 24;
  ph.set(f.subarray(dst, dst + 16), 16);
  ph[32] = (len >>> 24) & 0xff;
  ph[33] = (len >> 16) & 0xff;
  ph[34] = (len >> 8) & 0xff;
  ph[35] = len & 0xff;
  ph[39] = b.proto;
  return onesSum(ph);
}

/** True if the L4 checksum of the datagram verifies (sum over pseudo-header and datagram is 0xffff). */
export function l4ChecksumValid(b: BuiltFrame, frame: Uint8Array = b.frame): boolean {
  const data = frame.subarray(b.l4Off, b.l3End);
  const pseudo = b.proto === 1 ? 0 : pseudoHeaderSum({ ...b, frame });
  return onesSum(data, pseudo) === 0xffff;
}

/** True if the IPv4 header checksum verifies. */
export function ipv4HeaderValid(b: BuiltFrame, frame: Uint8Array = b.frame): boolean {
  return onesSum(frame.subarray(b.l3Off, b.l4Off)) === 0xffff;
}

/** Builds an Ethernet frame per `spec`. */
export function buildFrame(spec: FrameSpec): BuiltFrame {
  const vlans = spec.vlans ?? [];
  const proto = protoOf(spec.l4, spec.ip);
  const l4HeaderLen = spec.l4 === "tcp" ? 20 + (spec.tcpOptionBytes ?? 0) : 8;
  const l4Len = l4HeaderLen + spec.payload.length;
  const route = spec.sourceRoute ?? [];
  const nopBytes = spec.ip === 4 ? spec.ipv4OptionBytes ?? 0 : 0;
  // LSRR: type, length, pointer (4: nothing visited yet), the addresses; padded with End of Options.
  const lsrrLen = spec.ip === 4 && route.length ? 3 + 4 * route.length : 0;
  const optBytes = nopBytes + ((lsrrLen + 3) & ~3);
  if (optBytes > 40) throw new RangeError(`IPv4 options of ${optBytes} bytes`);
  const exts = spec.ip === 6 ? spec.ext ?? [] : [];
  // Segment routing header: 8 bytes and the segment list (final destination first, dst last).
  const srhLen = spec.ip === 6 && route.length ? 8 + 16 * (route.length + 1) : 0;
  const l3HeaderLen = spec.ip === 4 ? 20 + optBytes : 40 + 8 * exts.length + srhLen;
  const l3Off = 14 + 4 * vlans.length;
  const l4Off = l3Off + l3HeaderLen;
  const l3End = l4Off + l4Len;
  const frame = new Uint8Array(l3End + (spec.padding ?? 0));
  const dv = new DataView(frame.buffer);
  let finalDstOff: number | undefined;

  frame.set(spec.dstMac ?? PEER_MAC, 0);
  frame.set(spec.srcMac ?? DEVICE_MAC, 6);
  let at = 12;
  vlans.forEach((tpid, i) => {
    dv.setUint16(at, tpid);
    dv.setUint16(at + 2, spec.vlanIds?.[i] ?? 100 + i);
    at += 4;
  });
  dv.setUint16(at, spec.ip === 4 ? 0x0800 : 0x86dd);

  if (spec.ip === 4) {
    frame[l3Off] = 0x40 | (l3HeaderLen / 4);
    dv.setUint16(l3Off + 2, l3HeaderLen + l4Len);
    dv.setUint16(l3Off + 4, 0x1234);
    dv.setUint16(l3Off + 6, 0x4000); // DF
    frame[l3Off + 8] = 64;
    frame[l3Off + 9] = proto;
    frame.set(spec.src ?? SRC4, l3Off + 12);
    frame.set(spec.dst ?? DST4, l3Off + 16);
    // Options: NOPs ending in End-of-Options, or NOPs, then the source route, then End of Options.
    for (let i = 0; i < nopBytes; i++) frame[l3Off + 20 + i] = i + 1 === nopBytes && !lsrrLen ? 0 : 1;
    if (lsrrLen) {
      const o = l3Off + 20 + nopBytes;
      frame.set([131, lsrrLen, 4], o);
      route.forEach((a, i) => frame.set(a, o + 3 + 4 * i));
      finalDstOff = o + lsrrLen - 4;
    }
    dv.setUint16(l3Off + 10, internetChecksum(frame.subarray(l3Off, l4Off)));
  } else {
    dv.setUint32(l3Off, 0x60000000);
    dv.setUint16(l3Off + 4, l3HeaderLen - 40 + l4Len);
    const chain = [...exts.map((e) => EXT_NUMBER[e]), ...(srhLen ? [43] : [])];
    frame[l3Off + 6] = chain.length ? chain[0] : proto;
    frame[l3Off + 7] = 64;
    frame.set(spec.src ?? SRC6, l3Off + 8);
    frame.set(spec.dst ?? DST6, l3Off + 24);
    exts.forEach((e, i) => {
      const o = l3Off + 40 + 8 * i;
      frame[o] = i + 1 < chain.length ? chain[i + 1] : proto;
      if (e === "frag") {
        frame[o + 1] = 0; // reserved; offset 0, M 0 (atomic fragment, RFC 6946)
        dv.setUint32(o + 4, 0xabcd);
      } else if (e === "routing") {
        frame[o + 1] = 0;
        frame[o + 2] = 4; // routing type 4 (segment routing), segments left 0
        frame[o + 3] = 0;
      } else {
        frame[o + 1] = 0; // 8 bytes: PadN option filling the rest
        frame[o + 2] = 1;
        frame[o + 3] = 4;
      }
    });
    if (srhLen) {
      const o = l3Off + 40 + 8 * exts.length;
      const list = [...route].reverse().concat([spec.dst ?? DST6]);
      frame.set([proto, srhLen / 8 - 1, 4, route.length, list.length - 1], o);
      list.forEach((a, i) => frame.set(a, o + 8 + 16 * i));
      finalDstOff = o + 8;
    }
  }

  const csumField = spec.l4 === "tcp" ? 16 : spec.l4 === "udp" ? 6 : 2;
  if (spec.l4 === "tcp") {
    dv.setUint16(l4Off, spec.sport ?? 40000);
    dv.setUint16(l4Off + 2, spec.dport ?? 5201);
    dv.setUint32(l4Off + 4, spec.seq ?? 0x01020304);
    dv.setUint32(l4Off + 8, spec.ack ?? 0x05060708);
    frame[l4Off + 12] = (l4HeaderLen / 4) << 4;
    frame[l4Off + 13] = spec.tcpFlags ?? 0x18; // PSH|ACK
    dv.setUint16(l4Off + 14, 64240);
    for (let i = 20; i < l4HeaderLen; i++) frame[l4Off + i] = 1; // NOP options
  } else if (spec.l4 === "udp") {
    dv.setUint16(l4Off, spec.sport ?? 40000);
    dv.setUint16(l4Off + 2, spec.dport ?? 5201);
    dv.setUint16(l4Off + 4, l4Len);
  } else {
    frame[l4Off] = spec.icmpType ?? (spec.ip === 4 ? 8 : 128); // echo request
    dv.setUint16(l4Off + 4, spec.icmpId ?? 0x77);
    dv.setUint16(l4Off + 6, spec.icmpSeq ?? 1);
  }
  frame.set(spec.payload, l4Off + l4HeaderLen);

  const built: BuiltFrame = { frame, l3Off, l4Off, l3End, proto, csumField, ip: spec.ip, ...(finalDstOff !== undefined ? { finalDstOff } : {}) };
  const mode = spec.csum ?? "full";
  if (mode !== "zero") {
    const pseudo = proto === 1 ? 0 : pseudoHeaderSum(built);
    const value = mode === "full"
      ? internetChecksum(frame.subarray(l4Off, l3End), pseudo)
      : pseudo;
    dv.setUint16(l4Off + csumField, value);
  }
  return built;
}

/** Deterministic payload bytes. */
export function payload(n: number, seed = 7): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

/** A received frame taken apart by a plain TypeScript decoder (independent of the core's parser). */
export interface DecodedFrame {
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  vlanIds: number[];
  ethertype: number;
  /** Present for IPv4/IPv6 with a TCP, UDP or ICMP header. */
  ip?: BuiltFrame & {
    src: Uint8Array;
    dst: Uint8Array;
    sport: number;
    dport: number;
    tcpFlags: number;
    seq: number;
    /** ICMP/ICMPv6 type, or -1 for other protocols. */
    icmpType: number;
    payload: Uint8Array;
  };
}

/** Decodes Ethernet (with tags), IPv4 (no fragments) / IPv6 (no extension headers), TCP/UDP/ICMP. */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let at = 12;
  const vlanIds: number[] = [];
  let ethertype = dv.getUint16(at);
  while (ethertype === 0x8100 || ethertype === 0x88a8) {
    vlanIds.push(dv.getUint16(at + 2) & 0xfff);
    at += 4;
    ethertype = dv.getUint16(at);
  }
  const out: DecodedFrame = { dstMac: frame.slice(0, 6), srcMac: frame.slice(6, 12), vlanIds, ethertype };
  const l3Off = at + 2;
  let proto: number, l4Off: number, l3End: number, src: Uint8Array, dst: Uint8Array, ip: 4 | 6;
  if (ethertype === 0x0800) {
    ip = 4;
    proto = frame[l3Off + 9];
    l4Off = l3Off + (frame[l3Off] & 15) * 4;
    l3End = l3Off + dv.getUint16(l3Off + 2);
    src = frame.slice(l3Off + 12, l3Off + 16);
    dst = frame.slice(l3Off + 16, l3Off + 20);
  } else if (ethertype === 0x86dd) {
    ip = 6;
    proto = frame[l3Off + 6];
    l4Off = l3Off + 40;
    l3End = l4Off + dv.getUint16(l3Off + 4);
    src = frame.slice(l3Off + 8, l3Off + 24);
    dst = frame.slice(l3Off + 24, l3Off + 40);
  } else {
    return out;
  }
  if (proto !== 6 && proto !== 17 && proto !== 1 && proto !== 58) return out;
  const csumField = proto === 6 ? 16 : proto === 17 ? 6 : 2;
  const hdrLen = proto === 6 ? (frame[l4Off + 12] >> 4) * 4 : 8;
  out.ip = {
    frame, l3Off, l4Off, l3End, proto, csumField, ip, src, dst,
    sport: proto === 6 || proto === 17 ? dv.getUint16(l4Off) : 0,
    dport: proto === 6 || proto === 17 ? dv.getUint16(l4Off + 2) : 0,
    tcpFlags: proto === 6 ? frame[l4Off + 13] : 0,
    seq: proto === 6 ? dv.getUint32(l4Off + 4) : 0,
    icmpType: proto === 1 || proto === 58 ? frame[l4Off] : -1,
    payload: frame.slice(l4Off + hdrLen, l3End),
  };
  return out;
}
