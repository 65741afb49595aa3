/**
 * Waits on a device's queue kick eventfds (a vhost-user front-end's, or our own) from the JS
 * thread (through the thread's reactor) and calls back per queue. For data paths that live on
 * the main thread (the embedded network); the tap data path uses a Worker instead.
 *
 * With a poll window (`pollUs`), once TX work moved the loop keeps pumping both queues on every
 * turn of the event loop (setImmediate, so sockets and timers still run) with the guest's
 * notifications off, and only when a whole window passes without work turns them back on,
 * looking at the ring once more before it goes back to waiting for kicks.
 */
import { QueueIndex } from "../../assembly/abi.js";
import { PollWindow } from "./poll-window.js";
import type { Ready } from "../runtime/async-epoll.js";
import { EpollLoop } from "../runtime/epoll-loop.js";
import * as libc from "../runtime/libc.js";

export interface KickLoopOptions {
  /** Busy-poll window after TX work, µs (default 0: wait for kicks only). */
  pollUs?: number;
  /** Turns the device's polling on or off (VirtioNetDevice.setPolling on both queues); off returns true if work is already there. */
  setPolling?: (on: boolean) => boolean;
}

export class KickLoop {
  private readonly loop = new EpollLoop((ready) => this.onReady(ready));
  private readonly window: PollWindow;
  private polling = false;

  /** `onKick(q)` handles queue `q` and returns the frames it moved. */
  constructor(private readonly kickFds: [number, number], private readonly onKick: (q: QueueIndex) => number | void, private readonly opts: KickLoopOptions = {}) {
    this.window = new PollWindow(opts.pollUs ?? 0);
    this.loop.poll.add(kickFds[QueueIndex.RX], libc.EPOLLIN, QueueIndex.RX);
    this.loop.poll.add(kickFds[QueueIndex.TX], libc.EPOLLIN, QueueIndex.TX);
  }

  start(): void {
    this.loop.start();
  }

  private get running(): boolean { return this.loop.active; }

  private onReady(ready: Ready[]): void {
    let rx = false;
    let tx = false;
    for (const { token: t } of ready) {
      libc.eventfdDrain(this.kickFds[t]);
      if (t === QueueIndex.RX) rx = true;
      else tx = true;
    }
    // Buffers first, so frames the TX side produces for this guest find them.
    if (rx) this.onKick(QueueIndex.RX);
    if (tx) this.txWork();
  }

  private txWork(): void {
    const moved = this.onKick(QueueIndex.TX) ?? 0;
    if (this.window.us === 0 || !this.running) return;
    if (moved > 0) this.window.progress();
    if (this.polling || moved === 0) return;
    this.polling = true;
    this.opts.setPolling?.(true);
    pollers.add(this);
  }

  /**
   * One polling round of this device (run by the thread's poller with every other polling
   * device's): both queues, since neither notifies while polling. Returns the frames moved, or
   * -1 once the window closed and a last look found nothing (the loop waits for kicks again).
   */
  pollRound(): number {
    if (!this.running) return -1;
    this.onKick(QueueIndex.RX);
    const moved = this.onKick(QueueIndex.TX) ?? 0;
    if (moved > 0) this.window.progress();
    // The window closed: notifications back on, and one more look before sleeping.
    if (!this.window.open()) {
      if (!this.opts.setPolling?.(false)) {
        this.polling = false;
        return -1;
      }
      this.window.progress();
      this.opts.setPolling?.(true);
    }
    return moved;
  }

  async stop(): Promise<void> {
    pollers.delete(this);
    if (this.polling) this.opts.setPolling?.(false);
    this.polling = false;
    await this.loop.stop();
  }
}

/**
 * The thread's polling devices, served together: one event-loop turn polls all of them, and
 * while rounds keep moving frames it runs a few more before yielding (two guests forwarding to
 * each other hand work back and forth within one turn). Sockets and timers still get a turn
 * between batches.
 */
class Poller {
  private readonly members = new Set<KickLoop>();
  private scheduled = false;

  add(k: KickLoop): void {
    this.members.add(k);
    this.schedule();
  }

  delete(k: KickLoop): void {
    this.members.delete(k);
  }

  private schedule(): void {
    if (this.scheduled || this.members.size === 0) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    const until = performance.now() + 0.05;
    for (let i = 0; i < 16; i++) {
      let moved = 0;
      for (const k of this.members) {
        const r = k.pollRound();
        if (r < 0) this.members.delete(k);
        else moved += r;
      }
      if (moved === 0 || performance.now() > until) break;
    }
    this.schedule();
  }
}

const pollers = new Poller();
