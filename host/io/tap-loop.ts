/**
 * The single-threaded I/O loop, for hosts without Workers and for emulators that drive the
 * device from their own loop: waits for the tap with epoll_wait on a thread-pool thread (one
 * koffi async call at a time) and pumps on the JS thread. Guest notifications arrive as kick()
 * calls. The tap is armed one-shot, and only for what can make progress: readable when the
 * guest has RX buffers, writable when a write was refused, so a guest without buffers does not
 * make the loop spin (the kernel queues, then drops, as it would for a real NIC).
 */
import { QueueIndex } from "../../assembly/abi.js";
import * as libc from "../runtime/libc.js";
import { LinuxTap } from "../backends/tap-linux.js";
import type { TapPort } from "./tap-port.js";

const TOKEN_TAP = 1;
const TOKEN_WAKE = 2;

export interface TapLoopOptions {
  /** How often to retry opening a tap that went away, ms. Default 1000. */
  reopenIntervalMs?: number;
  /** Called with a human-readable line on link changes and errors. */
  log?: (line: string) => void;
}

export class TapLoop {
  private readonly ep: number;
  private readonly wake: number;
  private readonly events = new libc.EpollEvents(4);
  private running = false;
  private done: Promise<void> = Promise.resolve();
  private rxWaitingForBuffers = false;
  private txBlocked = false;
  private tapDown = false;
  private readonly log: (line: string) => void;

  constructor(readonly port: TapPort, private readonly opts: TapLoopOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.ep = libc.epollCreate();
    this.wake = libc.eventfd();
    libc.epollAdd(this.ep, this.wake, libc.EPOLLIN, TOKEN_WAKE);
    libc.epollAdd(this.ep, port.tap.fd, libc.EPOLLIN | libc.EPOLLONESHOT, TOKEN_TAP);
  }

  /** Starts waiting for the tap. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.done = this.run();
  }

  /** A guest notification on queue `q` (TX: frames to send; RX: buffers posted). */
  kick(q: QueueIndex): void {
    if (q === QueueIndex.TX) this.txBlocked = this.port.pumpTx() === "tap-full";
    else this.rxWaitingForBuffers = false;
    this.afterPump(this.port.pumpRx());
    this.arm();
  }

  /** Stops the loop; resolves once the waiting thread has returned. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    libc.eventfdSignal(this.wake);
    await this.done;
    libc.close(this.wake);
    libc.close(this.ep);
  }

  private afterPump(rx: string): void {
    if (rx === "no-buffers") this.rxWaitingForBuffers = true;
    if (rx === "tap-error") this.tapFailed();
  }

  private arm(): void {
    if (this.tapDown) return;
    const ev = (this.rxWaitingForBuffers ? 0 : libc.EPOLLIN) | (this.txBlocked ? libc.EPOLLOUT : 0);
    libc.epollMod(this.ep, this.port.tap.fd, ev | libc.EPOLLONESHOT, TOKEN_TAP);
  }

  private async run(): Promise<void> {
    while (this.running) {
      const timeout = this.tapDown ? this.opts.reopenIntervalMs ?? 1000 : -1;
      const n = await libc.epollWaitAsync(this.ep, this.events, timeout);
      if (!this.running) break;
      if (this.tapDown) {
        this.tryReopen();
        continue;
      }
      for (let i = 0; i < n; i++) {
        if (this.events.token(i) === TOKEN_WAKE) libc.eventfdDrain(this.wake);
        if (this.events.token(i) !== TOKEN_TAP) continue;
        const e = this.events.events(i);
        if (e & (libc.EPOLLERR | libc.EPOLLHUP)) this.tapFailed();
        if (e & libc.EPOLLOUT) this.txBlocked = this.port.pumpTx() === "tap-full";
        if (e & libc.EPOLLIN) this.afterPump(this.port.pumpRx());
      }
      this.arm();
    }
  }

  /** The tap went away: report link down and retry opening it by name. */
  private tapFailed(): void {
    if (this.tapDown) return;
    this.tapDown = true;
    this.log(`tap ${this.port.tap.name}: ${this.port.stats.lastError ?? "error"}; link down, will retry`);
    this.port.dev.setLinkUp(false);
    try { libc.epollDel(this.ep, this.port.tap.fd); } catch { /* already gone */ }
    try { this.port.tap.close(); } catch { /* already gone */ }
  }

  private tryReopen(): void {
    try {
      const tap = LinuxTap.open(this.port.tap.name, { vnetHdr: this.port.tap.vnetHdr });
      this.port.tap = tap;
      if (this.port.dev.negotiatedFeatures !== 0n) this.port.applyNegotiated(this.port.dev.negotiatedFeatures);
      libc.epollAdd(this.ep, tap.fd, libc.EPOLLIN | libc.EPOLLONESHOT, TOKEN_TAP);
      this.tapDown = false;
      this.port.dev.setLinkUp(true);
      this.log(`tap ${tap.name}: reopened; link up`);
    } catch {
      // Still gone; try again after the interval.
    }
  }
}
