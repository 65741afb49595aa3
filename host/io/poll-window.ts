/**
 * Busy polling after work, in the spirit of vhost-net's busyloop_timeout: a data-path loop
 * that moved frames keeps looking at the rings for `us` microseconds before it sleeps, trading
 * CPU for the wake-up latency of a kick or an interrupt. 0 (the default) never polls.
 */
export class PollWindow {
  private until = 0;
  constructor(readonly us: number) {
    if (!Number.isInteger(us) || us < 0 || us > 10_000_000) throw new RangeError(`poll window must be 0..10000000 µs, got ${us}`);
  }

  /** Frames moved: keep polling for the window from now. */
  progress(): void {
    if (this.us > 0) this.until = performance.now() + this.us / 1000;
  }

  /** Whether the loop should look again instead of sleeping. */
  open(): boolean {
    return this.us > 0 && performance.now() < this.until;
  }
}
