/**
 * Attaches the engine to v86's virtio-net device (npm `v86`, pinned to 0.5.462): v86 keeps
 * its PCI function and register file (the guest's driver talks to it as usual), and this
 * adapter takes the data path over. The core is instantiated on v86's own WebAssembly.Memory,
 * its state block allocated there with v86's `v86_malloc`, and it works on the guest's rings
 * in place. v86's queue notifications are redirected here, so no frame passes through v86's
 * own virtio-net code; interrupts go back through v86's IRQ path (`raise_irq`), and every
 * range the device writes in guest RAM is reported to v86's `jit_dirty_cache`.
 *
 * v86 offers MAC, STATUS, CTRL_VQ, MQ and VERSION_1 only. The adapter replaces that offer with
 * CSUM, GUEST_CSUM, segmentation offloads both ways, MRG_RXBUF, EVENT_IDX and INDIRECT_DESC
 * (plus MAC, STATUS, VERSION_1) and the control queue with what it carries (receive filter,
 * MAC, VLAN filter, announce, guest offloads; core: net/ctrl.ts), whose notifications are
 * taken over too, so v86's control-queue code is not used either. v86 keeps the config space:
 * the adapter mirrors the MAC and the announce bit into it.
 *
 * The internals used here are not in v86.d.ts; the shapes below are those of v86 0.5.462.
 */
import { Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { BackendKind, DeviceError, VirtioNetDevice } from "../device/virtio-net.js";
import { CTRL_OFFER, featureMask, FULL_OFFER, hasFeature } from "../device/features.js";
import { DevicePort } from "../net/device-port.js";
import { parseMac } from "../net/gateway/wire.js";
import type { Switch } from "../net/switch.js";

/** v86's VirtIO object for the network card (src/virtio.js). */
/** One of v86's virtqueues as its driver programmed it. */
export interface V86Queue { size: number; enabled: boolean; desc_addr: number; avail_addr: number; used_addr: number }

export interface V86Virtio {
  device_feature: Uint32Array;
  driver_feature: Uint32Array;
  device_status: number;
  queues: V86Queue[];
  pci_space: ArrayLike<number>;
  raise_irq(type: number): void;
  notify_config_changes?(): void;
  /** Called by v86 when the driver writes status 0 (a device reset). */
  reset?(): void;
}

/** v86's VirtioNet object (src/virtio_net.js): its register file, config fields and snapshot hooks. */
export interface V86VirtioNetDevice {
  virtio: V86Virtio;
  mac?: Uint8Array;
  status?: number;
  /** v86's snapshot of the device (save_state), and its restore. */
  get_state?(): unknown[];
  set_state?(state: unknown[]): void;
}

/** What the adapter touches of a V86 instance. */
export interface V86Like {
  v86: {
    cpu: {
      mem8: Uint8Array;
      io: { ports: { write16: (v: number) => void; write8: (v: number) => void }[] };
      devices: { virtio_net?: V86VirtioNetDevice };
    };
  };
}

/** Exports of v86's wasm module the adapter needs (captured through the `wasm_fn` option). */
export interface V86WasmExports {
  memory: WebAssembly.Memory;
  v86_malloc(size: number): number;
  jit_dirty_cache(start: number, end: number): void;
}

/**
 * A `wasm_fn` for the V86 constructor that instantiates v86's module from `bytes` and keeps
 * its exports for the adapter: `new V86({ ..., wasm_fn: hook.wasm_fn })`, then
 * `await hook.exports` once the emulator is loaded.
 */
export function captureV86Exports(bytes: BufferSource): { wasm_fn: (imports: WebAssembly.Imports) => Promise<WebAssembly.Exports>; exports: Promise<V86WasmExports> } {
  let resolve!: (e: V86WasmExports) => void;
  const exports = new Promise<V86WasmExports>((r) => { resolve = r; });
  return {
    wasm_fn: async (imports) => {
      const { instance } = await WebAssembly.instantiate(bytes, imports);
      resolve(instance.exports as unknown as V86WasmExports);
      return instance.exports;
    },
    exports,
  };
}

/** Where the adapter's saved state rides in v86's snapshot of the NIC (after v86's own three fields). */
const SNAPSHOT_SLOT = 3;
/** VIRTIO_ISR_QUEUE in v86's raise_irq. */
const ISR_QUEUE = 1;
/** Guest RAM skipped: the VGA window and the BIOS area (0xA0000-0xFFFFF). */
const LOW_RAM_END = 0xa0000;
const HIGH_RAM_START = 0x100000;

export interface V86NetOptions {
  /** Features to offer (default FULL_OFFER and CTRL_OFFER, without MTU, which v86's config space lacks). */
  features?: bigint;
  /** Switch to attach the device to (the embedded network's, typically). */
  network: Switch;
  /** Port name on the switch. */
  name?: string;
}

/**
 * The I/O ports of v86's virtio-net queue notifications (RX, TX, control), from its PCI
 * capability list (VIRTIO_PCI_CAP_NOTIFY_CFG: BAR, offset and notify_off_multiplier; virtio
 * 1.2, 4.1.4.4); v86's notify_off of queue q is q.
 */
export function v86NotifyPorts(virtio: V86Virtio): number[] {
  const ps = virtio.pci_space;
  const u32 = (at: number) => (ps[at] | (ps[at + 1] << 8) | (ps[at + 2] << 16) | (ps[at + 3] << 24)) >>> 0;
  for (let at = ps[0x34], n = 0; at && n < 48; at = ps[at + 1], n++) {
    if (ps[at] === 0x09 && ps[at + 3] === 2) {
      const bar = u32(0x10 + 4 * ps[at + 4]) & ~3;
      const base = bar + u32(at + 8);
      const multiplier = u32(at + 16);
      return [QueueIndex.RX, QueueIndex.TX, QueueIndex.CTRL].map((q) => base + q * multiplier);
    }
  }
  throw new Error("v86 virtio-net has no notify capability");
}

export class V86VirtioNet {
  readonly dev: VirtioNetDevice;
  readonly port: DevicePort;
  /** Notifications handled here, per queue, how often the core was brought in line with v86's registers, and driver resets seen. */
  readonly counters = { notifications: [0, 0, 0], syncs: 0, resets: 0 };
  /** Device-side time spent in the adapter's notification handlers, ms. */
  deviceMs = 0;
  private readonly virtio: V86Virtio;
  private readonly base: number;
  private synced = "";

  constructor(private readonly emulator: V86Like, private readonly wasm: V86WasmExports, opts: V86NetOptions) {
    const cpu = emulator.v86.cpu;
    const net = cpu.devices.virtio_net;
    if (!net) throw new Error("v86 has no virtio-net device: create it with net_device: { type: \"virtio\" }");
    this.virtio = net.virtio;
    this.base = cpu.mem8.byteOffset;
    const size = cpu.mem8.length;
    const offer = opts.features ?? (FULL_OFFER | CTRL_OFFER) & ~featureMask(Feature.MTU);
    const raw = wasm.v86_malloc(VirtioNetDevice.stateSize() + 16);
    const state = (raw + 15) & ~15;
    const mac = net.mac ? Uint8Array.from(net.mac) : undefined;
    this.dev = new VirtioNetDevice({
      memory: wasm.memory, stateAddress: state, backend: BackendKind.VNET_HDR, features: offer, mac,
      regions: [
        { gpa: 0n, size: LOW_RAM_END, wasm: this.base },
        { gpa: BigInt(HIGH_RAM_START), size: size - HIGH_RAM_START, wasm: this.base + HIGH_RAM_START },
      ],
      hooks: {
        interrupt: (q) => {
          this.dirtyUsed(q);
          this.virtio.raise_irq(ISR_QUEUE);
        },
        configChanged: () => {
          this.mirrorStatus();
          this.virtio.notify_config_changes?.();
        },
        // v86 answers config reads itself: the MAC the driver set goes there too.
        macChanged: () => { if (net.mac) net.mac.set(parseMac(this.dev.mac)); },
      },
      written: (wasmAddr, len) => {
        const gpa = wasmAddr - this.base;
        this.wasm.jit_dirty_cache(gpa, gpa + len);
      },
    });
    // The guest reads v86's feature registers: offer ours there.
    this.virtio.device_feature[0] = Number(offer & 0xffff_ffffn);
    this.virtio.device_feature[1] = Number(offer >> 32n);
    this.port = new DevicePort(opts.name ?? "v86", this.dev, opts.network);
    this.takeOverNotifications();
    this.followResets();
    this.followSnapshots(net);
  }

  /**
   * v86's save_state / restore_state carry this device too: its saved state (saveState) rides
   * in v86's own snapshot of the NIC, and a restore puts it back into this adapter's device,
   * rings resuming where they stood, filter, MAC and counters as they were (v86 restores the
   * guest's RAM and its register file itself).
   */
  private followSnapshots(net: V86VirtioNetDevice): void {
    const get = net.get_state;
    const set = net.set_state;
    if (!get || !set) return;
    net.get_state = () => [...get.call(net), this.dev.saveState()];
    net.set_state = (state) => {
      set.call(net, state);
      const ours = state[SNAPSHOT_SLOT];
      if (!(ours instanceof Uint8Array)) return; // a snapshot taken without the adapter
      this.dev.restoreState(ours);
      // The registers v86 restored are the ones the device now runs on: no re-sync.
      this.synced = this.syncKey() ?? "";
      this.mirrorStatus();
    };
  }

  /** Replaces v86's notify handlers for RX and TX (the port entries move with the BAR). */
  private takeOverNotifications(): void {
    const ports = this.emulator.v86.cpu.io.ports;
    for (const p of v86NotifyPorts(this.virtio)) {
      const entry = ports[p];
      const handler = (v: number) => this.notify(v & 0xffff);
      entry.write16 = handler;
      entry.write8 = handler;
    }
  }

  /**
   * A driver reset (status 0) must reach the core even when the driver then lays out its rings
   * at the very addresses it used before (a reloaded driver often gets the same memory back):
   * the core's ring indices start over only through a sync, which the ring addresses alone
   * would not trigger.
   */
  private followResets(): void {
    const v = this.virtio;
    const reset = v.reset;
    if (!reset) return;
    v.reset = () => {
      this.counters.resets++;
      this.synced = "";
      this.dev.setStatus(0);
      reset.call(v);
    };
  }

  /** The guest notified queue `q` (RX: buffers posted; TX: frames queued; control: commands). */
  private notify(q: number): void {
    const t0 = performance.now();
    if (q <= QueueIndex.CTRL && this.sync()) {
      this.counters.notifications[q]++;
      if (q === QueueIndex.TX) this.port.pumpTx();
      else if (q === QueueIndex.RX) this.port.pumpRx();
      else {
        this.dev.processCtrl();
        this.mirrorStatus();
      }
    }
    this.deviceMs += performance.now() - t0;
  }

  /**
   * Asks the guest to announce itself (VIRTIO_NET_F_GUEST_ANNOUNCE: it sends gratuitous ARPs
   * and acks), as after a restore or a move. False if the guest did not negotiate it.
   */
  announce(): boolean {
    return this.sync() && this.dev.announce();
  }

  /** v86's config-space status follows the device's (link, and the announce bit until acked). */
  private mirrorStatus(): void {
    const net = this.emulator.v86.cpu.devices.virtio_net!;
    if (net.status !== undefined) net.status = this.dev.readConfig(6, 2);
  }

  /**
   * Brings the core in line with what the driver programmed into v86's registers: features,
   * ring addresses and sizes, DRIVER_OK. Done again whenever they change (a driver reset).
   */
  private sync(): boolean {
    const v = this.virtio;
    const key = this.syncKey();
    if (key === null) return false;
    if (key === this.synced) return true;
    const f = this.driverFeatures;
    const [rx, tx, ctrl] = v.queues;
    const withCtrl = this.withCtrl;
    const queue = (q: V86Queue) => ({ size: q.size, desc: BigInt(q.desc_addr), avail: BigInt(q.avail_addr), used: BigInt(q.used_addr) });
    try {
      this.dev.adopt({ features: f, queues: withCtrl ? [queue(rx), queue(tx), queue(ctrl)] : [queue(rx), queue(tx)] });
    } catch (e) {
      if (e instanceof DeviceError) return false;
      throw e;
    }
    this.synced = key;
    this.counters.syncs++;
    return true;
  }

  private get driverFeatures(): bigint {
    const v = this.virtio;
    return BigInt(v.driver_feature[0] >>> 0) | (BigInt(v.driver_feature[1] >>> 0) << 32n);
  }

  /** The control queue takes part once the driver negotiated it (and set it up). */
  private get withCtrl(): boolean {
    const ctrl = this.virtio.queues[QueueIndex.CTRL];
    return hasFeature(this.driverFeatures, Feature.CTRL_VQ) && ctrl !== undefined && ctrl.size > 0;
  }

  /** What the driver programmed (features, rings), as a key; null before DRIVER_OK. */
  private syncKey(): string | null {
    const v = this.virtio;
    if ((v.device_status & Status.DRIVER_OK) === 0) return null;
    const rings = v.queues.slice(0, this.withCtrl ? 3 : 2);
    return [this.driverFeatures, ...rings.flatMap((q) => [q.desc_addr, q.avail_addr, q.used_addr, q.size])].join(":");
  }

  /** The used ring (and avail_event behind it) was written: tell v86's JIT. */
  private dirtyUsed(q: number): void {
    const r = this.virtio.queues[q];
    if (r) this.wasm.jit_dirty_cache(r.used_addr, r.used_addr + 6 + 8 * r.size);
  }
}
