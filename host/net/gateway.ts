/**
 * The built-in gateway (vmd's "local interface" idea): a switch port that answers ARP for its
 * address (gateway/arp.ts), ICMP echo (gateway/icmp.ts), and DHCP from a configurable /24
 * (gateway/dhcp.ts); for IPv6, router solicitations with an advertisement of a /64 for SLAAC,
 * neighbour solicitations and ICMPv6 echo (gateway/icmpv6.ts). Checksums come from the
 * engine's checksum code (Checksummer), never a second implementation. Anything else
 * addressed to it is counted and dropped; forwarding to the host's sockets (user-mode
 * networking) would plug in at `unhandled`.
 */
import type { NetFrame, Switch, SwitchPort } from "./switch.js";
import { Checksummer } from "./checksummer.js";
import type { SlirpUplink } from "./uplink.js";
import { arpReply } from "./gateway/arp.js";
import { DhcpServer, DHCP_SERVER_PORT } from "./gateway/dhcp.js";
import { echoReply, ICMP_ECHO_REQUEST } from "./gateway/icmp.js";
import { ICMP6, icmpv6Answer } from "./gateway/icmpv6.js";
import {
  ETH_HLEN, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IP4, IP4_DST, IP4_MIN_HLEN, IP4_PROTO, IP6_NEXT,
  IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, parseIp, parseIp6, parseMac, sameIp, sameIp6, UDP_HLEN,
} from "./gateway/wire.js";

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
  /** Frames the gateway neither answers nor hands to an uplink. */
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
  /** Frames handed to the uplink (the world beyond the gateway). */
  uplinked: number;
  unhandled: number;
}

export class Gateway implements SwitchPort {
  readonly name = "gateway";
  readonly ip: number[];
  readonly mac: Uint8Array;
  readonly counters: GatewayCounters = {
    arpReplies: 0, echoReplies: 0, dhcpOffers: 0, dhcpAcks: 0, dhcpNaks: 0, routerAdverts: 0, neighborAdverts: 0, echo6Replies: 0,
    uplinked: 0, unhandled: 0,
  };
  /** The advertised /64 prefix (16 bytes, host part zero), the gateway's global and link-local addresses. */
  readonly prefix6: Uint8Array;
  readonly ip6: Uint8Array;
  readonly linkLocal6: Uint8Array;
  private readonly csum = new Checksummer();
  private readonly dhcp: DhcpServer;
  private readonly unhandled?: (frame: NetFrame) => void;
  private uplinkPort: SlirpUplink | null = null;

  constructor(private readonly sw: Switch, opts: GatewayOptions) {
    // Options given as undefined must not override the defaults.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as GatewayOptions;
    const o = { host: 1, poolStart: 100, poolEnd: 199, leaseSeconds: 3600, mac: "52:55:0a:d7:00:01", prefix6: "fd57:6173:6d00::", ...given };
    const net = parseIp(opts.subnet);
    this.ip = [net[0], net[1], net[2], o.host];
    this.mac = parseMac(o.mac);
    this.prefix6 = parseIp6(o.prefix6);
    this.prefix6.fill(0, 8);
    this.ip6 = this.prefix6.slice();
    this.ip6[15] = 1;
    // Link-local from the MAC by modified EUI-64 (RFC 4291, appendix A).
    this.linkLocal6 = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, this.mac[0] ^ 2, this.mac[1], this.mac[2], 0xff, 0xfe, this.mac[3], this.mac[4], this.mac[5]);
    this.dhcp = new DhcpServer(this.csum, {
      ip: this.ip, mac: this.mac, poolStart: o.poolStart, poolEnd: o.poolEnd, leaseSeconds: o.leaseSeconds,
      dns: o.dns ? parseIp(o.dns) : undefined, reservations: o.reservations,
    });
    this.unhandled = o.unhandled;
    sw.attach(this);
  }

  /**
   * What the gateway does not answer itself goes to `uplink` from now on. Frames must reach it
   * complete and may be large segments, so the switch finishes partial checksums for the
   * gateway and hands it GSO frames whole; what the uplink sends enters the switch from here.
   */
  attachUplink(uplink: SlirpUplink): void {
    this.uplinkPort = uplink;
    this.sw.changed();
  }

  get uplink(): SlirpUplink | null { return this.uplinkPort; }

  /** The gateway's own replies need no finished checksums; the uplink's world does. */
  get acceptsPartial(): boolean { return this.uplinkPort === null; }
  get acceptsGso(): boolean { return this.uplinkPort !== null; }

  /** A frame from the uplink (the host or the world) onto the network. */
  fromUplink(frame: NetFrame): void {
    this.sw.input(this, frame);
  }

  /** Leases by client MAC. */
  get leases(): ReadonlyMap<string, { ip: number[]; expires: number }> { return this.dhcp.leases; }

  deliver(frame: NetFrame): void {
    const f = frame.data;
    const type = (f[ETH_TYPE] << 8) | f[ETH_TYPE + 1];
    if (type === ETHERTYPE_ARP) {
      const reply = arpReply(f, this.ip, this.mac);
      return reply ? this.answer(reply, "arpReplies") : this.beyond(frame);
    }
    if (type === ETHERTYPE_IPV6 && f.length >= ICMP6 + 4 && f[IP6_NEXT] === IPPROTO_ICMPV6) {
      const a = icmpv6Answer(this.csum, f, { mac: this.mac, prefix: this.prefix6, linkLocal: this.linkLocal6, isOurs: (x) => this.isOurs6(x) });
      if (!a) return this.beyond(frame);
      return this.answer(a.frame, a.kind === "router-advert" ? "routerAdverts" : a.kind === "neighbor-advert" ? "neighborAdverts" : "echo6Replies");
    }
    if (type === ETHERTYPE_IPV4 && f.length >= ETH_HLEN + IP4_MIN_HLEN) {
      const ihl = (f[IP4] & 15) * 4;
      const l4 = IP4 + ihl;
      const proto = f[IP4_PROTO];
      if (proto === IPPROTO_ICMP && sameIp(f.subarray(IP4_DST, IP4_DST + 4), this.ip) && f[l4] === ICMP_ECHO_REQUEST) {
        return this.answer(echoReply(this.csum, f, ihl, this.ip, this.mac), "echoReplies");
      }
      if (proto === IPPROTO_UDP && f.length >= l4 + UDP_HLEN && ((f[l4 + 2] << 8) | f[l4 + 3]) === DHCP_SERVER_PORT) {
        const r = this.dhcp.handle(f, l4 + UDP_HLEN);
        if (r.kind === "offer" || r.kind === "ack" || r.kind === "nak") {
          return this.answer(r.frame, r.kind === "offer" ? "dhcpOffers" : r.kind === "ack" ? "dhcpAcks" : "dhcpNaks");
        }
        if (r.kind === "unhandled") this.counters.unhandled++;
        return;
      }
    }
    this.beyond(frame);
  }

  /** A frame the gateway does not answer: to the uplink if there is one, else counted (and to the hook). */
  private beyond(frame: NetFrame): void {
    if (this.uplinkPort && this.routed(frame.data)) {
      this.counters.uplinked++;
      this.uplinkPort.input(frame);
      return;
    }
    this.counters.unhandled++;
    this.unhandled?.(frame);
  }

  /**
   * Whether a frame the gateway received is for the world behind it, as a router decides: sent
   * to its MAC (or to one of slirp's own on the subnet: 52:55 and the address, e.g. DNS at .3;
   * 52:56 and an IPv6 address's last four bytes),
   * or ARP and ICMPv6 (neighbour discovery) sent to everyone. Frames flooded to every port on
   * their way to another guest, and IPv4 broadcast or multicast data, stay on the network.
   */
  private routed(f: Uint8Array): boolean {
    const type = (f[ETH_TYPE] << 8) | f[ETH_TYPE + 1];
    if (type === ETHERTYPE_ARP) return true;
    if ((f[0] & 1) !== 0) return type === ETHERTYPE_IPV6 && f.length > IP6_NEXT && f[IP6_NEXT] === IPPROTO_ICMPV6;
    if (f.subarray(0, 6).every((b, i) => b === this.mac[i])) return true;
    if (f[0] === 0x52 && f[1] === 0x55) return f[2] === this.ip[0] && f[3] === this.ip[1] && f[4] === this.ip[2];
    // slirp's IPv6 addresses answer from 52:56 and the address's last four bytes (libslirp's
    // in6_compute_ethaddr): the gateway's (prefix::1), DNS (prefix::3).
    return f[0] === 0x52 && f[1] === 0x56 && f[2] === this.ip6[12] && f[3] === this.ip6[13] && f[4] === this.ip6[14];
  }

  /** Sends `reply` and counts it under `counter`. */
  private answer(reply: Uint8Array, counter: keyof GatewayCounters): void {
    this.counters[counter]++;
    this.sw.input(this, { data: reply, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
  }

  private isOurs6(a: Uint8Array): boolean {
    return sameIp6(a, this.ip6) || sameIp6(a, this.linkLocal6);
  }
}
