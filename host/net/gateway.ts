/**
 * The built-in gateway (vmd's "local interface" idea): a switch port that answers ARP for its
 * address, ICMP echo, and DHCP (DISCOVER/OFFER, REQUEST/ACK, with lease, mask, router and DNS
 * options) from a configurable /24; for IPv6, router solicitations with an advertisement of a
 * /64 for SLAAC, neighbour solicitations and ICMPv6 echo. IPv4 header and L4 checksums come from the engine's
 * checksum code (Checksummer), never a second implementation. Anything else addressed to it
 * is counted and dropped; forwarding to the host's sockets (user-mode networking) would plug in
 * at `unhandled`.
 */
import type { NetFrame, Switch, SwitchPort } from "./switch.js";
import { Checksummer } from "./checksummer.js";

export interface GatewayOptions {
  /** Network address of the /24 (last byte ignored), e.g. "10.215.0.0". */
  subnet: string;
  /** Gateway host number in the subnet (default 1). */
  host?: number;
  /** DHCP pool host numbers (default 100..199). */
  poolStart?: number;
  poolEnd?: number;
  /** Lease time, seconds (default 3600). */
  leaseSeconds?: number;
  /** DNS server to hand out (option 6), if any. */
  dns?: string;
  /** Fixed leases: client MAC ("52:54:00:00:00:0a") → host number in the subnet. */
  reservations?: Record<string, number>;
  /**
   * IPv6 /64 prefix advertised for SLAAC (default fd57:6173:6d00::, a ULA). The gateway answers
   * router and neighbour solicitations and ICMPv6 echo at prefix::1 and its link-local address.
   */
  prefix6?: string;
  /** Gateway MAC (default 52:55:0a:d7:00:01, locally administered). */
  mac?: string;
  /** Frames the gateway does not answer (hook for forwarding later). */
  unhandled?: (frame: NetFrame) => void;
}

export interface GatewayCounters {
  arpReplies: number;
  echoReplies: number;
  dhcpOffers: number;
  dhcpAcks: number;
  dhcpNaks: number;
  routerAdverts: number;
  neighborAdverts: number;
  echo6Replies: number;
  unhandled: number;
}

const parseIp = (s: string) => {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 address ${s}`);
  return p;
};
const parseMac = (s: string) => Uint8Array.from(s.split(":").map((h) => parseInt(h, 16)));
const macText = (m: Uint8Array) => Array.from(m, (b) => b.toString(16).padStart(2, "0")).join(":");

/** DHCP message types (RFC 2132, option 53). */
const DISCOVER = 1, OFFER = 2, REQUEST = 3, ACK = 5, NAK = 6, RELEASE = 7;
const MAGIC = 0x63825363;

export class Gateway implements SwitchPort {
  readonly name = "gateway";
  readonly acceptsPartial = true;
  readonly ip: number[];
  readonly mac: Uint8Array;
  readonly counters: GatewayCounters = {
    arpReplies: 0, echoReplies: 0, dhcpOffers: 0, dhcpAcks: 0, dhcpNaks: 0, routerAdverts: 0, neighborAdverts: 0, echo6Replies: 0, unhandled: 0,
  };
  /** The advertised /64 prefix (16 bytes, host part zero), the gateway's global and link-local addresses. */
  readonly prefix6: Uint8Array;
  readonly ip6: Uint8Array;
  readonly linkLocal6: Uint8Array;
  /** Leases by client MAC. */
  readonly leases = new Map<string, { ip: number[]; expires: number }>();
  private readonly csum = new Checksummer();
  private readonly opts: Required<Omit<GatewayOptions, "dns" | "unhandled" | "reservations">> & Pick<GatewayOptions, "dns" | "unhandled" | "reservations">;

  constructor(private readonly sw: Switch, opts: GatewayOptions) {
    // Options given as undefined must not override the defaults.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as GatewayOptions;
    this.opts = { host: 1, poolStart: 100, poolEnd: 199, leaseSeconds: 3600, mac: "52:55:0a:d7:00:01", prefix6: "fd57:6173:6d00::", ...given };
    const net = parseIp(opts.subnet);
    this.ip = [net[0], net[1], net[2], this.opts.host];
    this.mac = parseMac(this.opts.mac);
    this.prefix6 = parseIp6(this.opts.prefix6);
    this.prefix6.fill(0, 8);
    this.ip6 = this.prefix6.slice();
    this.ip6[15] = 1;
    // Link-local from the MAC by modified EUI-64 (RFC 4291, appendix A).
    this.linkLocal6 = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, this.mac[0] ^ 2, this.mac[1], this.mac[2], 0xff, 0xfe, this.mac[3], this.mac[4], this.mac[5]);
    if (opts.dns) parseIp(opts.dns);
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    const f = frame.data;
    const type = (f[12] << 8) | f[13];
    if (type === 0x0806 && f.length >= 42) return this.arp(f);
    if (type === 0x86dd && f.length >= 14 + 40 + 4 && f[14 + 6] === 58) return this.icmp6(f);
    if (type === 0x0800 && f.length >= 34) {
      const ihl = (f[14] & 15) * 4;
      const proto = f[23];
      const dstIp = Array.from(f.subarray(30, 34));
      if (proto === 1 && sameIp(dstIp, this.ip) && f[14 + ihl] === 8) return this.echo(f, ihl);
      if (proto === 17 && f.length >= 14 + ihl + 8 && ((f[14 + ihl + 2] << 8) | f[14 + ihl + 3]) === 67) return this.dhcp(f, 14 + ihl + 8);
    }
    this.counters.unhandled++;
    this.opts.unhandled?.(frame);
  }

  private send(data: Uint8Array): void {
    this.sw.input(this, { data, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
  }

  private arp(f: Uint8Array): void {
    // Request (op 1) for our address.
    if (f[20] !== 0 || f[21] !== 1 || !sameIp(Array.from(f.subarray(38, 42)), this.ip)) {
      this.counters.unhandled++;
      return;
    }
    const r = new Uint8Array(42);
    r.set(f.subarray(6, 12), 0);
    r.set(this.mac, 6);
    r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
    r.set(this.mac, 22);
    r.set(this.ip, 28);
    r.set(f.subarray(22, 32), 32);
    this.counters.arpReplies++;
    this.send(r);
  }

  private echo(f: Uint8Array, ihl: number): void {
    const totalLen = (f[16] << 8) | f[17];
    const r = f.slice(0, 14 + totalLen);
    r.set(f.subarray(6, 12), 0);
    r.set(this.mac, 6);
    r.set(f.subarray(26, 30), 14 + 16); // to the requester's address
    r.set(this.ip, 14 + 12);
    r[14 + 8] = 64;
    const icmp = 14 + ihl;
    r[icmp] = 0; // echo reply
    r[icmp + 2] = r[icmp + 3] = 0;
    const c = this.csum.checksum(r, icmp, r.length - icmp);
    r[icmp + 2] = c >> 8;
    r[icmp + 3] = c & 0xff;
    this.ipv4Checksum(r, ihl);
    this.counters.echoReplies++;
    this.send(r);
  }

  private isOurs6(a: Uint8Array): boolean {
    return same16(a, this.ip6) || same16(a, this.linkLocal6);
  }

  /** Router solicitation → advertisement; neighbour solicitation for us → advertisement; echo. */
  private icmp6(f: Uint8Array): void {
    const icmp = 54;
    const src = f.slice(22, 38);
    const dst = f.slice(38, 54);
    const type = f[icmp];
    const fromUnspecified = src.every((b) => b === 0);
    const toMac = fromUnspecified ? Uint8Array.of(0x33, 0x33, 0, 0, 0, 1) : f.slice(6, 12);
    const to = fromUnspecified ? ALL_NODES : src;
    if (type === 133) {
      // RA (RFC 4861, 4.2): hop limit 64, router lifetime 1800 s; source link-layer and prefix information (L, A) options.
      const body = new Uint8Array(16 + 8 + 32);
      const dv = new DataView(body.buffer);
      body[0] = 134;
      body[4] = 64;
      dv.setUint16(6, 1800);
      body.set([1, 1, ...this.mac], 16);
      body.set([3, 4, 64, 0xc0], 24);
      dv.setUint32(28, 86400);
      dv.setUint32(32, 14400);
      body.set(this.prefix6, 40);
      this.counters.routerAdverts++;
      return this.send6(toMac, this.linkLocal6, to, body);
    }
    if (type === 135 && f.length >= icmp + 24 && this.isOurs6(f.subarray(icmp + 8, icmp + 24))) {
      // NA (RFC 4861, 4.4): router, solicited (unless answering DAD), override; target link-layer option.
      const body = new Uint8Array(24 + 8);
      body[0] = 136;
      body[4] = fromUnspecified ? 0xa0 : 0xe0;
      body.set(f.subarray(icmp + 8, icmp + 24), 8);
      body.set([2, 1, ...this.mac], 24);
      this.counters.neighborAdverts++;
      return this.send6(toMac, f.slice(icmp + 8, icmp + 24), to, body);
    }
    if (type === 128 && this.isOurs6(dst)) {
      const len = (f[18] << 8) | f[19];
      const body = f.slice(icmp, 54 + len);
      body[0] = 129;
      body[2] = body[3] = 0;
      this.counters.echo6Replies++;
      return this.send6(f.slice(6, 12), dst, src, body, 64);
    }
    this.counters.unhandled++;
  }

  /** Sends an ICMPv6 message `body` (checksum field zero) from `src` to `dst`. */
  private send6(toMac: Uint8Array, src: Uint8Array, dst: Uint8Array, body: Uint8Array, hopLimit = 255): void {
    const r = new Uint8Array(54 + body.length);
    const dv = new DataView(r.buffer);
    r.set(toMac, 0);
    r.set(this.mac, 6);
    dv.setUint16(12, 0x86dd);
    dv.setUint32(14, 0x60000000);
    dv.setUint16(18, body.length);
    r[20] = 58;
    r[21] = hopLimit;
    r.set(src, 22);
    r.set(dst, 38);
    r.set(body, 54);
    // Pseudo-header (RFC 8200, 8.1): source, destination, upper-layer length, next header.
    const pseudo = new Uint8Array(40);
    pseudo.set(src, 0);
    pseudo.set(dst, 16);
    new DataView(pseudo.buffer).setUint32(32, body.length);
    pseudo[39] = 58;
    dv.setUint16(56, this.csum.checksum(r, 54, body.length, this.csum.sum(pseudo)));
    this.send(r);
  }

  private ipv4Checksum(r: Uint8Array, ihl: number): void {
    r[24] = r[25] = 0;
    const c = this.csum.checksum(r, 14, ihl);
    r[24] = c >> 8;
    r[25] = c & 0xff;
  }

  private dhcp(f: Uint8Array, bootp: number): void {
    if (f.length < bootp + 240 || f[bootp] !== 1) return void this.counters.unhandled++;
    const dv = new DataView(f.buffer, f.byteOffset, f.length);
    if (dv.getUint32(bootp + 236) !== MAGIC) return void this.counters.unhandled++;
    const opts = parseOptions(f, bootp + 240);
    const type = opts.get(53)?.[0];
    const chaddr = f.slice(bootp + 28, bootp + 34);
    const key = macText(chaddr);
    const now = Date.now();
    if (type === DISCOVER) {
      const ip = this.leaseFor(key, now);
      if (!ip) return void this.counters.unhandled++;
      this.counters.dhcpOffers++;
      this.reply(f, bootp, chaddr, OFFER, ip);
    } else if (type === REQUEST) {
      const want = opts.get(50) ? Array.from(opts.get(50)!) : Array.from(f.subarray(bootp + 12, bootp + 16));
      const server = opts.get(54);
      if (server && !sameIp(Array.from(server), this.ip)) return; // another server's offer was taken
      const lease = this.leases.get(key);
      if (lease && sameIp(lease.ip, want)) {
        lease.expires = now + this.opts.leaseSeconds * 1000;
        this.counters.dhcpAcks++;
        this.reply(f, bootp, chaddr, ACK, lease.ip);
      } else {
        this.counters.dhcpNaks++;
        this.reply(f, bootp, chaddr, NAK, [0, 0, 0, 0]);
      }
    } else if (type === RELEASE) {
      this.leases.delete(key);
    }
  }

  /** The client's current lease, or a free pool address (expired leases are reused). */
  private leaseFor(key: string, now: number): number[] | null {
    const have = this.leases.get(key);
    if (have) return have.ip;
    const fixed = this.opts.reservations?.[key];
    if (fixed !== undefined) {
      const ip = [this.ip[0], this.ip[1], this.ip[2], fixed];
      this.leases.set(key, { ip, expires: now + 60_000 });
      return ip;
    }
    const used = new Set<number>();
    for (const [k, l] of this.leases) {
      if (l.expires < now) this.leases.delete(k);
      else used.add(l.ip[3]);
    }
    const reserved = new Set(Object.values(this.opts.reservations ?? {}));
    for (let h = this.opts.poolStart; h <= this.opts.poolEnd; h++) {
      if (h === this.opts.host || used.has(h) || reserved.has(h)) continue;
      const ip = [this.ip[0], this.ip[1], this.ip[2], h];
      // An offer reserves the address briefly; REQUEST makes it a lease.
      this.leases.set(key, { ip, expires: now + 60_000 });
      return ip;
    }
    return null;
  }

  private reply(req: Uint8Array, bootp: number, chaddr: Uint8Array, type: number, yiaddr: number[]): void {
    const o: number[] = [53, 1, type, 54, 4, ...this.ip];
    if (type !== NAK) {
      const lease = this.opts.leaseSeconds;
      o.push(51, 4, lease >>> 24, (lease >> 16) & 255, (lease >> 8) & 255, lease & 255);
      o.push(1, 4, 255, 255, 255, 0, 3, 4, ...this.ip);
      if (this.opts.dns) o.push(6, 4, ...parseIp(this.opts.dns));
    }
    o.push(255);
    const bootLen = 240 + o.length;
    const udpLen = 8 + bootLen;
    const ipLen = 20 + udpLen;
    const r = new Uint8Array(14 + ipLen);
    const dv = new DataView(r.buffer);
    r.set(chaddr, 0);
    r.set(this.mac, 6);
    dv.setUint16(12, 0x0800);
    r[14] = 0x45;
    dv.setUint16(16, ipLen);
    r[22] = 64;
    r[23] = 17;
    r.set(this.ip, 26);
    r.set([255, 255, 255, 255], 30); // broadcast: the client has no address yet
    const udp = 34;
    dv.setUint16(udp, 67);
    dv.setUint16(udp + 2, 68);
    dv.setUint16(udp + 4, udpLen);
    const b = udp + 8;
    r[b] = 2; // BOOTREPLY
    r[b + 1] = 1;
    r[b + 2] = 6;
    r.set(req.subarray(bootp + 4, bootp + 8), b + 4); // xid
    r.set(req.subarray(bootp + 10, bootp + 12), b + 10); // flags
    r.set(yiaddr, b + 16);
    r.set(this.ip, b + 20); // siaddr
    r.set(req.subarray(bootp + 28, bootp + 44), b + 28); // chaddr
    dv.setUint32(b + 236, MAGIC);
    r.set(o, b + 240);
    // UDP checksum over the pseudo-header (src, dst, proto, length) and the datagram.
    const pseudo = this.csum.sum(Uint8Array.from([...this.ip, 255, 255, 255, 255, 0, 17, udpLen >> 8, udpLen & 255]));
    const c = this.csum.checksum(r, udp, udpLen, pseudo);
    dv.setUint16(udp + 6, c);
    this.ipv4Checksum(r, 20);
    this.send(r);
  }
}

const ALL_NODES = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

function same16(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === 16 && a.every((x, i) => x === b[i]);
}

/** Parses an IPv6 address (with at most one "::"). */
function parseIp6(s: string): Uint8Array {
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

function sameIp(a: number[], b: number[]): boolean {
  return a.length === 4 && a.every((x, i) => x === b[i]);
}

/** DHCP options (RFC 2132) from `at` to the end option. */
function parseOptions(f: Uint8Array, at: number): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  while (at < f.length) {
    const code = f[at];
    if (code === 255) break;
    if (code === 0) { at++; continue; }
    const len = f[at + 1];
    if (at + 2 + len > f.length) break;
    m.set(code, f.slice(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return m;
}
