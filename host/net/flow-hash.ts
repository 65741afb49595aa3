/**
 * The flow hash that steers received frames over queue pairs (VIRTIO_NET_F_MQ, virtio 1.2,
 * 5.1.6.5.5: the device picks the receive queue; the frames of one flow must land on one queue
 * so they never reorder). The same function runs in two places: here for the embedded network,
 * and as an eBPF program in the kernel for a multi-queue tap (backends/tap-steering.ts; a test
 * runs both over the same frames and compares). So it is written the way the eBPF program
 * computes it: 32-bit words in network order, and a frame too short for a field it needs hashes
 * to 0, as a BPF load past the end ends the program with 0.
 *
 * IPv4 and IPv6 (without extension headers in front of TCP/UDP): protocol ^ source ^ destination
 * address words, and for TCP and UDP that are not IP fragments also source port ^ destination
 * port, then one multiplicative mix. Every term is symmetric, so both directions of a flow hash
 * alike. Other frames (ARP, VLAN-tagged) hash to 0: the first queue.
 */

import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP } from "./gateway/wire.js";

/** The multiplier of the final mix (2^32 / golden ratio). */
export const FLOW_MIX = 0x9e3779b1;

/** The flow hash of an Ethernet frame (unsigned 32-bit). */
export function flowHash(f: Uint8Array): number {
  const u8 = (o: number) => (o + 1 <= f.length ? f[o] : -1);
  const u16 = (o: number) => (o + 2 <= f.length ? (f[o] << 8) | f[o + 1] : -1);
  const u32 = (o: number) => (o + 4 <= f.length ? ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0 : -1);
  const ports = (o: number) => {
    const p = u32(o);
    return p < 0 ? -1 : (p >>> 16) ^ (p & 0xffff);
  };
  const type = u16(12);
  if (type < 0) return 0;
  let h: number;
  let proto: number;
  let l4: number;
  if (type === ETHERTYPE_IPV4) {
    proto = u8(23);
    const src = u32(26);
    const dst = u32(30);
    const frag = u16(20);
    if (proto < 0 || src < 0 || dst < 0 || frag < 0) return 0;
    h = proto ^ src ^ dst;
    if ((frag & 0x3fff) !== 0) return mix(h);
    l4 = 14 + ((f[14] & 0x0f) << 2);
  } else if (type === ETHERTYPE_IPV6) {
    proto = u8(20);
    if (proto < 0) return 0;
    h = proto;
    for (let o = 22; o < 54; o += 4) {
      const w = u32(o);
      if (w < 0) return 0;
      h ^= w;
    }
    l4 = 54;
  } else {
    return 0;
  }
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
    const p = ports(l4);
    if (p < 0) return 0;
    h ^= p;
  }
  return mix(h);
}

function mix(h: number): number {
  const r = Math.imul(h >>> 0, FLOW_MIX) >>> 0;
  return (r ^ (r >>> 16)) >>> 0;
}
