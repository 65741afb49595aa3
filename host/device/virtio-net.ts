/**
 * A virtio-net device on a Wasm memory: the typed host-side face of one core instance.
 *
 * The transport (PCI/MMIO registers, vhost-user messages, an emulator's ports) calls the
 * driver-facing methods; the backend (tap, switch, null) calls the data-path methods. Nothing
 * here touches guest RAM except `receive()`, which copies a JS frame into the iovecs the core
 * validated; native backends hand the core's iovec arrays to readv/writev directly.
 */
import {
  BackendKind, Code, CsumPolicy, DeviceEvent, DeviceOption, Feature, Forward, GsoMask, Metric, NetHdr, QueueIndex, Status,
} from "../../assembly/abi.js";
import type { GuestRegion } from "../memory/layout.js";
import { coreStateSize, instantiateCore, type CoreExports } from "../wasm/core.js";
import { readMetrics, type QueueMetrics } from "./metrics.js";
import { decodeSavedState, encodeSavedState, SavedStateError, type SavedQueue } from "./saved-state.js";
import { GUEST_OFFLOADS, hasFeature } from "./features.js";
import type { DeviceLock } from "./device-lock.js";

export { BackendKind, CsumPolicy, GsoMask, QueueIndex, Status };

/** The queues of the data path (a pair's RX and TX), as opposed to the control queue. */
export type DataQueue = QueueIndex.RX | QueueIndex.TX;

/** Callbacks through which the device reaches its transport and its privileged side. */
export interface DeviceHooks {
  /** A used-buffer notification is due on queue `q`. */
  interrupt?(q: QueueIndex): void;
  /** A configuration-change notification is due (link change, NEEDS_RESET). */
  configChanged?(): void;
  /**
   * FEATURES_OK was accepted with `features`. The host's control side updates the backend's
   * capabilities here (TUNSETOFFLOAD / TUNSCAP), never the data path.
   */
  negotiated?(features: bigint): void;
  /** The device entered NEEDS_RESET after a malformed ring. */
  needsReset?(): void;
  /** The driver reset the device. */
  reset?(): void;
  /**
   * CTRL_GUEST_OFFLOADS changed the offloads the guest takes (`features`: the negotiated
   * features with the GUEST_* bits as now in effect). The backend's offloads follow
   * (TUNSETOFFLOAD with them), on the control side.
   */
  offloadsChanged?(features: bigint): void;
  /** CTRL_MQ VQ_PAIRS_SET: the driver uses `pairs` queue pairs now. */
  queuePairsChanged?(pairs: number): void;
  /** CTRL_MAC_ADDR_SET: the driver set the device's MAC ("52:54:00:..." form). */
  macChanged?(mac: string): void;
}

export interface DeviceOptions {
  /** The memory holding guest RAM and the state block. */
  memory: WebAssembly.Memory;
  /** Wasm address of this device's state block (16-byte aligned, `stateSize` bytes). */
  stateAddress: number;
  /** Guest RAM as regions of guest-physical space mapped into `memory`. */
  regions: readonly GuestRegion[];
  /** MAC address, "52:54:00:12:34:56" form or 6 bytes. Default 52:54:00:12:34:56. */
  mac?: string | Uint8Array;
  /** MTU reported in config space (68..65535). Default 1500. */
  mtu?: number;
  /** Features to offer; default VERSION_1, MAC, STATUS, MTU, CSUM, GUEST_CSUM, EVENT_IDX, INDIRECT_DESC. */
  features?: bigint;
  /** What the backend expects in front of each frame. Default PLAIN. */
  backend?: BackendKind;
  /** What to do with NEEDS_CSUM from a guest that did not negotiate CSUM. Default COMPLETE. */
  csumPolicy?: CsumPolicy;
  /**
   * GSO types the backend takes whole (GsoMask bits); others are segmented in software on
   * TX. Default GsoMask.TAP_DEFAULT (TCP over IPv4/IPv6 with ECN, as any Linux tap).
   */
  backendGso?: number;
  /** Drop TX frames not from our MAC and RX frames not for it (vmd's locked lladdr). */
  lockedMac?: boolean;
  /** max_virtqueue_pairs in config space (with MQ offered; default 1). */
  maxQueuePairs?: number;
  /** Native address of Wasm address 0, so iovecs can go to readv/writev. Default 0. */
  nativeBase?: bigint;
  hooks?: DeviceHooks;
  /**
   * Called for every range `receive()` writes in guest RAM (Wasm address, length): an
   * emulator with a JIT invalidates code there (v86's jit_dirty_cache).
   */
  written?(wasm: number, len: number): void;
  /**
   * Serialises control calls against a data path running in a Worker on the same state block
   * (see host/io/tap-worker.ts). Leave unset when one thread does everything.
   */
  lock?: DeviceLock;
  /**
   * Attach to a state block another thread already initialised (a Worker's data path)
   * instead of initialising it. Default false.
   */
  attach?: boolean;
}

/** Outcome of handing one frame to the guest. */
export type ReceiveResult =
  | { kind: "delivered"; length: number }
  /** The guest has no RX buffer posted; try again after its next RX notification. */
  | { kind: "no-buffer" }
  /** The device dropped the frame; `reason` is a Metric slot (DROP_*). */
  | { kind: "dropped"; reason: number }
  /** The queue is not ready or broken; `code` is a Code. */
  | { kind: "not-ready"; code: number };

/** Why forwardTx() stopped. */
export type ForwardStop =
  /** The TX ring is empty. */
  | "empty"
  /** The budget ran out with frames left. */
  | "budget"
  /** The next frame is for the host's own path (processTx/collectTx); it is still on the ring. */
  | "host"
  /** The queue is not ready or broken. */
  | "error";

const FORWARD_STOPS: readonly ForwardStop[] = ["empty", "budget", "host", "error"];

/** A learned address for forwardTx(): frames for `mac` go to the device whose state block is `state`. */
export interface ForwardEntry {
  /** MAC in the core's 48-bit form (macToBigInt). */
  mac: bigint;
  /** State block of a VNET_HDR device in the same memory (or this device's own, for its own MACs). */
  state: number;
}

/** Errors of this module. */
export class DeviceError extends Error {
  constructor(readonly kind: "invalid-option" | "region-refused" | "not-initialised" | "features-refused" | "queue-refused", message: string) {
    super(message);
    this.name = "DeviceError";
  }
}

/** A queue as a front-end set it up with the guest: size, guest-physical ring addresses, where to resume. */
export interface AdoptedQueue {
  size: number;
  desc: bigint;
  avail: bigint;
  used: bigint;
  /** The next available index to read (vhost-user SET_VRING_BASE); default 0, a fresh ring. */
  nextAvail?: number;
}

/** What `adopt()` takes over: the negotiated features and, to start the device, both queues (RX, TX) and the control queue if the driver set one up. */
export interface AdoptedState {
  features: bigint;
  queues?: readonly [rx: AdoptedQueue, tx: AdoptedQueue] | readonly [rx: AdoptedQueue, tx: AdoptedQueue, ctrl: AdoptedQueue];
}

/** Parses "aa:bb:cc:dd:ee:ff" (or 6 bytes) into the core's 48-bit form (byte 0 lowest). */
export function macToBigInt(mac: string | Uint8Array): bigint {
  const bytes = typeof mac === "string" ? mac.split(":").map((h) => Number.parseInt(h, 16)) : Array.from(mac);
  if (bytes.length !== 6 || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new DeviceError("invalid-option", `bad MAC address ${String(mac)}`);
  }
  return bytes.reduce((acc, b, i) => acc | (BigInt(b) << BigInt(8 * i)), 0n);
}

export class VirtioNetDevice {
  /** Bytes a state block takes (what to reserve for `stateAddress`). */
  static stateSize(): number {
    return coreStateSize();
  }

  readonly core: CoreExports;
  readonly memory: WebAssembly.Memory;
  readonly state: number;
  readonly stateSize: number;
  private readonly hooks: DeviceHooks;
  private readonly written: ((wasm: number, len: number) => void) | undefined;
  private readonly lock: DeviceLock | undefined;
  /** Native address of Wasm address 0 (as a number: native addresses fit in 2^53). */
  private readonly nativeBase: number;
  private u8: Uint8Array;
  private dv: DataView;

  constructor(opts: DeviceOptions) {
    this.memory = opts.memory;
    this.core = instantiateCore(opts.memory);
    this.state = opts.stateAddress;
    this.stateSize = this.core.stateSize();
    this.hooks = opts.hooks ?? {};
    this.written = opts.written;
    this.lock = opts.lock;
    this.nativeBase = Number(opts.nativeBase ?? 0n);
    if (this.state % 16 !== 0 || this.state <= 0 || this.state + this.stateSize > opts.memory.buffer.byteLength) {
      throw new DeviceError("invalid-option", `state block at ${this.state} must be 16-byte aligned inside the memory`);
    }
    this.u8 = new Uint8Array(opts.memory.buffer);
    this.dv = new DataView(opts.memory.buffer);
    const c = this.core;
    const st = this.state;
    if (opts.attach) {
      if (!c.isInitialised(st)) throw new DeviceError("not-initialised", `no initialised state block at ${st}`);
      return;
    }
    c.init(st);
    c.setNativeBase(st, opts.nativeBase ?? 0n);
    for (const r of opts.regions) this.addRegion(r);
    c.setMac(st, macToBigInt(opts.mac ?? "52:54:00:12:34:56"));
    this.option(DeviceOption.MTU, opts.mtu ?? 1500, "mtu");
    this.option(DeviceOption.BACKEND, opts.backend ?? BackendKind.PLAIN, "backend");
    this.option(DeviceOption.CSUM_POLICY, opts.csumPolicy ?? CsumPolicy.COMPLETE, "csumPolicy");
    this.option(DeviceOption.LOCKED_MAC, opts.lockedMac ? 1 : 0, "lockedMac");
    this.option(DeviceOption.BACKEND_GSO, opts.backendGso ?? GsoMask.TAP_DEFAULT, "backendGso");
    this.option(DeviceOption.MAX_QUEUE_PAIRS, opts.maxQueuePairs ?? 1, "maxQueuePairs");
    if (opts.features !== undefined && c.setOfferedFeatures(st, opts.features) !== Code.OK) {
      throw new DeviceError("invalid-option", `cannot offer features 0x${opts.features.toString(16)}: unimplemented or missing a prerequisite`);
    }
  }

  /** Runs a control operation under the lock, if there is one. */
  private locked<T>(fn: () => T): T {
    return this.lock ? this.lock.with(fn) : fn();
  }

  private option(option: DeviceOption, value: number, name: string): void {
    if (this.core.setOption(this.state, option, value) !== Code.OK) {
      throw new DeviceError("invalid-option", `invalid ${name}: ${value}`);
    }
  }

  /** Changes the GSO types the backend takes whole (e.g. after probing the tap for USO). */
  setBackendGso(mask: number): void {
    this.locked(() => this.option(DeviceOption.BACKEND_GSO, mask, "backendGso"));
  }

  /** Registers a guest RAM region (also while running: vhost-user ADD_MEM_REG). */
  addRegion(r: GuestRegion): void {
    if (this.locked(() => this.core.memAddRegion(this.state, r.gpa, BigInt(r.size), BigInt(r.wasm))) !== Code.OK) {
      throw new DeviceError("region-refused", `guest region gpa 0x${r.gpa.toString(16)} size ${r.size} at ${r.wasm} refused (overlap, past the memory, or at address 0)`);
    }
  }

  /** Removes the guest RAM region starting at `gpa`. */
  removeRegion(gpa: bigint): boolean {
    return this.locked(() => this.core.memRemoveRegion(this.state, gpa)) === Code.OK;
  }

  // ───────────────────────────── driver-facing (transport) ─────────────────────────────

  get status(): number { return this.core.status(this.state); }
  get offeredFeatures(): bigint { return this.core.offeredFeatures(this.state); }
  get negotiatedFeatures(): bigint { return this.core.negotiatedFeatures(this.state); }
  /** What the backend expects in front of each frame. */
  get backendKind(): BackendKind { return this.core.getOption(this.state, DeviceOption.BACKEND); }
  /** virtio_net_hdr size in use (10 or 12). */
  get headerLength(): number { return this.core.hdrLen(this.state); }

  /** The driver writes its features (before FEATURES_OK). */
  setDriverFeatures(features: bigint): boolean {
    return this.locked(() => this.core.setDriverFeatures(this.state, features)) === Code.OK;
  }

  /** The driver writes the status register; returns the status as the driver reads it back. */
  setStatus(value: number): number {
    return this.locked(() => {
      const s = this.core.setStatus(this.state, value);
      this.dispatchEvents();
      return s;
    });
  }

  /** Reads config space (`size` 1, 2 or 4 bytes at `offset`). */
  readConfig(offset: number, size: 1 | 2 | 4): number {
    return this.core.configRead(this.state, offset, size) >>> 0;
  }

  /** Sets the link state; a config-change notification follows if the driver can see it. */
  setLinkUp(up: boolean): void {
    this.locked(() => {
      this.core.setOption(this.state, DeviceOption.LINK_UP, up ? 1 : 0);
      this.dispatchEvents();
    });
  }

  /** Sets a queue's size and ring addresses (guest-physical). */
  configureQueue(q: QueueIndex, size: number, desc: bigint, avail: bigint, used: bigint): number {
    return this.locked(() => {
      const r = this.core.queueSetSize(this.state, q, size);
      if (r !== Code.OK) return r;
      return this.core.queueSetAddrs(this.state, q, desc, avail, used);
    });
  }

  /** Enables (checking the ring addresses) or disables a queue. */
  enableQueue(q: QueueIndex, on: boolean): number {
    return this.locked(() => {
      const r = this.core.queueEnable(this.state, q, on ? 1 : 0);
      this.dispatchEvents();
      return r;
    });
  }

  /**
   * Takes over a negotiation a front-end already finished with the guest (vhost-user's
   * SET_FEATURES and SET_VRING_*, an emulator's own registers): resets the device, then
   * replays status ACKNOWLEDGE|DRIVER, the features, FEATURES_OK and, if `queues` are given,
   * each queue's size, addresses and resume index, and DRIVER_OK (virtio 1.2, 3.1.1).
   * Throws a DeviceError naming what was refused; the device is then left reset. The data path
   * must be stopped meanwhile (each step takes the device lock on its own).
   */
  adopt(state: AdoptedState): void {
    this.setStatus(0);
    this.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    this.setDriverFeatures(state.features);
    if ((this.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK) & Status.FEATURES_OK) === 0) {
      this.setStatus(0);
      throw new DeviceError("features-refused",
        `features 0x${state.features.toString(16)} refused (offered 0x${this.offeredFeatures.toString(16)})`);
    }
    if (!state.queues) return;
    for (const [q, r] of state.queues.entries() as IterableIterator<[QueueIndex, AdoptedQueue]>) {
      const why = this.configureQueue(q, r.size, r.desc, r.avail, r.used) !== Code.OK ? `bad size ${r.size}`
        // Without a resume index the ring starts fresh (split: index 0; packed: position 0, lap 1).
        : r.nextAvail !== undefined && this.setNextAvail(q, r.nextAvail) !== Code.OK ? "resume index refused"
        : this.enableQueue(q, true) !== Code.OK ? "rings are not in guest memory" : "";
      if (why) {
        this.setStatus(0);
        throw new DeviceError("queue-refused", `queue ${q}: ${why}`);
      }
    }
    this.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  }

  /**
   * Dirty logging for a migration: from now on every guest page the device writes is marked in
   * the bitmap of `bytes` at Wasm address `at` (1 bit per 4 KiB page; 0 bytes: off). Under the
   * device lock, so a data path in a Worker switches between frames.
   */
  setDirtyLog(at: number, bytes: number): void {
    if (this.locked(() => this.core.setDirtyLog(this.state, at, bytes)) !== Code.OK) {
      throw new DeviceError("invalid-option", `dirty log of ${bytes} bytes at ${at} is not in the memory`);
    }
  }

  // ───────────────────────────── saved state ─────────────────────────────

  /**
   * The device's state as bytes (versioned; host/device/saved-state.ts): the offer, the
   * negotiated features and status, each queue's size, ring addresses and where to resume (RX
   * buffers the device holds go back to the guest's ring in the count), and the core's record
   * (receive filter, MAC, announce, queue pairs, guest offloads, link, counters). Guest RAM is
   * not in it: the emulator saves that. Take it with the data path quiet.
   */
  saveState(): Uint8Array {
    return this.locked(() => {
      const c = this.core;
      const st = this.state;
      const queues: SavedQueue[] = [QueueIndex.RX, QueueIndex.TX, QueueIndex.CTRL].map((q) => ({
        size: c.queueSize(st, q), enabled: c.queueEnabled(st, q) !== 0, desc: c.queueAddress(st, q, 0),
        avail: c.queueAddress(st, q, 1), used: c.queueAddress(st, q, 2), resume: c.queueNextAvail(st, q) >>> 0,
      }));
      const at = c.saveExtras(st);
      this.views();
      const record = this.u8.slice(at, at + c.savedSize());
      return encodeSavedState({
        layout: c.layoutVersion(), status: c.status(st), offered: c.offeredFeatures(st), negotiated: c.negotiatedFeatures(st),
        queues, core: record,
      });
    });
  }

  /**
   * A device made from a saved state (`saveState()`) on `opts` (the memory with the guest's RAM
   * restored in it, a state block, the regions): the negotiation and the rings are replayed
   * where they stood, then the rest. Throws SavedStateError for bytes that are not a saved state
   * of this format, one from a core of another layout, or one that does not match the memory
   * (rings outside the guest RAM given); the state block is left reset then.
   */
  static restore(opts: DeviceOptions, saved: Uint8Array): VirtioNetDevice {
    const dev = new VirtioNetDevice(opts);
    dev.restoreState(saved);
    return dev;
  }

  /**
   * restore() on this device: its state block starts over from `saved` (an emulator restoring
   * a snapshot into the device it already made). Same refusals; the device is left reset then.
   */
  restoreState(saved: Uint8Array): void {
    const s = decodeSavedState(saved);
    const layout = this.core.layoutVersion();
    if (s.layout !== layout) throw new SavedStateError(`saved device state is from core layout ${s.layout}; this core is layout ${layout}`);
    this.setStatus(0);
    if (this.core.setOfferedFeatures(this.state, s.offered) !== Code.OK) {
      throw new SavedStateError(`saved device state offers features 0x${s.offered.toString(16)} this core does not implement`);
    }
    if ((s.status & Status.FEATURES_OK) === 0) return;
    const [rx, tx, ctrl] = s.queues;
    const ready = (q: SavedQueue | undefined): q is SavedQueue => q !== undefined && q.enabled && q.size > 0;
    const asAdopted = (q: SavedQueue): AdoptedQueue => ({ size: q.size, desc: q.desc, avail: q.avail, used: q.used, nextAvail: q.resume });
    const running = (s.status & Status.DRIVER_OK) !== 0 && ready(rx) && ready(tx);
    try {
      this.adopt({
        features: s.negotiated,
        ...(running ? { queues: ready(ctrl) ? [asAdopted(rx), asAdopted(tx), asAdopted(ctrl)] : [asAdopted(rx), asAdopted(tx)] } : {}),
      });
    } catch (e) {
      this.setStatus(0);
      throw new SavedStateError(`saved device state does not match this memory: ${(e as Error).message}`);
    }
    // The core's record goes through its staging area, where restoreExtras checks it before use.
    const fits = s.core.length === this.core.savedSize();
    if (fits) {
      this.views();
      this.u8.set(s.core, this.core.rxStagingAddr(this.state));
    }
    if (!fits || this.core.restoreExtras(this.state) !== Code.OK) {
      this.setStatus(0);
      throw new SavedStateError("saved device state: the core's record is damaged or does not fit this device (filter, queue pairs or offloads)");
    }
  }

  /** Next available index the device will consume (vhost-user GET/SET_VRING_BASE). */
  nextAvail(q: QueueIndex): number { return this.locked(() => this.core.queueNextAvail(this.state, q)) >>> 0; }
  setNextAvail(q: QueueIndex, idx: number): number { return this.locked(() => this.core.queueSetNextAvail(this.state, q, idx)); }

  /**
   * Host polling of queue `q`. On: the driver is told not to notify, and stays told when the
   * ring runs dry, while the host keeps looking by itself (vhost's busy polling). Off:
   * notifications are asked for again and the ring is looked at once more; returns true if work
   * is already there, which the host must take before it sleeps (virtio 1.2, 2.7.10).
   */
  setPolling(q: QueueIndex, on: boolean): boolean {
    return this.locked(() => this.core.queueSetPolling(this.state, q, on ? 1 : 0)) === 1;
  }

  /**
   * Sets the forwarding table forwardTx() uses (at most Forward.TABLE_MAX entries; an empty
   * table turns forwarding off). Throws DeviceError for a state block that is not a VNET_HDR
   * device in this memory.
   */
  setForwardTable(entries: readonly ForwardEntry[]): void {
    if (entries.length > Forward.TABLE_MAX) throw new DeviceError("invalid-option", `forwarding table holds at most ${Forward.TABLE_MAX} entries`);
    entries.forEach((e, i) => {
      if (this.core.forwardSet(this.state, i, e.mac, e.state) !== Code.OK) {
        throw new DeviceError("invalid-option", `forwarding entry ${i}: no VNET_HDR device state block at ${e.state}`);
      }
    });
    this.core.forwardSetCount(this.state, entries.length);
  }

  /**
   * Moves up to `budget` frames from the TX ring straight into the RX buffers of the devices the
   * forwarding table names (one copy, in the core), and publishes the TX completions. Stops at
   * the first frame the host must handle itself ("host": left on the ring for processTx).
   * `touched` has bit i set for each table entry whose device received frames: flushRx() those.
   */
  forwardTx(budget = 256): { frames: number; stop: ForwardStop; touched: number } {
    const r = this.core.txForward(this.state, budget);
    if (this.core.txFlush(this.state)) this.hooks.interrupt?.(QueueIndex.TX);
    this.dispatchEvents();
    return { frames: r & ((1 << Forward.SHIFT) - 1), stop: FORWARD_STOPS[r >>> Forward.SHIFT], touched: this.core.forwardTouched(this.state) >>> 0 };
  }

  /** Counters of queue `q`. */
  metrics(q: QueueIndex): QueueMetrics {
    return readMetrics(this.memory, this.core.metricsPtr(this.state, q));
  }

  /** Delivers pending core events to the hooks. */
  dispatchEvents(): void {
    const e = this.core.takeEvents(this.state);
    if (e === 0) return;
    if (e & DeviceEvent.RESET) this.hooks.reset?.();
    if (e & DeviceEvent.NEGOTIATED) this.hooks.negotiated?.(this.negotiatedFeatures);
    if (e & DeviceEvent.NEEDS_RESET) this.hooks.needsReset?.();
    if (e & DeviceEvent.CONFIG_CHANGED) this.hooks.configChanged?.();
    if (e & DeviceEvent.OFFLOADS_CHANGED) this.hooks.offloadsChanged?.(this.rxFeatures);
    if (e & DeviceEvent.QUEUE_PAIRS_CHANGED) this.hooks.queuePairsChanged?.(this.core.queuePairs(this.state));
    if (e & DeviceEvent.MAC_CHANGED) this.hooks.macChanged?.(this.mac);
  }

  // ───────────────────────────── control queue (VIRTIO_NET_F_CTRL_VQ) ─────────────────────────────

  /**
   * Answers the control commands the driver queued (the control queue's notification) and
   * raises the interrupt hook for QueueIndex.CTRL if the driver wants one. Returns the number
   * answered, or a negative Code (NOT_READY, BROKEN).
   */
  processCtrl(budget = 64): number {
    return this.locked(() => {
      const r = this.core.ctrlProcess(this.state, budget);
      if (this.core.ctrlFlush(this.state)) this.hooks.interrupt?.(QueueIndex.CTRL);
      this.dispatchEvents();
      return r;
    });
  }

  /**
   * Asks the guest to announce itself (gratuitous ARP / unsolicited NA), as after a migration
   * (VIRTIO_NET_F_GUEST_ANNOUNCE): a config change with VIRTIO_NET_S_ANNOUNCE set, until the
   * driver acks. False if the guest did not negotiate it or is not running.
   */
  announce(): boolean {
    return this.locked(() => {
      const ok = this.core.announce(this.state) === Code.OK;
      this.dispatchEvents();
      return ok;
    });
  }

  /** The receive filter's mode (RxMode bits: PROMISC until the driver says otherwise). */
  get rxMode(): number { return this.core.rxMode(this.state); }

  /** The device's MAC as the driver last set it (or as configured). */
  get mac(): string {
    const v = this.core.mac(this.state);
    return Array.from({ length: 6 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, "0")).join(":");
  }

  /** Queue pairs the driver uses (CTRL_MQ VQ_PAIRS_SET; 1 until then). */
  get queuePairs(): number { return this.core.queuePairs(this.state); }

  /** The negotiated features with the GUEST_* offloads as in effect now (CTRL_GUEST_OFFLOADS). */
  get rxFeatures(): bigint {
    return (this.negotiatedFeatures & ~GUEST_OFFLOADS) | this.core.guestOffloads(this.state);
  }

  // ──────────────────────────────────── data path ──────────────────────────────────────

  private views(): void {
    if (this.u8.buffer !== this.memory.buffer || this.u8.byteLength !== this.memory.buffer.byteLength) {
      this.u8 = new Uint8Array(this.memory.buffer);
      this.dv = new DataView(this.memory.buffer);
    }
  }

  /**
   * Drains the TX ring: for each frame the core makes ready, calls `send(iovAddr, iovCount)`
   * with the Wasm address of an iovec array ({u64 base, u64 len}, bases native if a
   * nativeBase was given) that a native backend passes straight to writev. `send` returns a
   * byte count (>= 0), Code.RETRY to stop and keep the frame for later (backpressure), or
   * another negative value for failure (the frame is dropped and counted). Publishes all completions with one
   * used-index store and raises the interrupt hook if the guest wants one.
   * Returns the number of frames sent, or a negative Code if the queue is broken.
   */
  processTx(send: (iovAddr: number, iovCount: number) => number, budget = Infinity): number {
    const c = this.core;
    const st = this.state;
    let frames = 0;
    let result = 0;
    while (frames < budget) {
      const n = c.txNext(st);
      if (n <= 0) {
        if (n < 0 && n !== Code.NOT_READY) result = n;
        break;
      }
      const sent = send(c.txIov(st), n);
      c.txDone(st, sent);
      if (sent === Code.RETRY) break;
      frames++;
    }
    if (c.txFlush(st)) this.hooks.interrupt?.(QueueIndex.TX);
    this.dispatchEvents();
    return result < 0 ? result : frames;
  }

  /**
   * Copies the frames of the TX ring out as byte arrays (header removed and translated into
   * `header`, if the backend kind has one). For JS backends and tests; native backends use
   * processTx with writev. `accept(bytes)` may refuse a frame (a rate limit): it then stays on
   * the ring and collecting stops.
   */
  collectTx(budget = Infinity, accept?: (frameBytes: number) => boolean): { header: Uint8Array; frame: Uint8Array }[] {
    const out: { header: Uint8Array; frame: Uint8Array }[] = [];
    const hasHeader = this.core.getOption(this.state, DeviceOption.BACKEND) !== BackendKind.PLAIN;
    this.processTx((iov, n) => {
      const parts = this.iovecs(iov, n);
      const body = hasHeader ? parts.slice(1) : parts;
      const bytes = body.reduce((a, p) => a + p.len, 0);
      if (accept && !accept(bytes)) return Code.RETRY;
      const header = hasHeader ? this.u8.slice(parts[0].addr, parts[0].addr + parts[0].len) : new Uint8Array(0);
      const frame = new Uint8Array(bytes);
      let at = 0;
      for (const p of body) {
        frame.set(this.u8.subarray(p.addr, p.addr + p.len), at);
        at += p.len;
      }
      out.push({ header, frame });
      return frame.length;
    }, budget);
    return out;
  }

  /**
   * Wasm address of the iovec at `e`: its base is a native address (Wasm address + nativeBase);
   * both fit in 2^53, so two u32 loads do without BigInt.
   */
  private iovAddr(e: number): number {
    return this.dv.getUint32(e, true) + this.dv.getUint32(e + 4, true) * 0x1_0000_0000 - this.nativeBase;
  }

  /** Length of the iovec at `e` (frames are far below 2^32). */
  private iovLen(e: number): number {
    return this.dv.getUint32(e + 8, true);
  }

  /** Reads `n` iovecs at `iov` as Wasm addresses and lengths. */
  iovecs(iov: number, n: number): { addr: number; len: number }[] {
    this.views();
    const out: { addr: number; len: number }[] = [];
    for (let i = 0; i < n; i++) out.push({ addr: this.iovAddr(iov + 16 * i), len: this.iovLen(iov + 16 * i) });
    return out;
  }

  // ─── RX for backends that read straight into guest buffers (readv, a socket) ───

  /**
   * Takes guest RX buffers for the next frame: returns the number of iovecs at `rxIovecs()`
   * ({u64 base, u64 len}, bases native when a nativeBase was given) for the backend to read
   * into, the backend's header first as the backend kind defines it; 0 when the guest has
   * posted too little (its notifications are re-enabled: wait for its RX kick); or a negative
   * Code (queue not ready or broken). `bytes` is the frame's size with header when known
   * (0: the largest frame the guest may be sent). Finish with rxCommit() or rxAbort().
   */
  rxNext(bytes = 0): number {
    return bytes === 0 ? this.core.rxNext(this.state) : this.core.rxNextFor(this.state, bytes);
  }

  /** Wasm address of the iovec array rxNext() prepared. */
  rxIovecs(): number { return this.core.rxIov(this.state); }

  /** Bytes the buffers rxNext() took can hold (the guest's header included). */
  rxCapacity(): number { return this.core.rxCapacity(this.state); }

  /**
   * The backend wrote `nread` bytes (its header included) into the rxNext() iovecs: the frame
   * goes to the guest (header translated, checksums or segmentation finished where the guest
   * needs it). Returns the frame length delivered, or -(Metric) when dropped (the buffers stay
   * with the device). Call flushRx() after a batch.
   */
  rxCommit(nread: number): number { return this.core.rxCommit(this.state, nread); }

  /** The backend had nothing for the rxNext() buffers; they stay with the device. */
  rxAbort(): void { this.core.rxAbort(this.state); }

  /**
   * Hands one frame to the guest, with `header` in front as the backend kind defines it
   * (virtio_net_hdr for VNET_HDR, tun_hdr for TUN_HDR, nothing for PLAIN). Copies once,
   * straight into the guest's posted buffers. Call flushRx() after a batch.
   */
  receive(frame: Uint8Array, header?: Uint8Array): ReceiveResult {
    const c = this.core;
    const st = this.state;
    const hdrLen = header ? header.length : 0;
    const total = hdrLen + frame.length;
    if (header && hdrLen >= 10 && header[1] !== NetHdr.GSO_NONE && !this.guestTakesGso(header[1])) {
      return this.receiveSegmented(frame, header);
    }
    const n = c.rxNextFor(st, total);
    if (n === 0) return { kind: "no-buffer" };
    if (n < 0) return { kind: "not-ready", code: n };
    this.views();
    const u8 = this.u8;
    const iov = c.rxIov(st);
    let room = 0;
    for (let i = 0; i < n; i++) room += this.iovLen(iov + 16 * i);
    if (total > room) {
      // Too big for this buffer: the core counts DROP_BUFFER_TOO_SMALL and keeps the buffer.
      return { kind: "dropped", reason: -c.rxCommit(st, total) };
    }
    let src = 0;
    for (let i = 0; i < n && src < total; i++) {
      const e = iov + 16 * i;
      let addr = this.iovAddr(e);
      let len = Math.min(this.iovLen(e), total - src);
      this.written?.(addr, len);
      if (src < hdrLen) {
        const take = Math.min(len, hdrLen - src);
        u8.set(take === hdrLen && src === 0 ? header! : header!.subarray(src, src + take), addr);
        src += take;
        addr += take;
        len -= take;
      }
      if (len > 0) {
        const off = src - hdrLen;
        u8.set(off === 0 && len === frame.length ? frame : frame.subarray(off, off + len), addr);
        src += len;
      }
    }
    const r = c.rxCommit(st, total);
    return r >= 0 ? { kind: "delivered", length: r } : { kind: "dropped", reason: -r };
  }

  /** Whether the guest negotiated taking GSO frames of this virtio_net_hdr gso_type whole. */
  private guestTakesGso(gsoType: number): boolean {
    const f = this.rxFeatures;
    const has = (b: Feature) => hasFeature(f, b);
    if (!has(Feature.GUEST_CSUM)) return false;
    if ((gsoType & NetHdr.GSO_ECN) !== 0 && !has(Feature.GUEST_ECN)) return false;
    switch (gsoType & ~NetHdr.GSO_ECN) {
      case NetHdr.GSO_TCPV4: return has(Feature.GUEST_TSO4);
      case NetHdr.GSO_TCPV6: return has(Feature.GUEST_TSO6);
      // Which USO bit applies depends on the IP version; the core segments when unsure.
      case NetHdr.GSO_UDP_L4: return has(Feature.GUEST_USO4) && has(Feature.GUEST_USO6);
      default: return false;
    }
  }

  /**
   * A GSO frame for a guest that cannot take it whole: copied once into the core's staging
   * area and segmented there, straight into the guest's buffers.
   */
  private receiveSegmented(frame: Uint8Array, header: Uint8Array): ReceiveResult {
    const c = this.core;
    const st = this.state;
    if (frame.length + 12 > c.rxStagingSize()) return { kind: "dropped", reason: Metric.DROP_OVERSIZE };
    this.views();
    const at = c.rxStagingAddr(st);
    this.u8.fill(0, at, at + 12);
    this.u8.set(header.subarray(0, 12), at);
    this.u8.set(frame, at + 12);
    // The core checks the queue and waits (0) until the guest has posted room for every segment.
    const r = c.rxSegmentStaged(st, frame.length);
    if (r > 0) return { kind: "delivered", length: frame.length };
    if (r === 0) return { kind: "no-buffer" };
    return r === Code.NOT_READY || r === Code.BROKEN ? { kind: "not-ready", code: r } : { kind: "dropped", reason: -r };
  }

  /** Publishes received buffers; raises the interrupt hook if the guest wants one. */
  flushRx(): boolean {
    const due = this.core.rxFlush(this.state) === 1;
    if (due) this.hooks.interrupt?.(QueueIndex.RX);
    this.dispatchEvents();
    return due;
  }
}
