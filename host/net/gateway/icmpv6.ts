/**
 * ICMPv6 for the gateway (RFC 4443, RFC 4861): a router advertisement of the /64 for SLAAC in
 * answer to a router solicitation, a neighbour advertisement for its own addresses, and echo.
 */
import type { Checksummer } from "../checksummer.js";
import {
  ETH_HLEN, ETH_SRC, ETHERTYPE_IPV6, IP6_DST, IP6_HLEN, IP6_HOP_LIMIT, IP6_NEXT, IP6_PAYLOAD_LEN, IP6_SRC,
  IPPROTO_ICMPV6, TTL,
} from "./wire.js";

export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ND_ROUTER_SOLICIT = 133;
export const ND_ROUTER_ADVERT = 134;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;
/** Neighbour discovery options (RFC 4861, 4.6). */
const OPT_SOURCE_LL = 1;
const OPT_TARGET_LL = 2;
const OPT_PREFIX = 3;
/** Router advertisement values: router lifetime, prefix valid and preferred lifetimes (s). */
const ROUTER_LIFETIME = 1800;
const PREFIX_VALID = 86400;
const PREFIX_PREFERRED = 14400;
/** Prefix information flags: on-link (L) and autonomous address configuration (A). */
const PREFIX_ON_LINK_AUTO = 0xc0;
/** Neighbour advertisement flags: router, solicited, override. */
const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;
/** ND messages go out with hop limit 255 (RFC 4861, 7.1.2). */
const ND_HOP_LIMIT = 255;

/** Where the ICMPv6 message starts in an untagged frame without extension headers. */
export const ICMP6 = ETH_HLEN + IP6_HLEN;

const ALL_NODES = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);

/** The gateway's IPv6 identity. */
export interface Ipv6Host {
  mac: Uint8Array;
  /** The advertised /64 (host part zero). */
  prefix: Uint8Array;
  /** Whether `a` is one of the gateway's addresses (prefix::1, link-local). */
  isOurs(a: Uint8Array): boolean;
  linkLocal: Uint8Array;
}

export type Icmpv6Answer = { kind: "router-advert" | "neighbor-advert" | "echo-reply"; frame: Uint8Array };

/** The answer to the ICMPv6 message in `f`, or null if it is not for the gateway. */
export function icmpv6Answer(csum: Checksummer, f: Uint8Array, me: Ipv6Host): Icmpv6Answer | null {
  const src = f.slice(IP6_SRC, IP6_SRC + 16);
  const dst = f.slice(IP6_DST, IP6_DST + 16);
  const type = f[ICMP6];
  // A node doing duplicate address detection has no address yet: answer all nodes.
  const fromUnspecified = src.every((b) => b === 0);
  const toMac = fromUnspecified ? ALL_NODES_MAC : f.slice(ETH_SRC, ETH_SRC + 6);
  const to = fromUnspecified ? ALL_NODES : src;
  const send = (from: Uint8Array, toAddr: Uint8Array, mac: Uint8Array, body: Uint8Array, hopLimit: number) =>
    icmpv6Frame(csum, mac, me.mac, from, toAddr, body, hopLimit);

  if (type === ND_ROUTER_SOLICIT) {
    // RA (RFC 4861, 4.2): cur hop limit, router lifetime; source link-layer and prefix information options.
    const body = new Uint8Array(16 + 8 + 32);
    const dv = new DataView(body.buffer);
    body[0] = ND_ROUTER_ADVERT;
    body[4] = TTL;
    dv.setUint16(6, ROUTER_LIFETIME);
    body.set([OPT_SOURCE_LL, 1, ...me.mac], 16);
    body.set([OPT_PREFIX, 4, 64, PREFIX_ON_LINK_AUTO], 24);
    dv.setUint32(28, PREFIX_VALID);
    dv.setUint32(32, PREFIX_PREFERRED);
    body.set(me.prefix, 40);
    return { kind: "router-advert", frame: send(me.linkLocal, to, toMac, body, ND_HOP_LIMIT) };
  }
  if (type === ND_NEIGHBOR_SOLICIT && f.length >= ICMP6 + 24) {
    const target = f.slice(ICMP6 + 8, ICMP6 + 24);
    if (!me.isOurs(target)) return null;
    // NA (RFC 4861, 4.4): solicited unless answering duplicate address detection; target link-layer option.
    const body = new Uint8Array(24 + 8);
    body[0] = ND_NEIGHBOR_ADVERT;
    body[4] = NA_ROUTER | NA_OVERRIDE | (fromUnspecified ? 0 : NA_SOLICITED);
    body.set(target, 8);
    body.set([OPT_TARGET_LL, 1, ...me.mac], 24);
    return { kind: "neighbor-advert", frame: send(target, to, toMac, body, ND_HOP_LIMIT) };
  }
  if (type === ICMPV6_ECHO_REQUEST && me.isOurs(dst)) {
    const len = (f[IP6_PAYLOAD_LEN] << 8) | f[IP6_PAYLOAD_LEN + 1];
    const body = f.slice(ICMP6, ICMP6 + len);
    body[0] = ICMPV6_ECHO_REPLY;
    body[2] = body[3] = 0;
    return { kind: "echo-reply", frame: send(dst, src, f.slice(ETH_SRC, ETH_SRC + 6), body, TTL) };
  }
  return null;
}

/** An ICMPv6 message `body` (checksum field zero) from `src` to `dst` in an Ethernet frame. */
function icmpv6Frame(csum: Checksummer, toMac: Uint8Array, fromMac: Uint8Array, src: Uint8Array, dst: Uint8Array, body: Uint8Array, hopLimit: number): Uint8Array {
  const r = new Uint8Array(ICMP6 + body.length);
  const dv = new DataView(r.buffer);
  r.set(toMac, 0);
  r.set(fromMac, ETH_SRC);
  dv.setUint16(12, ETHERTYPE_IPV6);
  dv.setUint32(ETH_HLEN, 0x60000000); // version 6, no traffic class or flow label
  dv.setUint16(IP6_PAYLOAD_LEN, body.length);
  r[IP6_NEXT] = IPPROTO_ICMPV6;
  r[IP6_HOP_LIMIT] = hopLimit;
  r.set(src, IP6_SRC);
  r.set(dst, IP6_DST);
  r.set(body, ICMP6);
  // Pseudo-header (RFC 8200, 8.1): source, destination, upper-layer length, next header.
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, body.length);
  pseudo[39] = IPPROTO_ICMPV6;
  dv.setUint16(ICMP6 + 2, csum.checksum(r, ICMP6, body.length, csum.sum(pseudo)));
  return r;
}
