/** ARP (RFC 826) for the gateway: a reply to a request for its address. */
import { ETH_HLEN, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_SRC, sameIp } from "./wire.js";

const ARP_LEN = ETH_HLEN + 28;
const OP_REQUEST = 1;
const OP_REPLY = 2;
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
  const r = new Uint8Array(ARP_LEN);
  const dv = new DataView(r.buffer);
  r.set(f.subarray(ETH_SRC, ETH_SRC + 6), 0);
  r.set(mac, ETH_SRC);
  dv.setUint16(ETH_TYPE, ETHERTYPE_ARP);
  dv.setUint16(ETH_HLEN, 1); // hardware: Ethernet
  dv.setUint16(ETH_HLEN + 2, ETHERTYPE_IPV4);
  r[ETH_HLEN + 4] = 6;
  r[ETH_HLEN + 5] = 4;
  dv.setUint16(OP, OP_REPLY);
  r.set(mac, SENDER_MAC);
  r.set(ip, SENDER_MAC + 6);
  // The target is the requester: its MAC and IP (the request's sender fields).
  r.set(f.subarray(SENDER_MAC, SENDER_MAC + 10), SENDER_MAC + 10);
  return r;
}
