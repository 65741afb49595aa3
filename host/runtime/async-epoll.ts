/**
 * Readiness of fds for code on a JS thread, without blocking it.
 *
 * One `Reactor` per thread owns one epoll set and waits on it from one thread-pool thread (a
 * koffi async call), however many loops and sockets the thread serves: a blocking wait per
 * loop would hold one pool thread each, and the pool is small (4 in Node; Bun runs fewer), so a
 * few guests would starve everything else. Every registration is one-shot in the kernel and
 * re-armed when its owner waits again, so an fd that stays ready does not spin the reactor while
 * its owner is busy.
 *
 * `AsyncEpoll` is an owner's view: the fds it added, waited on together (the tap loop, the kick
 * loop, the tap switch port, the vhost-user server each have one).
 */
import * as libc from "./libc.js";

/** A registration that became ready: the token it was added with and the epoll events. */
export interface Ready {
  token: number;
  events: number;
}

/** Data word of the reactor's own wake eventfd; registration ids start above it. */
const WAKE_ID = 0;

class Reactor {
  private readonly ep = libc.epollCreate();
  private readonly wakeFd = libc.eventfd();
  private readonly events = new libc.EpollEvents(64);
  private readonly handlers = new Map<number, (events: number) => void>();
  private nextId = WAKE_ID + 1;
  private waiting = false;

  constructor() {
    libc.epollAdd(this.ep, this.wakeFd, libc.EPOLLIN, WAKE_ID);
  }

  /** Watches `fd` for `events` (one-shot); `handler` runs on this thread when it fires. */
  register(fd: number, events: number, handler: (events: number) => void): number {
    const id = this.nextId++;
    libc.epollAdd(this.ep, fd, events | libc.EPOLLONESHOT, id);
    this.handlers.set(id, handler);
    if (!this.waiting) void this.loop();
    return id;
  }

  /** Arms registration `id` of `fd` again (after it fired), for `events`. */
  rearm(fd: number, id: number, events: number): void {
    libc.epollMod(this.ep, fd, events | libc.EPOLLONESHOT, id);
  }

  unregister(fd: number, id: number): void {
    this.handlers.delete(id);
    try { libc.epollDel(this.ep, fd); } catch { /* the fd was closed: the kernel dropped it already */ }
    // With nothing left to watch, let the waiting pool thread go (and the process exit).
    if (this.handlers.size === 0) libc.eventfdSignal(this.wakeFd);
  }

  private async loop(): Promise<void> {
    this.waiting = true;
    try {
      while (this.handlers.size > 0) {
        const n = await libc.epollWaitAsync(this.ep, this.events, -1);
        for (let i = 0; i < n; i++) {
          const id = this.events.token(i);
          if (id === WAKE_ID) libc.eventfdDrain(this.wakeFd);
          else this.handlers.get(id)?.(this.events.events(i));
        }
      }
    } finally {
      this.waiting = false;
    }
  }
}

let reactor: Reactor | null = null;
/** This thread's reactor. */
function theReactor(): Reactor {
  reactor ??= new Reactor();
  return reactor;
}

interface Registration {
  id: number;
  token: number;
  /** What the owner asked for (EPOLLONESHOT: the owner re-arms with mod()). */
  events: number;
  armed: boolean;
}

export class AsyncEpoll {
  private readonly regs = new Map<number, Registration>();
  private ready: { reg: Registration; events: number }[] = [];
  private woken = false;
  private waiter: (() => void) | null = null;

  /** `max` is accepted for compatibility: readiness is never cut short now. */
  constructor(_max = 4) {}

  add(fd: number, events: number, token: number): void {
    if (this.regs.has(fd)) throw new Error(`fd ${fd} is already watched`);
    const reg: Registration = { id: 0, token, events, armed: true };
    reg.id = theReactor().register(fd, events & ~libc.EPOLLONESHOT, (e) => this.fire(fd, reg, e));
    this.regs.set(fd, reg);
  }

  mod(fd: number, events: number, token: number): void {
    const reg = this.regs.get(fd);
    if (!reg) throw new Error(`fd ${fd} is not watched`);
    reg.events = events;
    reg.token = token;
    reg.armed = true;
    theReactor().rearm(fd, reg.id, events & ~libc.EPOLLONESHOT);
  }

  del(fd: number): void {
    const reg = this.regs.get(fd);
    if (!reg) throw new Error(`fd ${fd} is not watched`);
    this.regs.delete(fd);
    this.ready = this.ready.filter((r) => r.reg !== reg);
    theReactor().unregister(fd, reg.id);
  }

  private fire(fd: number, reg: Registration, events: number): void {
    if (this.regs.get(fd) !== reg) return;
    reg.armed = false;
    this.ready.push({ reg, events });
    this.waiter?.();
  }

  /**
   * Waits up to `timeoutMs` (-1: until something is ready or wake() is called) and resolves
   * with the ready registrations. Registrations added without EPOLLONESHOT are re-armed here,
   * so one that is still ready is reported again.
   */
  async wait(timeoutMs = -1): Promise<Ready[]> {
    for (const [fd, reg] of this.regs) {
      if (!reg.armed && !(reg.events & libc.EPOLLONESHOT)) {
        reg.armed = true;
        theReactor().rearm(fd, reg.id, reg.events);
      }
    }
    if (this.ready.length === 0 && !this.woken) {
      await new Promise<void>((resolve) => {
        const timer = timeoutMs >= 0 ? setTimeout(() => done(), timeoutMs) : undefined;
        const done = () => {
          if (timer !== undefined) clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
        this.waiter = done;
      });
    }
    this.woken = false;
    const out = this.ready.map(({ reg, events }) => ({ token: reg.token, events }));
    this.ready = [];
    return out;
  }

  /** Ends a pending (or the next) wait. */
  wake(): void {
    this.woken = true;
    this.waiter?.();
  }

  /** Stops watching everything (after the last wait has returned). */
  close(): void {
    for (const fd of [...this.regs.keys()]) this.del(fd);
  }
}
