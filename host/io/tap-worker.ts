/**
 * Runs a device's data path in a Worker (tap-worker-entry.ts) so the main thread never blocks
 * on I/O: the Worker sits in epoll_wait on the tap, the queue kick eventfds and a stop eventfd,
 * sharing the guest memory (a shared WebAssembly.Memory). The main thread keeps the control
 * side (the transport and TUNSETOFFLOAD) and serialises it with the Worker through a
 * DeviceLock. Interrupts reach the host as a callback, or as eventfd writes (vhost-user).
 *
 * Node cannot stop a Worker blocked in a foreign call, so stop() always wakes it through the
 * stop eventfd first and waits for it to leave.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { QueueIndex } from "../../assembly/abi.js";
import type { LinuxTap } from "../backends/tap-linux.js";
import type { VirtioNetDevice } from "../device/virtio-net.js";
import * as libc from "../runtime/libc.js";

/** What the Worker is started with. */
export interface TapWorkerData {
  memory: WebAssembly.Memory;
  stateAddress: number;
  lockAddress: number;
  nativeBase: bigint;
  tapFd: number;
  tapName: string;
  vnetHdr: boolean;
  /** Eventfds the guest's notifications arrive on, indexed by queue. */
  kickFds: [number, number];
  stopFd: number;
  /** Eventfds to signal interrupts on (vhost-user call fds); without them, messages. */
  callFds?: [number, number];
  /** Keep looking at the rings this many µs after the last frame moved before sleeping (0: never). */
  pollUs?: number;
  /** Frames per pump (TapPort.budget). */
  budget?: number;
}

/** Messages from the Worker. */
export type TapWorkerMessage =
  | { kind: "ready" }
  | { kind: "interrupt"; queue: QueueIndex }
  | { kind: "config-changed" }
  | { kind: "needs-reset" }
  | { kind: "tap-error"; message: string }
  | { kind: "stopped" };

export interface TapWorkerOptions {
  /** The main thread's device (created with the same `lock`). */
  dev: VirtioNetDevice;
  /** Wasm address of the DeviceLock word the device was created with. */
  lockAddress: number;
  tap: LinuxTap;
  nativeBase: bigint;
  /** Kick eventfds to wait on (vhost-user passes the front-end's); default: new ones. */
  kickFds?: [number, number];
  callFds?: [number, number];
  /** Busy-poll window after work, µs (default 0: sleep as soon as the rings are drained). */
  pollUs?: number;
  /** Frames per pump before the other direction gets its turn (default 256). */
  budget?: number;
  onMessage?: (m: TapWorkerMessage) => void;
}

function entryPath(): string {
  // From source (host/io/) the bundle is in dist/io/; from the bundle (dist/) it is ./io/.
  for (const rel of ["./io/tap-worker-entry.js", "../../dist/io/tap-worker-entry.js"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('tap worker bundle not found: run "npm run build"');
}

export class TapWorker {
  private constructor(
    readonly kickFds: [number, number],
    private readonly ownKickFds: boolean,
    private readonly stopFd: number,
    private readonly exited: Promise<void>,
  ) {}

  /** Starts the Worker; resolves once it waits for events. */
  static async start(opts: TapWorkerOptions): Promise<TapWorker> {
    const kickFds = opts.kickFds ?? [libc.eventfd(), libc.eventfd()];
    const stopFd = libc.eventfd();
    const data: TapWorkerData = {
      memory: opts.dev.memory, stateAddress: opts.dev.state, lockAddress: opts.lockAddress, nativeBase: opts.nativeBase,
      tapFd: opts.tap.fd, tapName: opts.tap.name, vnetHdr: opts.tap.vnetHdr, kickFds, stopFd, callFds: opts.callFds, pollUs: opts.pollUs, budget: opts.budget,
    };
    const worker = new Worker(entryPath(), { workerData: data });
    let ready!: () => void;
    const readyP = new Promise<void>((r) => { ready = r; });
    const exited = new Promise<void>((resolve, reject) => {
      worker.on("error", reject);
      worker.on("exit", () => resolve());
    });
    worker.on("message", (m: TapWorkerMessage) => {
      if (m.kind === "ready") ready();
      opts.onMessage?.(m);
    });
    await Promise.race([readyP, exited.then(() => { throw new Error("tap worker exited before it was ready"); })]);
    return new TapWorker(kickFds, opts.kickFds === undefined, stopFd, exited);
  }

  /** A guest notification on queue `q` (for hosts whose transport is in this thread). */
  kick(q: QueueIndex): void {
    libc.eventfdSignal(this.kickFds[q]);
  }

  /** Wakes the Worker, waits for it to leave, closes the fds it was given here. */
  async stop(): Promise<void> {
    libc.eventfdSignal(this.stopFd);
    await this.exited;
    libc.close(this.stopFd);
    if (this.ownKickFds) for (const fd of this.kickFds) libc.close(fd);
  }
}
