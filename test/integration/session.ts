/**
 * One guest behind a vhost-user front-end model: the front-end, the driver model, the guest
 * stack, and the loop that turns the back-end's call eventfds into the stack's polls.
 */
import * as libc from "../../host/runtime/libc.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { GuestStack } from "./guest-stack.js";
import { VhostFrontend } from "./vhost-frontend.js";

export interface SessionOptions {
  ramSize?: number;
  memSlots?: boolean;
  hole?: [number, number];
  seed?: number;
  /** The guest stack's MAC and IPv4 address (defaults: GUEST_MAC, GUEST4). */
  mac?: Uint8Array;
  ip4?: number[];
}

export class Session {
  fe: VhostFrontend;
  drv: GuestDriver;
  stack: GuestStack;
  private running = true;
  /** While true, interrupts are not turned into polls (the guest is swapping its driver). */
  paused = false;
  private polling = false;
  private loop: Promise<void> = Promise.resolve();
  constructor(features: bigint, opts: SessionOptions = {}) {
    this.fe = new VhostFrontend({ ramSize: opts.ramSize ?? 32 << 20, memSlots: opts.memSlots, hole: opts.hole });
    this.drv = new GuestDriver({ memory: this.fe.memory, regions: this.fe.regions }, this.fe, opts.seed ?? 5);
    this.stack = new GuestStack(this.drv, features, (q) => libc.eventfdSignal(this.fe.kickFds[q]), 64, opts.mac, opts.ip4);
  }
  /** Connects (a path) or accepts (a listening fd), sets up like QEMU, starts the guest stack. */
  async start(socket: string | number, features: bigint, queueSize = 256): Promise<bigint> {
    if (typeof socket === "number") await this.fe.accept(socket);
    else await this.fe.connect(socket);
    const offered = await this.fe.handshake();
    if (!this.drv.negotiate(features)) throw new Error("driver model refused");
    this.drv.setupQueues(queueSize);
    this.drv.start();
    await this.fe.start();
    this.startPolling();
    this.stack.start();
    return offered;
  }

  /** Turns the back-end's call eventfds into polls of the (current) guest stack. */
  startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    const ep = libc.epollCreate();
    libc.epollAdd(ep, this.fe.callFds[0], libc.EPOLLIN, 0);
    libc.epollAdd(ep, this.fe.callFds[1], libc.EPOLLIN, 1);
    const ev = new libc.EpollEvents(2);
    this.loop = (async () => {
      while (this.running) {
        const n = await libc.epollWaitAsync(ep, ev, 50);
        for (let i = 0; i < n; i++) libc.eventfdDrain(this.fe.callFds[ev.token(i)]);
        if (n > 0 && !this.paused) this.stack.poll();
      }
      libc.close(ep);
    })();
  }
  /**
   * The guest reboots: a new driver (fresh rings) and stack on the same front-end connection,
   * which resets the device and sets it up again the way QEMU does after a reboot.
   */
  async reboot(features: bigint, queueSize = 256, seed = 77): Promise<void> {
    this.paused = true;
    this.drv = new GuestDriver({ memory: this.fe.memory, regions: this.fe.regions }, this.fe, seed);
    const old = this.stack;
    this.stack = new GuestStack(this.drv, features, (q) => libc.eventfdSignal(this.fe.kickFds[q]), 64, old.mac, old.ip4);
    await this.fe.reboot(() => {
      if (!this.drv.negotiate(features)) throw new Error("driver model refused");
      this.drv.setupQueues(queueSize);
      this.drv.start();
    });
    this.paused = false;
    this.stack.start();
  }

  private ended = false;
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.running = false;
    try {
      await this.loop;
    } finally {
      // Even if the guest stack failed, the connection goes: a back-end serves one front-end at a time.
      this.fe.close();
    }
  }
}

