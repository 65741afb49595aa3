/**
 * The lifecycle every single-threaded loop here shares: wait on an AsyncEpoll, hand what is
 * ready to a handler, repeat until stopped. stop() wakes the pending wait, lets the loop
 * return, and only then stops watching (so no readiness is lost to a half-closed set).
 */
import { AsyncEpoll, type Ready } from "./async-epoll.js";

export class EpollLoop {
  /** The fds this loop watches; owners add, re-arm and remove their own. */
  readonly poll = new AsyncEpoll();
  private running = false;
  private closed = false;
  private done: Promise<void> = Promise.resolve();

  /**
   * @param onReady called with the ready registrations after each wait (empty on a timeout).
   * @param timeoutMs how long the next wait may last (-1: until something is ready).
   */
  constructor(private readonly onReady: (ready: Ready[]) => void, private readonly timeoutMs: () => number = () => -1) {}

  /** Whether the loop runs (started and not stopped). */
  get active(): boolean { return this.running; }

  start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.done = this.run();
  }

  /** Stops the loop and the watching; resolves once the last wait has returned. Idempotent. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.running = false;
    this.poll.wake();
    await this.done;
    this.poll.close();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const ready = await this.poll.wait(this.timeoutMs());
      if (!this.running) break;
      this.onReady(ready);
    }
  }
}
