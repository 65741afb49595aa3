/**
 * The single-threaded I/O loop, for hosts without Workers and for emulators that drive the
 * device from their own loop: waits for the tap with epoll_wait on a thread-pool thread (one
 * koffi async call at a time) and pumps on the JS thread. Guest notifications arrive as kick()
 * calls. The tap is armed one-shot, and only for what can make progress: readable when the
 * guest has RX buffers, writable when a write was refused, so a guest without buffers does not
 * make the loop spin (the kernel queues, then drops, as it would for a real NIC).
 */
import { QueueIndex } from "../../assembly/abi.js";
import type { Ready } from "../runtime/async-epoll.js";
import { EpollLoop } from "../runtime/epoll-loop.js";
import * as libc from "../runtime/libc.js";
import { LinuxTap } from "../backends/tap-linux.js";
import type { TapPort } from "./tap-port.js";

const TOKEN_TAP = 1;

export interface TapLoopOptions {
  /** How often to retry opening a tap that went away, ms. Default 1000. */
  reopenIntervalMs?: number;
  /** Called with a human-readable line on link changes and errors. */
  log?: (line: string) => void;
}

export class TapLoop {
  private readonly loop = new EpollLoop((ready) => this.onReady(ready), () => (this.tapDown ? this.opts.reopenIntervalMs ?? 1000 : -1));
  private readonly poll = this.loop.poll;
  /** A pump round scheduled because the last one stopped at its budget. */
  private again: ReturnType<typeof setImmediate> | undefined;
  /** A pump round scheduled for when a rate limit's tokens are back. */
  private limitTimer: ReturnType<typeof setTimeout> | undefined;
  private tapDown = false;
  private readonly log: (line: string) => void;

  constructor(readonly port: TapPort<LinuxTap>, private readonly opts: TapLoopOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.poll.add(port.tap.fd, libc.EPOLLIN | libc.EPOLLONESHOT, TOKEN_TAP);
  }

  /** Starts waiting for the tap. */
  start(): void {
    this.loop.start();
  }

  private get running(): boolean { return this.loop.active; }

  /** A guest notification on queue `q` (TX: frames to send; RX: buffers posted). */
  kick(q: QueueIndex): void {
    if (q === QueueIndex.RX) this.port.buffersPosted();
    this.service(q === QueueIndex.TX);
  }

  /**
   * Pumps (TX first if `tx`, then RX), then re-arms the tap. A pump that stopped at its budget
   * left the guest's notifications off, so another round is scheduled at once (after other
   * events get their turn) rather than waiting for a kick or tap event that may never come.
   */
  private service(tx: boolean): void {
    if (tx) this.port.pumpTx();
    this.afterPump(this.port.pumpRx());
    if (this.port.workPending && !this.again && this.running) {
      this.again = setImmediate(() => {
        this.again = undefined;
        if (this.running) this.service(this.port.txPending);
      });
    }
    // A rate limit stopped a direction: come back when its tokens are (a timer, not a spin).
    const wait = this.port.limitWaitMs;
    if (wait !== null && !this.limitTimer && this.running) {
      this.limitTimer = setTimeout(() => {
        this.limitTimer = undefined;
        if (this.running) this.service(this.port.txLimited);
      }, wait);
    }
    this.arm();
  }

  /** Stops the loop; resolves once the waiting thread has returned. */
  async stop(): Promise<void> {
    if (this.again) clearImmediate(this.again);
    this.again = undefined;
    if (this.limitTimer) clearTimeout(this.limitTimer);
    this.limitTimer = undefined;
    await this.loop.stop();
  }

  private afterPump(rx: string): void {
    if (rx === "tap-error") this.tapFailed();
  }

  private arm(): void {
    if (this.tapDown) return;
    this.poll.mod(this.port.tap.fd, this.port.tapEvents() | libc.EPOLLONESHOT, TOKEN_TAP);
  }

  private onReady(ready: Ready[]): void {
    if (this.tapDown) {
      this.tryReopen();
      return;
    }
    let tx = false;
    let rx = false;
    for (const { token, events: e } of ready) {
      if (token !== TOKEN_TAP) continue;
      if (e & (libc.EPOLLERR | libc.EPOLLHUP)) this.tapFailed();
      if (e & libc.EPOLLOUT) tx = true;
      if (e & libc.EPOLLIN) rx = true;
    }
    if ((tx || rx) && !this.tapDown) this.service(tx);
    else this.arm();
  }

  /** The tap went away: report link down and retry opening it by name. */
  private tapFailed(): void {
    if (this.tapDown) return;
    this.tapDown = true;
    this.log(`tap ${this.port.tap.name}: ${this.port.stats.lastError ?? "error"}; link down, will retry`);
    this.port.dev.setLinkUp(false);
    try { this.poll.del(this.port.tap.fd); } catch { /* already gone */ }
    try { this.port.tap.close(); } catch { /* already gone */ }
  }

  private tryReopen(): void {
    try {
      const tap = LinuxTap.open(this.port.tap.name, { vnetHdr: this.port.tap.vnetHdr });
      this.port.tap = tap;
      // The offloads in effect now (the guest may have changed them with CTRL_GUEST_OFFLOADS).
      if (this.port.dev.negotiatedFeatures !== 0n) this.port.tap.applyNegotiated(this.port.dev.rxFeatures);
      this.poll.add(tap.fd, libc.EPOLLIN | libc.EPOLLONESHOT, TOKEN_TAP);
      this.tapDown = false;
      this.port.dev.setLinkUp(true);
      this.log(`tap ${tap.name}: reopened; link up`);
    } catch {
      // Still gone; try again after the interval.
    }
  }
}
