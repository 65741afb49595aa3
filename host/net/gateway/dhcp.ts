/**
 * The gateway's DHCP server (RFC 2131, options RFC 2132) for one /24: DISCOVER → OFFER,
 * REQUEST → ACK or NAK, RELEASE; leases from a pool or fixed per MAC, with lease time, mask,
 * router and DNS options. Replies are broadcast (the client has no address yet).
 */
import type { Checksummer } from "../checksummer.js";
import {
  ETH_HLEN, ETH_SRC, ETHERTYPE_IPV4, IP4, IP4_DST, IP4_MIN_HLEN, IP4_PROTO, IP4_SRC, IP4_TOTAL_LEN, IP4_TTL,
  IPPROTO_UDP, macText, sameIp, setIpv4Checksum, TTL, UDP_HLEN,
} from "./wire.js";

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** DHCP message types (RFC 2132, option 53). */
const DISCOVER = 1, OFFER = 2, REQUEST = 3, ACK = 5, NAK = 6, RELEASE = 7;
/** Options (RFC 2132). */
const OPT_PAD = 0, OPT_MASK = 1, OPT_ROUTER = 3, OPT_DNS = 6, OPT_REQUESTED_IP = 50, OPT_LEASE_TIME = 51,
  OPT_MESSAGE_TYPE = 53, OPT_SERVER_ID = 54, OPT_END = 255;
/** BOOTP fields (RFC 2131, 2), as offsets from the start of the message. */
const OP = 0, XID = 4, FLAGS = 10, CIADDR = 12, YIADDR = 16, SIADDR = 20, CHADDR = 28, COOKIE = 236, OPTIONS = 240;
const BOOTREQUEST = 1, BOOTREPLY = 2;
const HTYPE_ETHERNET = 1;
const COOKIE_VALUE = 0x63825363;
/** An offer holds its address this long until a REQUEST makes it a lease. */
const OFFER_HOLD_MS = 60_000;

export interface DhcpConfig {
  /** The server's (gateway's) address and MAC; the /24 is the first three bytes of `ip`. */
  ip: number[];
  mac: Uint8Array;
  poolStart: number;
  poolEnd: number;
  leaseSeconds: number;
  dns?: number[];
  /** Client MAC ("52:54:00:00:00:0a") → host number. */
  reservations?: Record<string, number>;
}

export type DhcpOutcome = { kind: "offer" | "ack" | "nak"; frame: Uint8Array } | { kind: "release" | "ignored" | "unhandled" };

export class DhcpServer {
  /** Leases by client MAC. */
  readonly leases = new Map<string, { ip: number[]; expires: number }>();

  constructor(private readonly csum: Checksummer, private readonly cfg: DhcpConfig) {}

  /** Handles the DHCP message at `bootp` in frame `f` (UDP to port 67). */
  handle(f: Uint8Array, bootp: number, now = Date.now()): DhcpOutcome {
    if (f.length < bootp + OPTIONS || f[bootp + OP] !== BOOTREQUEST) return { kind: "unhandled" };
    const dv = new DataView(f.buffer, f.byteOffset, f.length);
    if (dv.getUint32(bootp + COOKIE) !== COOKIE_VALUE) return { kind: "unhandled" };
    const opts = parseOptions(f, bootp + OPTIONS);
    const type = opts.get(OPT_MESSAGE_TYPE)?.[0];
    const chaddr = f.slice(bootp + CHADDR, bootp + CHADDR + 6);
    const key = macText(chaddr);
    if (type === DISCOVER) {
      const ip = this.leaseFor(key, now);
      if (!ip) return { kind: "unhandled" };
      return { kind: "offer", frame: this.reply(f, bootp, chaddr, OFFER, ip) };
    }
    if (type === REQUEST) {
      const requested = opts.get(OPT_REQUESTED_IP) ?? f.subarray(bootp + CIADDR, bootp + CIADDR + 4);
      const server = opts.get(OPT_SERVER_ID);
      if (server && !sameIp(server, this.cfg.ip)) return { kind: "ignored" }; // another server's offer was taken
      const lease = this.leases.get(key);
      if (lease && sameIp(lease.ip, requested)) {
        lease.expires = now + this.cfg.leaseSeconds * 1000;
        return { kind: "ack", frame: this.reply(f, bootp, chaddr, ACK, lease.ip) };
      }
      return { kind: "nak", frame: this.reply(f, bootp, chaddr, NAK, [0, 0, 0, 0]) };
    }
    if (type === RELEASE) {
      this.leases.delete(key);
      return { kind: "release" };
    }
    return { kind: "ignored" };
  }

  /** The client's current lease, or a free pool address (expired leases are reused). */
  private leaseFor(key: string, now: number): number[] | null {
    const net = this.cfg.ip.slice(0, 3);
    const have = this.leases.get(key);
    if (have) return have.ip;
    const fixed = this.cfg.reservations?.[key];
    if (fixed !== undefined) {
      const ip = [...net, fixed];
      this.leases.set(key, { ip, expires: now + OFFER_HOLD_MS });
      return ip;
    }
    const used = new Set<number>();
    for (const [k, l] of this.leases) {
      if (l.expires < now) this.leases.delete(k);
      else used.add(l.ip[3]);
    }
    const reserved = new Set(Object.values(this.cfg.reservations ?? {}));
    for (let h = this.cfg.poolStart; h <= this.cfg.poolEnd; h++) {
      if (h === this.cfg.ip[3] || used.has(h) || reserved.has(h)) continue;
      const ip = [...net, h];
      this.leases.set(key, { ip, expires: now + OFFER_HOLD_MS });
      return ip;
    }
    return null;
  }

  private reply(req: Uint8Array, bootp: number, chaddr: Uint8Array, type: number, yiaddr: number[]): Uint8Array {
    const { ip, mac } = this.cfg;
    const o: number[] = [OPT_MESSAGE_TYPE, 1, type, OPT_SERVER_ID, 4, ...ip];
    if (type !== NAK) {
      const lease = this.cfg.leaseSeconds;
      o.push(OPT_LEASE_TIME, 4, lease >>> 24, (lease >> 16) & 255, (lease >> 8) & 255, lease & 255);
      o.push(OPT_MASK, 4, 255, 255, 255, 0, OPT_ROUTER, 4, ...ip);
      if (this.cfg.dns) o.push(OPT_DNS, 4, ...this.cfg.dns);
    }
    o.push(OPT_END);
    const udpLen = UDP_HLEN + OPTIONS + o.length;
    const ipLen = IP4_MIN_HLEN + udpLen;
    const r = new Uint8Array(ETH_HLEN + ipLen);
    const dv = new DataView(r.buffer);
    r.set(chaddr, 0);
    r.set(mac, ETH_SRC);
    dv.setUint16(12, ETHERTYPE_IPV4);
    r[IP4] = 0x45; // version 4, 20-byte header
    dv.setUint16(IP4_TOTAL_LEN, ipLen);
    r[IP4_TTL] = TTL;
    r[IP4_PROTO] = IPPROTO_UDP;
    r.set(ip, IP4_SRC);
    r.set([255, 255, 255, 255], IP4_DST);
    const udp = IP4 + IP4_MIN_HLEN;
    dv.setUint16(udp, DHCP_SERVER_PORT);
    dv.setUint16(udp + 2, DHCP_CLIENT_PORT);
    dv.setUint16(udp + 4, udpLen);
    const b = udp + UDP_HLEN;
    r[b + OP] = BOOTREPLY;
    r[b + 1] = HTYPE_ETHERNET;
    r[b + 2] = 6; // hardware address length
    r.set(req.subarray(bootp + XID, bootp + XID + 4), b + XID);
    r.set(req.subarray(bootp + FLAGS, bootp + FLAGS + 2), b + FLAGS);
    r.set(yiaddr, b + YIADDR);
    r.set(ip, b + SIADDR);
    r.set(req.subarray(bootp + CHADDR, bootp + CHADDR + 16), b + CHADDR);
    dv.setUint32(b + COOKIE, COOKIE_VALUE);
    r.set(o, b + OPTIONS);
    // UDP checksum over the pseudo-header (src, dst, proto, length) and the datagram.
    const pseudo = this.csum.sum(Uint8Array.from([...ip, 255, 255, 255, 255, 0, IPPROTO_UDP, udpLen >> 8, udpLen & 255]));
    dv.setUint16(udp + 6, this.csum.checksum(r, udp, udpLen, pseudo));
    setIpv4Checksum(this.csum, r, IP4_MIN_HLEN);
    return r;
  }
}

/** DHCP options (RFC 2132) from `at` to the end option. */
function parseOptions(f: Uint8Array, at: number): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  while (at < f.length) {
    const code = f[at];
    if (code === OPT_END) break;
    if (code === OPT_PAD) { at++; continue; }
    const len = f[at + 1];
    if (at + 2 + len > f.length) break;
    m.set(code, f.slice(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return m;
}
