/**
 * A virtio-net device as a switch port. It takes partial checksums: the core's RX translation
 * finishes them for a guest that did not negotiate GUEST_CSUM and hands them on otherwise.
 * Frames for a guest with no RX buffer posted wait in a short backlog (as a NIC's FIFO) and
 * are retried on the guest's next RX notification; beyond it they are dropped and counted.
 *
 * Fast path: frames from this device to another device port in the same memory, between
 * addresses the switch has learned, are moved by the core itself (forwardTx: one copy, no JS
 * per frame). The port keeps the core's forwarding table in step with the switch's learning
 * table (rebuilt when `Switch.version` moves); everything else (broadcast, unknown or unlearned
 * addresses, the gateway, a receiver with a backlog, captures) takes the switch's own path.
 */
import { BackendKind, Forward, QueueIndex } from "../../assembly/abi.js";
import type { RateLimiter } from "../device/rate-limiter.js";
import { decodeVirtioHdr, encodeVirtioHdr } from "../device/header.js";
import { macToBigInt, type ForwardEntry, type VirtioNetDevice } from "../device/virtio-net.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

/** Frames per forwardTx() call before the table is looked at again. */
const FORWARD_BUDGET = 256;

/** How a DevicePort joins its switch. */
export interface DevicePortOptions {
  /** Frames held for a guest with no free RX buffer before they are dropped (default 256). */
  backlogMax?: number;
  /** Let the core forward to other device ports in the same memory (default true). */
  fastPath?: boolean;
  /**
   * The switch port this device is a queue pair of (MultiQueuePort): frames enter the switch as
   * the owner's, the owner delivers, and there is no fast path.
   */
  owner?: SwitchPort;
}

export class DevicePort implements SwitchPort {
  readonly acceptsPartial = true;
  /** The core hands GSO frames whole to a guest that negotiated them and segments them for one that did not. */
  readonly acceptsGso = true;
  private readonly backlog: NetFrame[] = [];
  /** Frames dropped because the guest had no buffer and the backlog was full. */
  backlogDrops = 0;
  /** Frames the core moved to another device without the switch's JS path. */
  fastForwarded = 0;
  /** Switch.version the core's forwarding table was built for (-1: never). */
  private tableVersion = -1;
  /** The ports behind the table's entries, by index (for flushing their RX rings). */
  private tablePorts: DevicePort[] = [];

  /** The port the switch sees this device as: itself, or the multi-queue port it is one queue pair of. */
  private readonly self: SwitchPort;
  private readonly fastPath: boolean;

  private readonly backlogMax: number;
  /** The header handed to receive(), rewritten per frame (the device copies it before returning). */
  private readonly hdrScratch = new Uint8Array(12);

  constructor(readonly name: string, readonly dev: VirtioNetDevice, private readonly sw: Switch, opts: DevicePortOptions = {}) {
    if (dev.backendKind !== BackendKind.VNET_HDR) throw new Error(`${name}: a switch port device needs BackendKind.VNET_HDR`);
    const owner = opts.owner ?? null;
    this.backlogMax = opts.backlogMax ?? 256;
    this.self = owner ?? this;
    this.fastPath = (opts.fastPath ?? true) && owner === null;
    if (owner === null) sw.attach(this);
  }

  private limitsNow: { tx?: RateLimiter; rx?: RateLimiter } = {};

  /** Rate limits per direction: over them TX frames stay on the guest's ring, RX frames queue here. */
  get limits(): { tx?: RateLimiter; rx?: RateLimiter } { return this.limitsNow; }
  set limits(l: { tx?: RateLimiter; rx?: RateLimiter }) {
    this.limitsNow = l;
    // A limited port leaves the core's fast path (which would not ask the limiter), both ways.
    this.sw.changed();
  }
  private txTimer: ReturnType<typeof setTimeout> | undefined;
  private rxTimer: ReturnType<typeof setTimeout> | undefined;

  /** A rate-limited port is off the core's fast path, both as sender and as receiver. */
  private get limited(): boolean { return this.limitsNow.tx !== undefined || this.limitsNow.rx !== undefined; }

  /**
   * Leaves the switch; a retry a rate limit scheduled is cancelled, so nothing touches the
   * device after its owner frees it.
   */
  close(): void {
    clearTimeout(this.txTimer);
    clearTimeout(this.rxTimer);
    this.txTimer = this.rxTimer = undefined;
    this.backlog.length = 0;
    if (this.self === this) this.sw.detach(this);
  }

  /** The guest queued frames (TX notification): into the switch. Returns the frames taken. */
  pumpTx(): number {
    const limit = this.limits.tx;
    if (limit) {
      // Through the switch's path, frame by frame against the limit (the core's fast path
      // would not ask); a frame over it stays on the ring until the tokens are back.
      let held = 0;
      const out = this.dev.collectTx(Infinity, (bytes) => {
        if (limit.tryTake(bytes)) return true;
        held = bytes;
        return false;
      });
      for (const o of out) this.sw.input(this.self, { data: o.frame, hdr: decodeVirtioHdr(o.header) });
      if (held && !this.txTimer) {
        this.txTimer = setTimeout(() => { this.txTimer = undefined; this.pumpTx(); }, Math.max(1, limit.waitMs(held)));
        this.txTimer.unref?.();
      }
      return out.length;
    }
    let moved = 0;
    for (;;) {
      if (this.refreshTable()) {
        const r = this.dev.forwardTx(FORWARD_BUDGET);
        moved += r.frames;
        this.fastForwarded += r.frames;
        for (let m = r.touched, i = 0; m !== 0; m >>>= 1, i++) if (m & 1) this.tablePorts[i].dev.flushRx();
        if (r.stop === "budget") continue;
        if (r.stop !== "host") return moved;
      }
      // The switch's own path: all of the ring without a fast path, else one frame at a time (the
      // one the core stopped at; it may teach the switch an address that makes the table useful).
      const out = this.dev.collectTx(this.fastPath ? 1 : Infinity);
      for (const o of out) this.sw.input(this.self, { data: o.frame, hdr: decodeVirtioHdr(o.header) });
      moved += out.length;
      if (!this.fastPath || out.length === 0) return moved;
    }
  }

  /**
   * Brings the core's forwarding table up to date with the switch; false when there is no fast
   * path now (turned off, a capture port must see everything, or nothing learned to use).
   */
  private refreshTable(): boolean {
    if (!this.fastPath || this.limited) return false;
    if (this.tableVersion === this.sw.version) return this.tablePorts.length > 0;
    const entries: ForwardEntry[] = [];
    const ports: DevicePort[] = [];
    if (!this.sw.capturing) {
      for (const [mac, port] of this.sw.learned()) {
        if (entries.length >= Forward.TABLE_MAX) break;
        if (!(port instanceof DevicePort) || port.dev.memory !== this.dev.memory || !port.fastPath || port.limited) continue;
        // A receiver that is queueing keeps its frames in order behind the queue (our own
        // addresses stay: they only vouch for frames' sources).
        if (port !== this && port.backlog.length > 0) continue;
        entries.push({ mac: macToBigInt(mac), state: port.dev.state });
        ports.push(port);
      }
    }
    // Frames only flow between two learned addresses, one of them ours.
    const useful = ports.includes(this) && ports.some((p) => p !== this);
    this.dev.setForwardTable(useful ? entries : []);
    this.tablePorts = useful ? ports : [];
    this.tableVersion = this.sw.version;
    return useful;
  }

  /** The guest posted RX buffers (RX notification), or RX tokens came back: retry what waited. */
  pumpRx(): void {
    if (this.backlog.length === 0) return;
    while (this.backlog.length && this.rxAllowed(this.backlog[0]) && this.tryDeliver(this.backlog[0])) {
      this.limits.rx?.charge(this.backlog[0].data.length);
      this.backlog.shift();
    }
    this.dev.flushRx();
    // No longer queueing: other ports' fast paths may deliver to us again.
    if (this.backlog.length === 0) this.sw.changed();
  }

  deliver(frame: NetFrame): void {
    if (this.backlog.length === 0 && this.rxAllowed(frame) && this.tryDeliver(frame)) {
      this.limits.rx?.charge(frame.data.length);
      this.dev.flushRx();
      return;
    }
    if (this.backlog.length >= this.backlogMax) {
      this.backlogDrops++;
      return;
    }
    // The switch's buffer is not ours to keep.
    this.backlog.push({ data: frame.data.slice(), hdr: { ...frame.hdr } });
    // Queueing now: frames for us must keep their order behind the backlog.
    if (this.backlog.length === 1) this.sw.changed();
  }

  /** Whether the RX limit lets `frame` in now (charged once delivered); if not, a timer retries the queue when the tokens are back. */
  private rxAllowed(frame: NetFrame): boolean {
    const limit = this.limits.rx;
    if (!limit || limit.allows(frame.data.length)) return true;
    if (!this.rxTimer) {
      this.rxTimer = setTimeout(() => { this.rxTimer = undefined; this.pumpRx(); }, Math.max(1, limit.waitMs(frame.data.length)));
      this.rxTimer.unref?.();
    }
    return false;
  }

  /** false if the guest has no buffer (try later); true if delivered or dropped by the device. */
  private tryDeliver(frame: NetFrame): boolean {
    // (frame.hdr carries no num_buffers: it encodes as 0, the core fills it in.)
    const r = this.dev.receive(frame.data, encodeVirtioHdr(frame.hdr, this.dev.headerLength as 10 | 12, this.hdrScratch));
    return r.kind !== "no-buffer";
  }

  metrics() {
    return {
      rx: this.dev.metrics(QueueIndex.RX), tx: this.dev.metrics(QueueIndex.TX), backlog: this.backlog.length,
      backlogDrops: this.backlogDrops, fastForwarded: this.fastForwarded,
    };
  }
}
