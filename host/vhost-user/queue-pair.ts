/**
 * One queue pair of a vhost-user virtio-net back-end (rings 2k and 2k + 1): its own device
 * state block, its own lock, the rings' descriptions as the front-end gave them, and its own
 * data path — a Worker on its own tap queue, or a kick loop feeding its switch port — started
 * and stopped on its own, as the front-end enables and disables pairs (VIRTIO_NET_F_MQ: the
 * guest's VQ_PAIRS_SET reaches us as SET_VRING_ENABLE per ring).
 */
import { QueueIndex } from "../../assembly/abi.js";
import type { LinuxTap } from "../backends/tap-linux.js";
import type { RateLimit } from "../device/rate-limiter.js";
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { KickLoop } from "../io/kick-loop.js";
import { TapWorker } from "../io/tap-worker.js";
import type { DevicePort } from "../net/device-port.js";
import type { WasmSpace } from "../memory/wasm-space.js";
import * as libc from "../runtime/libc.js";

/** A ring as the front-end describes it (SET_VRING_*). */
export interface Ring {
  size: number;
  desc: bigint | null;
  avail: bigint | null;
  used: bigint | null;
  base: number;
  /** Where the ring stopped last (GET_VRING_BASE's answer), kept across a reset until it starts or gets a base again. */
  stoppedAt: number | null;
  kickFd: number;
  callFd: number;
  errFd: number;
  enabled: boolean;
}

export function newRing(): Ring {
  return { size: 0, desc: null, avail: null, used: null, base: 0, stoppedAt: null, kickFd: -1, callFd: -1, errFd: -1, enabled: false };
}

/** What a pair's data path runs on: a tap queue (with a Worker), or a switch port (kick loop on this thread). */
export type PairIo = (
  | { kind: "tap"; tap: LinuxTap; nativeBase: bigint; limits?: { tx?: RateLimit; rx?: RateLimit }; onNeedsReset: () => void; onTapError: (m: string) => void }
  | { kind: "switch"; port: DevicePort }
) & {
  /** The data path started (true) or stopped (false): steering follows (tap queue attached, port's pair active). */
  onRunning?: (on: boolean) => void;
};

export class QueuePair {
  rings: [Ring, Ring] = [newRing(), newRing()];
  private worker: TapWorker | null = null;
  private workerRunning = false;
  private kicks: KickLoop | null = null;

  constructor(
    readonly index: number,
    readonly dev: VirtioNetDevice,
    readonly space: WasmSpace,
    readonly stateAddress: number,
    readonly lockAddress: number,
    readonly io: PairIo,
  ) {}

  get running(): boolean { return this.workerRunning || this.kicks !== null; }

  /** Both rings fully described, started (kick and call fds) and enabled. */
  get ready(): boolean {
    return this.rings.every((r) => r.size && r.desc !== null && r.kickFd >= 0 && r.callFd >= 0 && r.enabled);
  }

  /** Starts the data path on the rings as described, with `features` negotiated. */
  async start(features: bigint, pollUs: number): Promise<void> {
    const queue = (r: Ring) => ({ size: r.size, desc: r.desc!, avail: r.avail!, used: r.used!, nextAvail: r.base });
    this.dev.adopt({ features, queues: [queue(this.rings[QueueIndex.RX]), queue(this.rings[QueueIndex.TX])] });
    const kickFds: [number, number] = [this.rings[0].kickFd, this.rings[1].kickFd];
    const io = this.io;
    if (io.kind === "tap") {
      // One data-path thread per pair, kept across sessions and guest reboots.
      this.worker ??= await TapWorker.spawn({
        dev: this.dev, lockAddress: this.lockAddress, tap: io.tap, nativeBase: io.nativeBase, limits: io.limits,
        onMessage: (m) => {
          if (m.kind === "needs-reset") io.onNeedsReset();
          if (m.kind === "tap-error") io.onTapError(m.message);
        },
      });
      await this.worker.run({ kickFds, callFds: [this.rings[0].callFd, this.rings[1].callFd], pollUs });
      this.workerRunning = true;
    } else {
      const port = io.port;
      this.kicks = new KickLoop(kickFds, (q) => (q === QueueIndex.TX ? port.pumpTx() : port.pumpRx()), {
        pollUs,
        setPolling: (on) => [QueueIndex.RX, QueueIndex.TX].map((q) => this.dev.setPolling(q, on)).some(Boolean),
      });
      this.kicks.start();
    }
    for (const r of this.rings) r.stoppedAt = null;
    io.onRunning?.(true);
    // Anything the guest queued before we started: look once.
    libc.eventfdSignal(kickFds[0]);
    libc.eventfdSignal(kickFds[1]);
  }

  /** Stops the data path; the rings' next available indices become their bases. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.io.onRunning?.(false);
    const k = this.kicks;
    this.kicks = null;
    if (this.workerRunning) {
      this.workerRunning = false;
      await this.worker!.pause();
    }
    await k?.stop();
    for (const q of [QueueIndex.RX, QueueIndex.TX] as const) {
      this.rings[q].base = this.rings[q].stoppedAt = this.dev.nextAvail(q);
      this.dev.enableQueue(q, false);
    }
  }

  /**
   * Forgets the rings (device reset): closes their fds; a new start begins at index 0 unless
   * given a base. Where each stopped is kept for GET_VRING_BASE: QEMU stops a device with
   * SET_STATUS 0 and only then asks (a migration carries that index to the destination).
   */
  async resetRings(): Promise<void> {
    await this.stop();
    for (const r of this.rings) for (const fd of [r.kickFd, r.callFd, r.errFd]) libc.closeQuietly(fd);
    const stopped = this.rings.map((r) => r.stoppedAt);
    this.rings = [newRing(), newRing()];
    this.rings.forEach((r, i) => { r.stoppedAt = stopped[i]; });
    this.dev.setStatus(0);
  }

  /** Ends the data-path thread and frees the state block. */
  async close(): Promise<void> {
    await this.resetRings();
    await this.worker?.stop();
    this.worker = null;
    this.space.free(this.stateAddress);
    this.space.free(this.lockAddress);
  }
}
