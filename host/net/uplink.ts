/**
 * The embedded network's way out: libslirp (QEMU's user-mode networking) behind the gateway.
 * No root, no tap: guests' TCP and UDP to anywhere become the host's own sockets (NAT), the
 * gateway's address reaches the host's loopback (as QEMU's 10.0.2.2 does), DNS at `.3` is
 * forwarded to the host's resolver, and host ports can be forwarded to guests.
 *
 * One DHCP server and one router: the gateway answers DHCP, ARP, router and neighbour
 * discovery and echo itself, and hands everything else it receives to slirp (whose DHCP is
 * off). What slirp would say that the gateway already says (ARP replies for the gateway's
 * address, router advertisements, neighbour advertisements for the gateway's addresses) is
 * dropped on the way back, so guests never hear two routers. Frames reach slirp complete:
 * the gateway takes no partial checksums while an uplink is attached (the switch finishes
 * them), and a large segment's checksum is finished here before slirp's TCP takes it whole.
 *
 * slirp's sockets and timers run on the thread's reactor (AsyncEpoll) and JS timers: before
 * each wait slirp lists its fds (slirp_pollfds_fill), after it is told which are ready.
 */
import { NetHdr } from "../../assembly/abi.js";
import { AsyncEpoll } from "../runtime/async-epoll.js";
import * as libc from "../runtime/libc.js";
import {
  libslirp, SLIRP_POLL_ERR, SLIRP_POLL_HUP, SLIRP_POLL_IN, SLIRP_POLL_OUT, SLIRP_POLL_PRI, type SlirpHandle,
} from "../runtime/libslirp.js";
import { Checksummer } from "./checksummer.js";
import { isArpReplyFor } from "./gateway/arp.js";
import { ICMP6, ND_NEIGHBOR_ADVERT, ND_ROUTER_ADVERT } from "./gateway/icmpv6.js";
import { ETH_TYPE, ETHERTYPE_IPV6, IP6_NEXT, IPPROTO_ICMPV6, sameIp6 } from "./gateway/wire.js";
import type { NetFrame } from "./switch.js";

/** A host port forwarded to a guest (QEMU's hostfwd). */
export interface PortForward {
  proto: "tcp" | "udp";
  /** Host address to listen on (default 127.0.0.1). */
  hostAddr?: number[];
  hostPort: number;
  guestAddr: number[];
  guestPort: number;
}

export interface UplinkOptions {
  /** The /24 (first three bytes) and the gateway's host number in it. */
  net: number[];
  gatewayHost: number;
  /** The gateway's IPv6 /64 and its addresses (prefix::1, link-local), or null for IPv4 only. */
  ipv6: { prefix: Uint8Array; gateway: Uint8Array; linkLocal: Uint8Array } | null;
  /** The MTU of the network (default 1500). */
  mtu?: number;
  forwards?: PortForward[];
}

export interface UplinkCounters {
  /** Frames handed to slirp (from guests), and large segments among them. */
  toHost: number;
  gsoToHost: number;
  /** Frames from slirp delivered to the network. */
  fromHost: number;
  /** Frames from slirp dropped because the gateway already says them (ARP replies, RA, NA). */
  suppressed: number;
  /** Messages slirp reported about guest misbehaviour. */
  guestErrors: number;
}

/** Host number of the DNS address slirp answers at (as in QEMU's 10.0.2.3). */
export const NAMESERVER_HOST = 3;

/** The uplink: created by the gateway's owner; frames in by `input()`, out by `deliver`. */
export class SlirpUplink {
  readonly counters: UplinkCounters = { toHost: 0, gsoToHost: 0, fromHost: 0, suppressed: 0, guestErrors: 0 };
  readonly nameserver: number[];
  readonly nameserver6: Uint8Array | null;
  private readonly slirp: SlirpHandle;
  private readonly poll = new AsyncEpoll();
  private readonly csum = new Checksummer();
  private readonly gatewayIp: number[];
  private readonly timers = new Map<bigint, { id: number; cbOpaque: bigint; t?: ReturnType<typeof setTimeout> }>();
  private nextTimer = 1n;
  private watched: number[] = [];
  /** Set while inside a slirp call: frames it sends are held and delivered after it returns. */
  private insideSlirp = false;
  private readonly held: Uint8Array[] = [];
  private readonly pendingInput: Uint8Array[] = [];
  private running = true;
  private readonly done: Promise<void>;
  private lastError = "";
  private readonly ipv6: UplinkOptions["ipv6"];
  /** Largest frame of the network's MTU (with a VLAN tag); anything longer is a large segment. */
  private readonly maxFrame: number;

  /**
   * Starts slirp; throws SlirpUnavailable without libslirp, and an Error naming the forward
   * whose host port could not be had.
   */
  constructor(opts: UplinkOptions, private readonly deliver: (frame: NetFrame) => void, private readonly log: (line: string) => void = () => {}) {
    const net = opts.net.slice(0, 3);
    this.ipv6 = opts.ipv6;
    this.maxFrame = (opts.mtu ?? 1500) + 18;
    this.gatewayIp = [...net, opts.gatewayHost];
    this.nameserver = [...net, NAMESERVER_HOST];
    this.nameserver6 = opts.ipv6 ? withLastByte(opts.ipv6.prefix, NAMESERVER_HOST) : null;
    this.slirp = libslirp().create({
      network: [...net, 0], netmask: [255, 255, 255, 0], host: this.gatewayIp, nameserver: this.nameserver,
      dhcpStart: [...net, 100],
      ipv6: opts.ipv6 ? { prefix: opts.ipv6.prefix, prefixLength: 64, host: opts.ipv6.gateway, nameserver: this.nameserver6! } : null,
      mtu: opts.mtu ?? 1500,
    }, {
      sendPacket: (frame) => this.fromSlirp(frame),
      guestError: (message) => { this.counters.guestErrors++; this.log(`uplink: guest error: ${message}`); },
      timerNew: (id, cbOpaque) => {
        const handle = this.nextTimer++;
        this.timers.set(handle, { id, cbOpaque });
        return handle;
      },
      timerMod: (handle, delayMs) => {
        const t = this.timers.get(handle);
        if (!t) return;
        if (t.t) clearTimeout(t.t);
        t.t = setTimeout(() => {
          t.t = undefined;
          this.call(() => this.slirp.handleTimer(t.id, t.cbOpaque));
          this.poll.wake();
        }, Math.max(0, delayMs));
        t.t.unref?.();
      },
      timerFree: (handle) => {
        const t = this.timers.get(handle);
        if (t?.t) clearTimeout(t.t);
        this.timers.delete(handle);
      },
      notify: () => this.poll.wake(),
    });
    for (const f of opts.forwards ?? []) {
      const host = f.hostAddr ?? [127, 0, 0, 1];
      if (!this.slirp.addHostForward(f.proto === "udp", host, f.hostPort, f.guestAddr, f.guestPort)) {
        this.slirp.cleanup();
        throw new Error(`cannot forward ${f.proto} ${host.join(".")}:${f.hostPort} to ${f.guestAddr.join(".")}:${f.guestPort}: the host port is taken or not allowed`);
      }
    }
    this.done = this.run();
  }

  /** A frame from the network for the world (the gateway did not answer it itself). */
  input(frame: NetFrame): void {
    if (!this.running) return;
    let data = frame.data;
    // A large segment (the switch hands the gateway GSO frames whole, their checksum finished
    // over the whole segment): slirp's TCP takes it as one segment, nobody splits it.
    if (data.length > this.maxFrame) this.counters.gsoToHost++;
    if (frame.hdr.flags & NetHdr.F_NEEDS_CSUM) {
      // The switch finishes partial checksums for the gateway while an uplink is attached; a
      // caller handing frames straight in may not have.
      data = data.slice();
      this.csum.complete(data, frame.hdr.csumStart, frame.hdr.csumOffset);
    }
    this.counters.toHost++;
    if (this.insideSlirp) {
      this.pendingInput.push(data === frame.data ? data.slice() : data);
      return;
    }
    this.call(() => this.slirp.input(data));
    // A new connection may have opened a socket: list the fds again.
    this.poll.wake();
  }

  /** What slirp knows of its connections (slirp_connection_info), for diagnostics. */
  connections(): string {
    return this.slirp.connectionInfo();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.poll.wake();
    await this.done;
    for (const t of this.timers.values()) if (t.t) clearTimeout(t.t);
    this.timers.clear();
    this.poll.close();
    this.slirp.cleanup();
  }

  /** Runs a slirp call; frames it sends, and input that arrived meanwhile, are handled after it returns. */
  private call(fn: () => void): void {
    this.enter(fn);
    while (this.held.length || this.pendingInput.length) {
      for (const f of this.held.splice(0)) this.deliver({ data: f, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
      for (const f of this.pendingInput.splice(0)) this.enter(() => this.slirp.input(f));
    }
  }

  /** Runs `fn` (a slirp call) marked as inside slirp. */
  private enter(fn: () => void): void {
    this.insideSlirp = true;
    try {
      fn();
    } finally {
      this.insideSlirp = false;
    }
  }

  private fromSlirp(frame: Uint8Array): void {
    if (this.suppressed(frame)) {
      this.counters.suppressed++;
      return;
    }
    this.counters.fromHost++;
    this.held.push(frame);
    if (!this.insideSlirp) this.call(() => {});
  }

  /** What the gateway already says itself: ARP replies for its address, RAs, NAs for its addresses. */
  private suppressed(f: Uint8Array): boolean {
    if (isArpReplyFor(f, this.gatewayIp)) return true;
    const type = (f[ETH_TYPE] << 8) | f[ETH_TYPE + 1];
    if (type === ETHERTYPE_IPV6 && f.length > ICMP6 + 24 && f[IP6_NEXT] === IPPROTO_ICMPV6) {
      if (f[ICMP6] === ND_ROUTER_ADVERT) return true;
      if (f[ICMP6] === ND_NEIGHBOR_ADVERT && this.ipv6) {
        const target = f.subarray(ICMP6 + 8, ICMP6 + 24);
        return sameIp6(target, this.ipv6.gateway) || sameIp6(target, this.ipv6.linkLocal);
      }
    }
    return false;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const order: number[] = [];
      const want = new Map<number, number>();
      let timeout = -1;
      this.call(() => {
        timeout = this.slirp.fill((fd, events) => {
          order.push(fd);
          want.set(fd, (want.get(fd) ?? 0) | events);
        }, -1);
      });
      // Registered afresh each round: slirp closes and opens sockets between rounds, and a
      // reused fd number must not inherit a registration the kernel already dropped.
      for (const fd of this.watched) this.poll.del(fd);
      this.watched = [];
      for (const [fd, events] of want) {
        try {
          this.poll.add(fd, toEpoll(events), fd);
          this.watched.push(fd);
        } catch (e) {
          const msg = (e as Error).message;
          if (msg !== this.lastError) this.log(`uplink: cannot watch fd ${fd}: ${msg}`);
          this.lastError = msg;
        }
      }
      const ready = await this.poll.wait(timeout);
      if (!this.running) break;
      const got = new Map(ready.map((r) => [r.token, r.events]));
      this.call(() => this.slirp.poll(false, (index) => toSlirp(got.get(order[index]) ?? 0)));
    }
  }
}

function toEpoll(events: number): number {
  return (events & SLIRP_POLL_IN ? libc.EPOLLIN : 0) | (events & SLIRP_POLL_OUT ? libc.EPOLLOUT : 0) | (events & SLIRP_POLL_PRI ? libc.EPOLLPRI : 0);
}

function toSlirp(events: number): number {
  return (events & libc.EPOLLIN ? SLIRP_POLL_IN : 0) | (events & libc.EPOLLOUT ? SLIRP_POLL_OUT : 0)
    | (events & libc.EPOLLPRI ? SLIRP_POLL_PRI : 0) | (events & libc.EPOLLERR ? SLIRP_POLL_ERR : 0) | (events & libc.EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

function withLastByte(prefix: Uint8Array, last: number): Uint8Array {
  const a = prefix.slice();
  a[15] = last;
  return a;
}
