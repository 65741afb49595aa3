/**
 * Waits on a device's queue kick eventfds (a vhost-user front-end's, or our own) from the JS
 * thread, with epoll_wait on a thread-pool thread, and calls back per queue. For data paths that
 * live on the main thread (the embedded network); the tap data path uses a Worker instead.
 */
import { QueueIndex } from "../../assembly/abi.js";
import { AsyncEpoll } from "../runtime/async-epoll.js";
import * as libc from "../runtime/libc.js";

export class KickLoop {
  private readonly poll = new AsyncEpoll(2);
  private running = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly kickFds: [number, number], private readonly onKick: (q: QueueIndex) => void) {
    this.poll.add(kickFds[QueueIndex.RX], libc.EPOLLIN, QueueIndex.RX);
    this.poll.add(kickFds[QueueIndex.TX], libc.EPOLLIN, QueueIndex.TX);
  }

  start(): void {
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        const ready = await this.poll.wait();
        if (!this.running) break;
        let rx = false;
        let tx = false;
        for (const { token: t } of ready) {
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
    this.poll.wake();
    await this.done;
    this.poll.close();
  }
}
