/**
 * Wire constants and address helpers the gateway's protocols share: Ethernet, IPv4 and IPv6
 * header layouts (offsets from the start of an untagged frame, as the gateway only ever sees
 * and sends untagged frames), protocol numbers, and the IPv4 header checksum.
 */
import type { Checksummer } from "../checksummer.js";

export const ETH_HLEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_RARP = 0x8035;
/** Ethernet: destination MAC, source MAC, ethertype. */
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** IPv4 header fields (RFC 791 3.1), as offsets into the frame. */
export const IP4 = ETH_HLEN;
export const IP4_TOTAL_LEN = IP4 + 2;
export const IP4_TTL = IP4 + 8;
export const IP4_PROTO = IP4 + 9;
export const IP4_CSUM = IP4 + 10;
export const IP4_SRC = IP4 + 12;
export const IP4_DST = IP4 + 16;
export const IP4_MIN_HLEN = 20;

/** IPv6 header fields (RFC 8200 3), as offsets into the frame. */
export const IP6 = ETH_HLEN;
export const IP6_PAYLOAD_LEN = IP6 + 4;
export const IP6_NEXT = IP6 + 6;
export const IP6_HOP_LIMIT = IP6 + 7;
export const IP6_SRC = IP6 + 8;
export const IP6_DST = IP6 + 24;
export const IP6_HLEN = 40;

export const UDP_HLEN = 8;
export const TTL = 64;

/** A dotted-quad IPv4 address as 4 numbers; throws on anything else. */
export function parseIp(s: string): number[] {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 address ${s}`);
  return p;
}

/** An IPv6 address (with at most one "::") as 16 bytes; throws on anything else. */
export function parseIp6(s: string): Uint8Array {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const part = (x: string | undefined) => (x ? x.split(":").map((h) => parseInt(h, 16)) : []);
  const a = part(head);
  const b = part(tail);
  const groups = tail === undefined ? a : [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) throw new Error(`bad IPv6 address ${s}`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

export const parseMac = (s: string): Uint8Array => Uint8Array.from(s.split(":").map((h) => parseInt(h, 16)));
export const macText = (m: Uint8Array): string => Array.from(m, (b) => b.toString(16).padStart(2, "0")).join(":");

export function sameIp(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a.length === 4 && b.length === 4 && Array.from(a).every((x, i) => x === b[i]);
}

export function sameIp6(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === 16 && a.every((x, i) => x === b[i]);
}

/** (Re)computes the IPv4 header checksum of the frame `r` whose header is `ihl` bytes. */
export function setIpv4Checksum(csum: Checksummer, r: Uint8Array, ihl: number): void {
  r[IP4_CSUM] = r[IP4_CSUM + 1] = 0;
  const c = csum.checksum(r, IP4, ihl);
  r[IP4_CSUM] = c >> 8;
  r[IP4_CSUM + 1] = c & 0xff;
}
