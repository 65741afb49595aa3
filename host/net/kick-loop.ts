/**
 * Waits on a device's queue kick eventfds (a vhost-user front-end's, or our own) from the JS
 * thread, with epoll_wait on a thread-pool thread, and calls back per queue. For data paths that
 * live on the main thread (the embedded network); the tap data path uses a Worker instead.
 */
import { QueueIndex } from "../../assembly/abi.js";
import * as libc from "../runtime/libc.js";

const WAKE = 2;

export class KickLoop {
  private readonly ep = libc.epollCreate();
  private readonly wake = libc.eventfd();
  private readonly events = new libc.EpollEvents(4);
  private running = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly kickFds: [number, number], private readonly onKick: (q: QueueIndex) => void) {
    libc.epollAdd(this.ep, kickFds[QueueIndex.RX], libc.EPOLLIN, QueueIndex.RX);
    libc.epollAdd(this.ep, kickFds[QueueIndex.TX], libc.EPOLLIN, QueueIndex.TX);
    libc.epollAdd(this.ep, this.wake, libc.EPOLLIN, WAKE);
  }

  start(): void {
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        const n = await libc.epollWaitAsync(this.ep, this.events, -1);
        if (!this.running) break;
        let rx = false;
        let tx = false;
        for (let i = 0; i < n; i++) {
          const t = this.events.token(i);
          if (t === WAKE) continue;
          libc.eventfdDrain(this.kickFds[t]);
          if (t === QueueIndex.RX) rx = true;
          else tx = true;
        }
        // Buffers first, so frames the TX side produces for this guest find them.
        if (rx) this.onKick(QueueIndex.RX);
        if (tx) this.onKick(QueueIndex.TX);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    libc.eventfdSignal(this.wake);
    await this.done;
    libc.close(this.wake);
    libc.close(this.ep);
  }
}
