/**
 * A vhost-user virtio-net back-end: the protocol's state machine on top of the engine. The
 * front-end (QEMU) keeps the guest-visible device; we get its negotiated features, its guest
 * RAM (mapped into our Wasm memory), its rings and its kick/call eventfds, and run the data
 * path in a Worker (TapWorker) that QEMU's kicks wake directly and that signals QEMU's call
 * fds directly. This object is the control side: it alone issues ioctls (TUNSETOFFLOAD).
 */
import { readlinkSync } from "node:fs";
import { BackendKind, CsumPolicy, Feature, GsoMask, QueueIndex } from "../../assembly/abi.js";
import { LinuxTap } from "../backends/tap-linux.js";
import { loadSteeringProgram } from "../backends/tap-steering.js";
import { featureList, featureMask, FULL_OFFER, hasFeature, NEEDS_CTRL_VQ } from "../device/features.js";
import { RateLimiter, type RateLimit } from "../device/rate-limiter.js";
import { VirtioNetDevice } from "../device/virtio-net.js";
import { DeviceLock } from "../device/device-lock.js";
import { DevicePort } from "../net/device-port.js";
import { MultiQueuePort } from "../net/multi-queue-port.js";
import type { GatewayOptions } from "../net/gateway.js";
import { embeddedNetwork, type EmbeddedNetwork } from "../net/embedded-network.js";
import { rarpAnnouncement } from "../net/gateway/arp.js";
import { macText } from "../net/gateway/wire.js";
import { WasmSpace } from "../memory/wasm-space.js";
import * as libc from "../runtime/libc.js";
import { MappedGuestMemory } from "./guest-map.js";
import { QueuePair, type Ring } from "./queue-pair.js";
import { MappedLog } from "./dirty-log.js";
import {
  F_LOG_ALL, F_PROTOCOL_FEATURES, FLAG_NEED_REPLY, VRING_F_LOG, ProtocolError, ProtocolFeature, readLogBase, readMemTable, readSingleRegion, readU64,
  readVringAddr, readVringState, Req, REQUEST_NAMES, u64Payload, VRING_NOFD, vringStatePayload,
} from "./protocol.js";

export type LogLevel = "error" | "warn" | "info" | "debug";

export { embeddedNetwork, type EmbeddedNetwork };
export type Logger = (level: LogLevel, message: string) => void;

export interface VhostUserNetOptions {
  /**
   * Tap interface to attach (opened now, kept across front-end connections). Without one the
   * device is a port of the embedded network (a switch with the built-in gateway).
   */
  tap?: string;
  /** The embedded network's gateway (default subnet 10.215.0.0/24), when there is no tap. */
  gateway?: GatewayOptions;
  /**
   * An embedded network to join (several back-ends, one per guest, on one switch). Without it,
   * and without a tap, the back-end makes its own.
   */
  network?: EmbeddedNetwork;
  /** Name of this guest's port on the switch (default "guest"). */
  portName?: string;
  /**
   * Queue pairs (default 1; up to MAX_QUEUE_PAIRS). With more than one, VIRTIO_NET_F_MQ is
   * offered and the front-end learns the number from GET_QUEUE_NUM; each pair has its own
   * state and data path (a Worker on its own queue of a multi-queue tap, or a kick loop on the
   * embedded network, which steers received flows over the pairs the guest enabled).
   */
  queuePairs?: number;
  /** Features to offer (default FULL_OFFER: offloads both ways, MRG_RXBUF). QEMU keeps MAC/STATUS for itself. */
  features?: bigint;
  csumPolicy?: CsumPolicy;
  lockedMac?: boolean;
  mac?: string;
  mtu?: number;
  /**
   * Keep looking at the TX ring this many µs after the last frame moved before going back to
   * waiting for kicks, with the guest's notifications off meanwhile (vhost-net's
   * busyloop_timeout). Default 0: never.
   */
  pollUs?: number;
  /**
   * Rate limits per direction: over them the device stops taking from the TX ring or filling
   * RX buffers until tokens return (with a tap in its Worker; on the embedded network in its
   * switch port, which then leaves the core's fast path).
   */
  limits?: { tx?: RateLimit; rx?: RateLimit };
  log?: Logger;
}

/** A message as read off the socket. */
export interface Message {
  request: number;
  flags: number;
  payload: Uint8Array;
  fds: number[];
}

/** What to send back: a payload for the request's own reply, and/or closing the connection. */
export interface Outcome {
  reply?: Uint8Array;
  close?: string;
}

/** Offered for the front-end, which does the work: it asks the guest to announce itself after a migration. */
const GUEST_ANNOUNCE = featureMask(Feature.GUEST_ANNOUNCE);

const PROTOCOL_FEATURES = (1n << BigInt(ProtocolFeature.MQ)) | (1n << BigInt(ProtocolFeature.REPLY_ACK))
  | (1n << BigInt(ProtocolFeature.CONFIGURE_MEM_SLOTS)) | (1n << BigInt(ProtocolFeature.STATUS))
  | (1n << BigInt(ProtocolFeature.LOG_SHMFD)) | (1n << BigInt(ProtocolFeature.RARP));

/** Most queue pairs a back-end serves (QEMU's vhost-user net allows up to 1024; 16 is beyond any machine here). */
export const MAX_QUEUE_PAIRS = 16;

/** Bytes of the host word area per device (the DeviceLock word). */
const HOST_AREA = 64;

export class VhostUserNetBackend {
  /** The memory the device's state and its guest's RAM live in (the network's, if it joined one). */
  readonly space: WasmSpace;
  /** The queue pairs, by index (pair k has rings 2k and 2k + 1). */
  readonly pairs: readonly QueuePair[];
  /** Pair 0's device (the only one without multiqueue). */
  readonly dev: VirtioNetDevice;
  /** The tap (its first queue), or null when the device is on the embedded network. */
  readonly tap: LinuxTap | null;
  /** The tap's queues, one per pair (one without multiqueue). */
  private readonly taps: LinuxTap[];
  /** The embedded network (switch and gateway) when there is no tap; the port is a MultiQueuePort with several pairs. */
  readonly network: (EmbeddedNetwork & { port: DevicePort | MultiQueuePort }) | null = null;
  private readonly mapped: MappedGuestMemory;
  private readonly nativeBase: bigint;
  private readonly log: Logger;
  private readonly pollUs: number;
  private protocolFeatures = 0n;
  /** The front-end acked VHOST_USER_F_PROTOCOL_FEATURES in SET_FEATURES. */
  private protocolAcked = false;
  private status = 0;
  /** Features the front-end set (SET_FEATURES), adopted by the device at every start; null until then. */
  private acked: bigint | null = null;
  private loggedFeatures = -1n;
  /** The front-end's dirty log (SET_LOG_BASE), and whether it asked for logging (VHOST_F_LOG_ALL). */
  private readonly dirtyLog: MappedLog;
  private logAll = false;

  constructor(opts: VhostUserNetOptions) {
    this.log = opts.log ?? (() => {});
    this.pollUs = opts.pollUs ?? 0;
    const n = opts.queuePairs ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_QUEUE_PAIRS) throw new Error(`queue pairs must be 1..${MAX_QUEUE_PAIRS}, got ${n}`);
    if (n > 1 && (opts.limits?.tx || opts.limits?.rx)) {
      throw new Error("rate limits apply to a device with one queue pair (a token bucket shared by several data-path threads is not supported)");
    }
    const net = opts.tap ? null : opts.network ?? embeddedNetwork(opts.gateway);
    this.space = net ? net.space : new WasmSpace();
    this.nativeBase = libc.memoryAddress(this.space.memory);
    this.taps = opts.tap ? (n > 1 ? LinuxTap.openQueues(opts.tap, n) : [LinuxTap.open(opts.tap)]) : [];
    this.tap = this.taps[0] ?? null;
    const tap = this.tap;
    const blocks: { state: number; lock: number }[] = [];
    const pairs: QueuePair[] = [];
    this.pairs = pairs;
    let port: DevicePort | MultiQueuePort | null = null;
    try {
      const offer = opts.features ?? FULL_OFFER;
      const devs: VirtioNetDevice[] = [];
      for (let i = 0; i < n; i++) {
        const block = { state: this.space.alloc(VirtioNetDevice.stateSize(), 64), lock: this.space.alloc(HOST_AREA, 64) };
        blocks.push(block);
        devs.push(new VirtioNetDevice({
          memory: this.space.memory, stateAddress: block.state, regions: [], nativeBase: this.nativeBase,
          backend: tap && !tap.vnetHdr ? BackendKind.PLAIN : BackendKind.VNET_HDR, features: offer,
          csumPolicy: opts.csumPolicy, lockedMac: opts.lockedMac, mac: opts.mac, mtu: opts.mtu,
          lock: new DeviceLock(this.space.memory, block.lock),
          hooks: {
            // The tap's offloads and header size are the device's, not a queue's: pair 0 sets them.
            ...(i === 0 ? { negotiated: (f: bigint) => this.negotiated(f) } : {}),
            // With a tap the Worker signals the call fds itself; on the embedded network we do.
            // (No control queue here: the front-end keeps it.)
            interrupt: (q) => { const fd = q === QueueIndex.CTRL ? -1 : this.pairs[i].rings[q].callFd; if (fd >= 0) libc.eventfdSignal(fd); },
          },
        }));
      }
      this.dev = devs[0];
      if (tap) {
        // The kernel takes TSO on write from any tap, USO only from Linux 6.2 on; whatever
        // it cannot take, the core segments before writing.
        if (tap.vnetHdr) {
          const gso = tap.supportsUso() ? GsoMask.ALL : GsoMask.TAP_DEFAULT;
          for (const d of devs) d.setBackendGso(gso);
        }
        // A queue the kernel steers to must be read: the queues of pairs not running are detached.
        for (const q of this.taps.slice(1)) q.setQueueAttached(false);
        if (n > 1) this.steerByFlow(tap);
      } else if (n > 1) {
        port = new MultiQueuePort(opts.portName ?? "guest", devs, net!.sw);
      } else {
        const p = new DevicePort(opts.portName ?? "guest", devs[0], net!.sw);
        if (opts.limits?.tx || opts.limits?.rx) {
          p.limits = {
            ...(opts.limits.tx ? { tx: new RateLimiter(opts.limits.tx) } : {}),
            ...(opts.limits.rx ? { rx: new RateLimiter(opts.limits.rx) } : {}),
          };
        }
        port = p;
      }
      if (port) this.network = { ...net!, port };
      for (const [i, dev] of devs.entries()) {
        const q = this.taps[i];
        const onRunning = q
          ? (on: boolean) => { if (i > 0) q.setQueueAttached(on); }
          : (on: boolean) => { if (port instanceof MultiQueuePort) port.setActive(i, on); };
        const io = q
          ? {
            kind: "tap" as const, tap: q, nativeBase: this.nativeBase, limits: opts.limits, onRunning,
            onNeedsReset: () => this.log("error", `${this.pairName(i)}the guest's rings are malformed: device needs reset`),
            onTapError: (m: string) => this.log("error", `tap ${q.name}: ${m}`),
          }
          : { kind: "switch" as const, port: port instanceof MultiQueuePort ? port.pairs[i] : port!, onRunning };
        pairs.push(new QueuePair(i, dev, this.space, blocks[i].state, blocks[i].lock, io));
      }
      this.dirtyLog = new MappedLog(this.space);
      this.mapped = new MappedGuestMemory(this.space, {
        addRegion: (r) => { for (const d of devs) d.addRegion(r); },
        removeRegion: (gpa) => devs.map((d) => d.removeRegion(gpa)).every(Boolean),
      });
    } catch (e) {
      port?.close();
      for (const t of this.taps) t.close();
      for (const b of blocks) {
        this.space.free(b.state);
        this.space.free(b.lock);
      }
      throw e;
    }
  }

  /** Pair 0's features were negotiated (adopted): the tap follows. */
  private negotiated(f: bigint): void {
    const flags = this.tap ? this.tap.applyNegotiated(f) : 0;
    // adopt() replays the negotiation at every (re)start: say it once per change.
    if (f !== this.loggedFeatures) {
      this.log("info", `negotiated ${featureList(f).join(" ")}${this.tap ? `; tap offload 0x${flags.toString(16)}` : ""}`);
    }
    this.loggedFeatures = f;
  }

  /**
   * Puts the flow-hash steering program on the multi-queue tap, so each flow stays on one
   * queue pair; without the privilege to load it, the kernel's own steering remains (it may move
   * a flow between queues, and so reorder it, when the guest's packets of it change queue).
   */
  private steerByFlow(tap: LinuxTap): void {
    let prog = -1;
    try {
      prog = loadSteeringProgram();
      tap.setSteeringProgram(prog);
      this.log("info", `tap ${tap.name}: ${this.taps.length} queues, steered by flow hash (eBPF)`);
    } catch (e) {
      this.log("warn", `tap ${tap.name}: flow steering program not installed (${(e as Error).message}; needs CAP_BPF); the kernel's steering may move a flow between queue pairs`);
    } finally {
      libc.closeQuietly(prog);
    }
  }

  /** Every device marks its writes in the front-end's log while it asks for logging (LOG_ALL) and has given one. */
  private applyDirtyLog(): void {
    const on = this.logAll && this.dirtyLog.size > 0;
    for (const d of this.devices) d.setDirtyLog(on ? this.dirtyLog.wasm : 0, on ? this.dirtyLog.size : 0);
  }

  /** VIRTIO_NET_F_MQ when there are several pairs (the core's devices are one pair each), else 0. */
  private get mqFeature(): bigint {
    return this.pairs.length > 1 ? 1n << BigInt(Feature.MQ) : 0n;
  }

  /** "pair k: " in log lines when there are several. */
  private pairName(i: number): string {
    return this.pairs.length > 1 ? `pair ${i}: ` : "";
  }

  /** Whether the data path is running. */
  get running(): boolean { return this.pairs.some((p) => p.running); }

  /** Every pair's device (pair k's is [k]). */
  get devices(): VirtioNetDevice[] { return this.pairs.map((p) => p.dev); }

  /** Fds the message being handled handed over for keeps (the rest are closed after it). */
  private taken = new Set<number>();

  /**
   * Handles one message. Fds in the message are owned from here on: each is either kept by the
   * request that takes it (exactly one place then owns it) or closed once the request is done.
   */
  async handle(m: Message): Promise<Outcome> {
    const name = REQUEST_NAMES[m.request] ?? `request ${m.request}`;
    this.log("debug", `${name} (${m.payload.length} bytes, ${m.fds.length} fds)`);
    let ok = true;
    let out: Outcome = {};
    this.taken = new Set();
    try {
      out = await this.dispatch(m);
      // Whatever the order a front-end uses (call fd after kick fd, features after memory, enable
      // early or late, a driver reset and re-initialisation), the rings start once complete.
      if (!out.close) await this.reconcile();
    } catch (e) {
      ok = false;
      if (e instanceof ProtocolError) out = { close: `${name}: ${e.message}` };
      else this.log("error", `${name}: ${(e as Error).message}`);
    } finally {
      for (const fd of m.fds) if (!this.taken.has(fd)) libc.closeQuietly(fd);
    }
    if (out.close) return out;
    if (!out.reply && (m.flags & FLAG_NEED_REPLY)) {
      // REPLY_ACK: requests without a reply of their own answer 0 (done) or 1 (failed). Without
      // it negotiated, a front-end waiting on a failed request would wait forever: end instead.
      if (this.protocolFeatures & (1n << BigInt(ProtocolFeature.REPLY_ACK))) out.reply = u64Payload(ok ? 0n : 1n);
      else if (!ok) return { close: `${name} failed and the front-end waits for a reply without REPLY_ACK` };
    }
    return out;
  }

  /** The request keeps `fd` (ownership moves to where it is stored). */
  private take(fd: number): number {
    this.taken.add(fd);
    return fd;
  }

  private async dispatch(m: Message): Promise<Outcome> {
    const p = m.payload;
    switch (m.request) {
      case Req.GET_FEATURES:
        // The control queue is the front-end's (vhost-user.rst: the back-end sees data queues
        // only); MQ is the back-end's queue pairs, not one device's: offered beside the core's offer.
        // VHOST_F_LOG_ALL: live migration (the devices mark what they write in the front-end's log).
        // GUEST_ANNOUNCE: after a migration the front-end asks the guest to announce itself
        // (the control queue and the config's status bit are the front-end's).
        return { reply: u64Payload((this.dev.offeredFeatures & ~NEEDS_CTRL_VQ) | this.mqFeature | GUEST_ANNOUNCE | (1n << F_LOG_ALL) | (1n << F_PROTOCOL_FEATURES)) };
      case Req.SET_FEATURES: {
        const f = readU64(p);
        this.protocolAcked = ((f >> F_PROTOCOL_FEATURES) & 1n) === 1n;
        this.logAll = ((f >> F_LOG_ALL) & 1n) === 1n;
        await this.setFeatures(f & ~(1n << F_PROTOCOL_FEATURES) & ~(1n << F_LOG_ALL));
        this.applyDirtyLog();
        return {};
      }
      case Req.GET_PROTOCOL_FEATURES:
        return { reply: u64Payload(PROTOCOL_FEATURES) };
      case Req.SET_PROTOCOL_FEATURES:
        this.protocolFeatures = readU64(p) & PROTOCOL_FEATURES;
        return {};
      case Req.GET_QUEUE_NUM:
        // Queue pairs, not queues (vhost-user.rst: VHOST_USER_GET_QUEUE_NUM, "the number of queues" a net device counts as pairs in QEMU).
        return { reply: u64Payload(BigInt(this.pairs.length)) };
      case Req.SET_OWNER:
        return {};
      case Req.RESET_OWNER:
      case Req.RESET_DEVICE:
        await this.reset();
        return {};
      case Req.SET_MEM_TABLE: {
        const regions = readMemTable(p);
        if (regions.length !== m.fds.length) throw new ProtocolError(`${regions.length} regions but ${m.fds.length} fds`);
        await this.withDataPathStopped(() => {
          this.mapped.clear();
          try {
            // add() owns its fd from the call on (it closes it if the mapping fails).
            regions.forEach((r, i) => this.mapped.add(r, this.take(m.fds[i])));
          } catch (e) {
            this.mapped.clear();
            throw e;
          }
        });
        this.log("info", `memory: ${regions.map((r) => `gpa 0x${r.gpa.toString(16)}+${r.size >> 20n}M`).join(", ")}`);
        return {};
      }
      case Req.GET_MAX_MEM_SLOTS:
        return { reply: u64Payload(32n) };
      case Req.ADD_MEM_REG: {
        if (m.fds.length !== 1) throw new ProtocolError(`ADD_MEM_REG with ${m.fds.length} fds`);
        const r = readSingleRegion(p);
        // A front-end setting the device up again may add a region it added before: the same
        // region replaces the old mapping; a different one at that address is refused.
        const old = this.mapped.regions.find((x) => x.gpa === r.gpa);
        if (old && old.size === r.size && old.qva === r.qva && old.mmapOffset === r.mmapOffset) {
          // Not with the rings running: they may live in it.
          await this.withDataPathStopped(() => {
            this.mapped.remove(r.gpa);
            this.mapped.add(r, this.take(m.fds[0]));
          });
        } else {
          this.mapped.add(r, this.take(m.fds[0]));
        }
        this.log("info", `memory: added gpa 0x${r.gpa.toString(16)}+${r.size >> 20n}M`);
        return {};
      }
      case Req.REM_MEM_REG: {
        const r = readSingleRegion(p);
        if (!this.mapped.remove(r.gpa)) throw new Error(`no region at gpa 0x${r.gpa.toString(16)}`);
        return {};
      }
      case Req.SET_VRING_NUM: {
        const s = readVringState(p);
        this.ring(s.index).size = s.num;
        return {};
      }
      case Req.SET_VRING_ADDR: {
        const a = readVringAddr(p);
        const r = this.ring(a.index);
        const tr = (qva: bigint, what: string) => {
          const g = this.mapped.qvaToGpa(qva);
          if (g === null) throw new Error(`ring ${a.index} ${what} address 0x${qva.toString(16)} is not in guest memory`);
          return g;
        };
        const used = tr(a.used, "used");
        // VRING_F_LOG: where the front-end wants the used ring's writes logged. The devices log
        // them at the used ring's guest-physical address; another one (an IOVA under a vIOMMU,
        // which is not offered) would mark the wrong pages and corrupt a migration: refused.
        if (a.flags & VRING_F_LOG && a.log !== used) {
          throw new Error(`ring ${a.index}: refused used-ring log address 0x${a.log.toString(16)}: the used ring is at guest-physical 0x${used.toString(16)}`);
        }
        r.desc = tr(a.desc, "descriptor");
        r.avail = tr(a.avail, "available");
        r.used = used;
        return {};
      }
      case Req.SET_VRING_BASE: {
        const s = readVringState(p);
        // Split: the next available index; packed: both positions and wrap counters (all 32 bits).
        const r = this.ring(s.index);
        r.base = s.num >>> 0;
        r.stoppedAt = null;
        return {};
      }
      case Req.GET_VRING_BASE: {
        // Stops the ring; the front-end waits for this reply (virtio state handed back).
        const s = readVringState(p);
        const r = this.ring(s.index);
        await this.pairOf(s.index).stop();
        r.kickFd = replaceFd(r.kickFd, -1);
        // Where it stopped, also when a reset (QEMU's SET_STATUS 0 comes first) forgot the ring.
        return { reply: vringStatePayload(s.index, r.stoppedAt ?? r.base) };
      }
      case Req.SET_VRING_KICK:
      case Req.SET_VRING_CALL:
      case Req.SET_VRING_ERR: {
        const v = Number(readU64(p));
        const r = this.ring(v & 0xff);
        if (v & VRING_NOFD) throw new Error(`ring ${v & 0xff}: polling mode (no fd) is not supported`);
        if (m.fds.length !== 1) throw new ProtocolError(`${REQUEST_NAMES[m.request]} with ${m.fds.length} fds`);
        // Kicks and calls are eventfds: anything else (a pipe, a file, a socket) could block the
        // data path or fail under it. Refused here, before it is ever used.
        const why = notAnEventfd(m.fds[0]);
        if (why) throw new Error(`${REQUEST_NAMES[m.request]} ring ${v & 0xff}: ${why}`);
        if (m.request === Req.SET_VRING_KICK) {
          await this.withPairStopped(this.pairOf(v & 0xff), () => { r.kickFd = replaceFd(r.kickFd, this.take(m.fds[0])); });
          // Without protocol features a ring is enabled once started (vhost-user.rst, "Ring states").
          if (!this.protocolAcked) r.enabled = true;
        } else if (m.request === Req.SET_VRING_CALL) {
          await this.withPairStopped(this.pairOf(v & 0xff), () => { r.callFd = replaceFd(r.callFd, this.take(m.fds[0])); });
        } else {
          r.errFd = replaceFd(r.errFd, this.take(m.fds[0]));
        }
        return {};
      }
      case Req.SET_VRING_ENABLE: {
        const s = readVringState(p);
        this.ring(s.index).enabled = s.num === 1;
        return {};
      }
      case Req.SET_STATUS: {
        const v = Number(readU64(p));
        if (v === 0) await this.reset();
        this.status = v;
        return {};
      }
      case Req.GET_STATUS:
        return { reply: u64Payload(BigInt(this.status)) };
      case Req.SEND_RARP:
        // A guest without GUEST_ANNOUNCE moved here: tell the network where its MAC is now.
        this.announce(p.subarray(0, 6));
        return {};
      case Req.NET_SET_MTU:
        return {};
      case Req.SET_LOG_BASE: {
        // LOG_SHMFD: the log is a memfd; the front-end waits for a reply once it is mapped.
        if (m.fds.length !== 1) throw new ProtocolError(`SET_LOG_BASE with ${m.fds.length} fds (LOG_SHMFD expects the log's fd)`);
        const { size, offset } = readLogBase(p);
        // Off in every device before the old mapping goes.
        for (const d of this.devices) d.setDirtyLog(0, 0);
        this.dirtyLog.map(this.take(m.fds[0]), size, offset);
        this.applyDirtyLog();
        this.log("info", `dirty log: ${size} bytes (${size * 8n * 4n} KiB of guest memory)`);
        return { reply: new Uint8Array(0) };
      }
      case Req.SET_LOG_FD:
        // The log-sync eventfd: our marks are in the shared bitmap as they happen, nothing to signal.
        return {};
      default: {
        const name = REQUEST_NAMES[m.request] ?? `request ${m.request}`;
        if (m.request === Req.GET_CONFIG || !(m.flags & FLAG_NEED_REPLY)) {
          // A request that expects an answer we cannot give would hang the front-end.
          throw new ProtocolError(`unsupported request ${name}`);
        }
        throw new Error(`unsupported request ${name}`);
      }
    }
  }

  /**
   * Sends a RARP from `mac` into the network the guest is on (the tap, or the embedded switch
   * through the guest's port), as QEMU announces a NIC after migration. A failure is logged:
   * the guest's own traffic teaches the switches too, a little later.
   */
  private announce(mac: Uint8Array): void {
    if (mac.length !== 6) throw new ProtocolError(`SEND_RARP with a ${mac.length}-byte MAC`);
    const frame = rarpAnnouncement(mac);
    try {
      if (this.tap) {
        const n = this.tap.writeFrame(frame);
        if (n < 0) throw new Error(`tap ${this.tap.name}: ${libc.errnoName(-n)}`);
      } else this.network!.sw.input(this.network!.port, { data: frame, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
      this.log("info", `announced ${macText(mac)} (RARP)`);
    } catch (e) {
      this.log("warn", `could not announce ${macText(mac)}: ${(e as Error).message}`);
    }
  }

  private ring(index: number): Ring {
    return this.pairOf(index).rings[index & 1];
  }

  private pairOf(index: number): QueuePair {
    if (!Number.isInteger(index) || index < 0 || index >= 2 * this.pairs.length) {
      throw new ProtocolError(`ring ${index}: ${this.pairs.length} queue pair(s), rings 0..${2 * this.pairs.length - 1}`);
    }
    return this.pairs[index >> 1];
  }

  private async setFeatures(acked: bigint): Promise<void> {
    const dev = this.dev;
    // The guest already agreed these with the front-end; a feature without its prerequisite
    // (QEMU passes GUEST_TSO4 without GUEST_CSUM under csum=off,guest_csum=off) is treated as
    // off rather than failing the whole device.
    // What the front-end keeps (the control queue and all it carries, MQ) is not the devices'.
    acked &= ~NEEDS_CTRL_VQ;
    const f = dev.core.featureWithoutUnmet(acked);
    // QEMU sends SET_FEATURES once per queue pair: the same features again change nothing.
    if (f === this.acked) return;
    await this.stopDataPath();
    if (f !== acked) {
      this.log("warn", `front-end acked ${featureList(acked & ~f).join(" ")} without their prerequisites; treating them as off`);
    }
    this.acked = null;
    for (const p of this.pairs) p.dev.adopt({ features: f });
    this.acked = f;
  }

  /**
   * Starts each pair whose rings are fully described, started and enabled, and stops each
   * running pair that no longer is (a ring disabled: the guest turned the pair off, or the
   * front-end is stopping the device).
   */
  private async reconcile(): Promise<void> {
    if (this.acked === null) return;
    for (const p of this.pairs) {
      if (p.running && !p.ready) {
        await p.stop();
        this.log("info", `${this.pairName(p.index)}rings stopped`);
      } else if (!p.running && p.ready) {
        await p.start(this.acked, this.pollUs);
        this.log("info", `${this.pairName(p.index)}rings started (rx ${p.rings[0].size}, tx ${p.rings[1].size})`);
      }
    }
  }

  /** Stops every pair; the rings' next available indices become their bases. */
  private async stopDataPath(): Promise<void> {
    if (!this.running) return;
    for (const p of this.pairs) await p.stop();
    this.log("info", "rings stopped");
  }

  private async withDataPathStopped(fn: () => void): Promise<void> {
    const was = this.running;
    await this.stopDataPath();
    fn();
    if (was) await this.reconcile();
  }

  private async withPairStopped(p: QueuePair, fn: () => void): Promise<void> {
    const was = p.running;
    await p.stop();
    fn();
    if (was) await this.reconcile();
  }

  /** Device reset (RESET_OWNER, RESET_DEVICE, status 0): rings and negotiation start over. */
  async reset(): Promise<void> {
    await this.stopDataPath();
    for (const p of this.pairs) await p.resetRings();
    this.acked = null;
    this.status = 0;
  }

  /** The front-end went away: release everything it gave us; serve the next one from scratch. */
  async disconnect(): Promise<void> {
    await this.reset();
    this.logAll = false;
    this.applyDirtyLog();
    this.dirtyLog.unmap();
    this.mapped.clear();
    this.protocolFeatures = 0n;
    this.protocolAcked = false;
  }

  /** Stops everything, leaves the switch, closes the tap. */
  async close(): Promise<void> {
    await this.disconnect();
    this.network?.port.close();
    for (const p of this.pairs) await p.close();
    for (const t of this.taps) t.close();
  }

  /** Negotiated guest features (after SET_FEATURES). */
  get features(): bigint { return this.dev.negotiatedFeatures; }
  hasFeature(f: Feature): boolean { return hasFeature(this.dev.negotiatedFeatures, f); }
}

/** Why `fd` is not an eventfd, or null if it is one (read through /proc/self/fd). */
function notAnEventfd(fd: number): string | null {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return `fd ${fd} is not open`;
  }
  return target === "anon_inode:[eventfd]" ? null : `fd is ${target}, not an eventfd`;
}

function replaceFd(old: number, fd: number): number {
  libc.closeQuietly(old);
  return fd;
}
