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
import type { RateLimit } from "../device/rate-limiter.js";
import type { DataQueue, VirtioNetDevice } from "../device/virtio-net.js";
import * as libc from "../runtime/libc.js";

/** What the Worker is started with (once per device). */
export interface TapWorkerData {
  memory: WebAssembly.Memory;
  stateAddress: number;
  lockAddress: number;
  nativeBase: bigint;
  tapFd: number;
  tapName: string;
  vnetHdr: boolean;
  stopFd: number;
  /** Frames per pump (TapPort.budget). */
  budget?: number;
  /** Rate limits per direction (the Worker builds its own RateLimiters from them). */
  limits?: { tx?: RateLimit; rx?: RateLimit };
}

/** One data-path run: what the guest's notifications arrive on and where interrupts go. */
export interface TapWorkerRun {
  /** Eventfds the guest's notifications arrive on, indexed by queue. */
  kickFds: [number, number];
  /** Eventfds to signal interrupts on (vhost-user call fds); without them, messages. */
  callFds?: [number, number];
  /** Keep looking at the rings this many µs after the last frame moved before sleeping (0: never). */
  pollUs?: number;
}

/** Messages from the Worker. */
export type TapWorkerMessage =
  | { kind: "spawned" }
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
  /** Rate limits per direction: over them the device holds frames back (no drops on TX). */
  limits?: { tx?: RateLimit; rx?: RateLimit };
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

/**
 * A device's data-path thread. One thread serves every run of the device (a front-end's
 * session, a guest's boot): run() starts the loop on that run's fds, pause() ends it, stop()
 * ends the thread.
 */
export class TapWorker {
  private waiters = new Map<TapWorkerMessage["kind"], (() => void)[]>();
  private ownKickFds: [number, number] | null = null;
  private current: TapWorkerRun | null = null;
  private gone = false;

  private constructor(private readonly worker: Worker, private readonly stopFd: number, private readonly exited: Promise<void>) {}

  /** Starts the thread; resolves once it can take runs. */
  static async spawn(opts: Omit<TapWorkerOptions, "kickFds" | "callFds" | "pollUs">): Promise<TapWorker> {
    const stopFd = libc.eventfd();
    const data: TapWorkerData = {
      memory: opts.dev.memory, stateAddress: opts.dev.state, lockAddress: opts.lockAddress, nativeBase: opts.nativeBase,
      tapFd: opts.tap.fd, tapName: opts.tap.name, vnetHdr: opts.tap.vnetHdr, stopFd, budget: opts.budget, limits: opts.limits,
    };
    const worker = new Worker(entryPath(), { workerData: data });
    let tw!: TapWorker;
    const exited = new Promise<void>((resolve) => {
      worker.on("error", () => resolve());
      worker.on("exit", () => resolve());
    });
    tw = new TapWorker(worker, stopFd, exited);
    void exited.then(() => {
      tw.gone = true;
      for (const list of tw.waiters.values()) for (const w of list) w();
      tw.waiters.clear();
    });
    worker.on("message", (m: TapWorkerMessage) => {
      const list = tw.waiters.get(m.kind);
      if (list) {
        tw.waiters.delete(m.kind);
        for (const w of list) w();
      }
      opts.onMessage?.(m);
    });
    await tw.next("spawned");
    if (tw.gone) throw new Error("tap worker exited before it was ready");
    return tw;
  }

  /** spawn() and run() in one. */
  static async start(opts: TapWorkerOptions): Promise<TapWorker> {
    const tw = await TapWorker.spawn(opts);
    await tw.run({ kickFds: opts.kickFds ?? tw.ownKicks(), callFds: opts.callFds, pollUs: opts.pollUs });
    return tw;
  }

  private ownKicks(): [number, number] {
    this.ownKickFds ??= [libc.eventfd(), libc.eventfd()];
    return this.ownKickFds;
  }

  private next(kind: TapWorkerMessage["kind"]): Promise<void> {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(kind) ?? [];
      list.push(resolve);
      this.waiters.set(kind, list);
    });
  }

  /** Starts a run on these fds; resolves once the thread waits for events. */
  async run(r: TapWorkerRun): Promise<void> {
    if (this.current) throw new Error("tap worker is already running");
    if (this.gone) throw new Error("tap worker has exited");
    const ready = this.next("ready");
    this.current = r;
    this.worker.postMessage({ kind: "run", ...r });
    await ready;
    if (this.gone) throw new Error("tap worker exited while starting a run");
  }

  /** The kick eventfds of the current run. */
  get kickFds(): [number, number] {
    if (!this.current) throw new Error("tap worker is not running");
    return this.current.kickFds;
  }

  /** A guest notification on queue `q` (for hosts whose transport is in this thread). */
  kick(q: DataQueue): void {
    libc.eventfdSignal(this.kickFds[q]);
  }

  /** Ends the current run (the thread stays, for the next one). */
  async pause(): Promise<void> {
    if (!this.current) return;
    const stopped = this.next("stopped");
    libc.eventfdSignal(this.stopFd);
    await stopped;
    this.current = null;
  }

  /** Ends the run and the thread; closes the fds it was given here. Node cannot stop a thread inside a foreign call, so the run ends first. */
  async stop(): Promise<void> {
    await this.pause();
    await this.worker.terminate();
    await this.exited;
    libc.close(this.stopFd);
    if (this.ownKickFds) for (const fd of this.ownKickFds) libc.close(fd);
    this.ownKickFds = null;
  }
}
