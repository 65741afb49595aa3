/** ARP (RFC 826) for the gateway: a reply to a request for its address. */
import { ETH_HLEN, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_RARP, ETH_SRC, sameIp } from "./wire.js";

const ARP_LEN = ETH_HLEN + 28;
const OP_REQUEST = 1;
const OP_REPLY = 2;
/** RARP's "request reverse" (RFC 903). */
const OP_REQUEST_REVERSE = 3;
/** The shortest Ethernet frame without its FCS. */
const ETH_ZLEN = 60;
/** Fields of an Ethernet/IPv4 ARP packet, as offsets into the frame. */
const OP = ETH_HLEN + 6;
const SENDER_MAC = ETH_HLEN + 8;
const TARGET_IP = ETH_HLEN + 24;

/** Whether `f` is an ARP reply that says where `ip` is (sent by whoever answers for it). */
export function isArpReplyFor(f: Uint8Array, ip: number[]): boolean {
  return f.length >= ARP_LEN && ((f[ETH_TYPE] << 8) | f[ETH_TYPE + 1]) === ETHERTYPE_ARP
    && ((f[OP] << 8) | f[OP + 1]) === OP_REPLY && sameIp(f.subarray(SENDER_MAC + 6, SENDER_MAC + 10), ip);
}

/** The reply to `f` if it is a request for `ip`, else null. */
export function arpReply(f: Uint8Array, ip: number[], mac: Uint8Array): Uint8Array | null {
  if (f.length < ARP_LEN || ((f[OP] << 8) | f[OP + 1]) !== OP_REQUEST) return null;
  if (!sameIp(f.subarray(TARGET_IP, TARGET_IP + 4), ip)) return null;
  const r = arpFrame(ARP_LEN, f.subarray(ETH_SRC, ETH_SRC + 6), mac, ETHERTYPE_ARP, OP_REPLY);
  r.set(ip, SENDER_MAC + 6);
  // The target is the requester: its MAC and IP (the request's sender fields).
  r.set(f.subarray(SENDER_MAC, SENDER_MAC + 10), SENDER_MAC + 10);
  return r;
}

/**
 * The announcement a moved NIC makes for itself (VHOST_USER_SEND_RARP, as QEMU's self-announce):
 * a broadcast RARP "request reverse" whose sender and target are `mac`, so every switch on the
 * way learns where that MAC is now. Padded to the shortest Ethernet frame.
 */
export function rarpAnnouncement(mac: Uint8Array): Uint8Array {
  const r = arpFrame(ETH_ZLEN, new Uint8Array(6).fill(0xff), mac, ETHERTYPE_RARP, OP_REQUEST_REVERSE);
  r.set(mac, SENDER_MAC + 10);
  return r;
}

/** An Ethernet/IPv4 ARP-layout frame from `mac` to `dst` with the sender's MAC filled in; the rest is the caller's. */
function arpFrame(len: number, dst: Uint8Array, mac: Uint8Array, ethertype: number, op: number): Uint8Array {
  const r = new Uint8Array(len);
  const dv = new DataView(r.buffer);
  r.set(dst, 0);
  r.set(mac, ETH_SRC);
  dv.setUint16(ETH_TYPE, ethertype);
  dv.setUint16(ETH_HLEN, 1); // hardware: Ethernet
  dv.setUint16(ETH_HLEN + 2, ETHERTYPE_IPV4);
  r[ETH_HLEN + 4] = 6;
  r[ETH_HLEN + 5] = 4;
  dv.setUint16(OP, op);
  r.set(mac, SENDER_MAC);
  return r;
}
