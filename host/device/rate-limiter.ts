/**
 * Rate limits per device and direction, as Firecracker and cloud-hypervisor offer them: a token
 * bucket for bytes and one for operations (frames), each with a size, an optional one-time
 * burst, and a refill time (the bucket goes from empty to full in `refillMs`). A frame passes
 * when both buckets hold enough; otherwise the data path holds it (TX stays on the guest's
 * ring, RX stays in the tap) until `waitMs()` has passed: backpressure, not drops.
 */

/** One bucket: `size` tokens refilled over `refillMs`, plus `oneTimeBurst` spent first. */
export interface BucketConfig {
  size: number;
  refillMs: number;
  oneTimeBurst?: number;
}

export interface RateLimit {
  bytes?: BucketConfig;
  ops?: BucketConfig;
}

export class TokenBucket {
  private tokens: number;
  private burst: number;
  private last: number;

  constructor(readonly config: BucketConfig, private readonly now: () => number) {
    if (!(config.size > 0) || !(config.refillMs > 0)) throw new RangeError(`a token bucket needs a size and a refill time above 0 (got ${config.size}, ${config.refillMs} ms)`);
    this.tokens = config.size;
    this.burst = config.oneTimeBurst ?? 0;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.last;
    if (elapsed <= 0) return;
    this.last = t;
    this.tokens = Math.min(this.config.size, this.tokens + (elapsed * this.config.size) / this.config.refillMs);
  }

  /** Whether `n` tokens are there now (burst first). Taking more than the size needs a full bucket. */
  has(n: number): boolean {
    this.refill();
    return this.burst + this.tokens >= Math.min(n, this.config.size);
  }

  /** Takes `n` tokens (burst first); the bucket may go into debt, which later refills repay. */
  take(n: number): void {
    this.refill();
    const fromBurst = Math.min(this.burst, n);
    this.burst -= fromBurst;
    this.tokens -= n - fromBurst;
  }

  /** Milliseconds until `n` tokens (capped at the size) are there. */
  waitMs(n: number): number {
    this.refill();
    const missing = Math.min(n, this.config.size) - this.burst - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * this.config.refillMs) / this.config.size);
  }
}

/** A direction's limits: both buckets must allow a frame. */
export class RateLimiter {
  private readonly bytes: TokenBucket | null;
  private readonly ops: TokenBucket | null;
  /** Frames held back so far (each time the data path found the buckets short). */
  throttled = 0;

  constructor(limit: RateLimit, now: () => number = () => performance.now()) {
    this.bytes = limit.bytes ? new TokenBucket(limit.bytes, now) : null;
    this.ops = limit.ops ? new TokenBucket(limit.ops, now) : null;
  }

  /** Whether a frame of `bytes` may pass now; if so it is charged. */
  tryTake(bytes: number): boolean {
    if (!this.allows(bytes)) return false;
    this.charge(bytes);
    return true;
  }

  /** Whether a frame of `bytes` may pass now (nothing charged); counts a refusal. */
  allows(bytes: number): boolean {
    const ok = (this.bytes?.has(bytes) ?? true) && (this.ops?.has(1) ?? true);
    if (!ok) this.throttled++;
    return ok;
  }

  /** Charges a frame that passed (RX charges after the read, when its size is known). */
  charge(bytes: number): void {
    this.bytes?.take(bytes);
    this.ops?.take(1);
  }

  /** Milliseconds until a frame of `bytes` may pass. */
  waitMs(bytes: number): number {
    return Math.max(this.bytes?.waitMs(bytes) ?? 0, this.ops?.waitMs(1) ?? 0);
  }
}

/**
 * Parses a CLI rate: `RATE[,burst=BYTES][,ops=N]` where RATE is bits or bytes per second with
 * an SI prefix (`100Mbit`, `12.5MB`, `800kbit`), or `ops=N` alone (frames per second). Buckets
 * hold 100 ms worth and refill in 100 ms; `burst` is a one-time allowance on top.
 */
export function parseRate(spec: string): RateLimit {
  const out: RateLimit = {};
  const REFILL = 100;
  for (const [i, part] of spec.split(",").entries()) {
    const kv = part.match(/^(burst|ops)=(\d+(?:\.\d+)?)$/);
    if (kv) {
      const v = Number(kv[2]);
      if (kv[1] === "ops") out.ops = { size: Math.max(1, (v * REFILL) / 1000), refillMs: REFILL };
      else if (out.bytes) out.bytes.oneTimeBurst = v;
      else throw new Error(`rate "${spec}": burst= needs a rate before it`);
      continue;
    }
    const m = i === 0 ? part.match(/^(\d+(?:\.\d+)?)([kMG]?)(bit|B)$/) : null;
    if (!m) throw new Error(`rate "${spec}": "${part}" is not RATE (e.g. 100Mbit, 12.5MB), burst=BYTES or ops=N`);
    const perSecond = Number(m[1]) * ({ "": 1, k: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]] / (m[3] === "bit" ? 8 : 1);
    if (!(perSecond > 0)) throw new Error(`rate "${spec}": the rate must be above 0`);
    out.bytes = { size: (perSecond * REFILL) / 1000, refillMs: REFILL };
  }
  return out;
}
