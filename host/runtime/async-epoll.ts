/**
 * An epoll set waited on from the JS thread: epoll_wait runs on a thread-pool thread (a koffi
 * async call), and a wake eventfd of its own lets wake() end a wait at once, as stop paths need.
 * The single-threaded loops (tap loop, kick loop, tap switch port, vhost-user server) share it.
 */
import * as libc from "./libc.js";

/** A registration that became ready: the token it was added with and the epoll events. */
export interface Ready {
  token: number;
  events: number;
}

/** Token of the internal wake eventfd; callers' tokens must differ. */
const WAKE_TOKEN = 0xffff_ffff;

export class AsyncEpoll {
  private readonly ep = libc.epollCreate();
  private readonly wakeFd = libc.eventfd();
  private readonly events: libc.EpollEvents;

  /** `max`: the most registrations reported by one wait. */
  constructor(max = 4) {
    this.events = new libc.EpollEvents(max + 1);
    libc.epollAdd(this.ep, this.wakeFd, libc.EPOLLIN, WAKE_TOKEN);
  }

  add(fd: number, events: number, token: number): void { libc.epollAdd(this.ep, fd, events, token); }
  mod(fd: number, events: number, token: number): void { libc.epollMod(this.ep, fd, events, token); }
  del(fd: number): void { libc.epollDel(this.ep, fd); }

  /**
   * Waits up to `timeoutMs` (-1: until something is ready or wake() is called) and resolves
   * with the ready registrations; the wake eventfd is drained and left out.
   */
  async wait(timeoutMs = -1): Promise<Ready[]> {
    const n = await libc.epollWaitAsync(this.ep, this.events, timeoutMs);
    const out: Ready[] = [];
    for (let i = 0; i < n; i++) {
      const token = this.events.token(i);
      if (token === WAKE_TOKEN) libc.eventfdDrain(this.wakeFd);
      else out.push({ token, events: this.events.events(i) });
    }
    return out;
  }

  /** Ends a pending (or the next) wait. */
  wake(): void { libc.eventfdSignal(this.wakeFd); }

  /** Closes the epoll set and the wake eventfd (after the last wait has returned). */
  close(): void {
    libc.close(this.wakeFd);
    libc.close(this.ep);
  }
}
