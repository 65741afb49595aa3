/**
 * Rate limits (token buckets for bytes and frames, per direction): the bucket arithmetic on a
 * fake clock; TapPort holding TX frames on the guest's ring (never dropping them) and leaving RX
 * frames in the tap while over the limit, and telling its loop how long to sleep; and the rate
 * a real-clock pump achieves against a scripted tap, within 5% of the configured limit.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { parseRate, RateLimiter, TokenBucket } from "../../host/device/rate-limiter.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { TapPort, type TapIo } from "../../host/io/tap-port.js";
import { gather, scatter } from "../helpers/iovecs.js";
import { fixture } from "../helpers/setup.js";

describe("token buckets", () => {
  it("refill linearly up to the size, spend a one-time burst first, and say how long to wait", () => {
    let t = 0;
    const b = new TokenBucket({ size: 1000, refillMs: 100, oneTimeBurst: 500 }, () => t);
    expect(b.has(1500)).toBe(true); // capped at the size: a full bucket lets one big frame through
    b.take(1400); // 500 from the burst, 900 from the bucket
    expect(b.has(200)).toBe(false);
    expect(b.waitMs(200)).toBe(10); // 100 missing at 10 tokens/ms
    t = 10;
    expect(b.has(200)).toBe(true);
    t = 1000;
    expect(b.waitMs(1000)).toBe(0);
  });

  it("a limiter passes a frame only when both the byte and the frame bucket allow it", () => {
    let t = 0;
    const l = new RateLimiter({ bytes: { size: 10_000, refillMs: 100 }, ops: { size: 2, refillMs: 100 } }, () => t);
    expect(l.tryTake(100)).toBe(true);
    expect(l.tryTake(100)).toBe(true);
    expect(l.tryTake(100)).toBe(false); // out of frames, plenty of bytes
    expect(l.waitMs(100)).toBe(50);
    t = 50;
    expect(l.tryTake(100)).toBe(true);
    expect(l.throttled).toBe(1);
  });

  it("parses CLI rates", () => {
    expect(parseRate("100Mbit")).toEqual({ bytes: { size: 1_250_000, refillMs: 100 } });
    expect(parseRate("12.5MB,burst=65536,ops=1000")).toEqual({ bytes: { size: 1_250_000, refillMs: 100, oneTimeBurst: 65536 }, ops: { size: 100, refillMs: 100 } });
    expect(parseRate("ops=500")).toEqual({ ops: { size: 50, refillMs: 100 } });
    expect(() => parseRate("fast")).toThrow(/"fast" is not RATE/);
    expect(() => parseRate("burst=10")).toThrow(/burst= needs a rate/);
  });
});

const HDR = 12;

class CountingTap implements TapIo {
  readonly name = "limited0";
  readonly vnetHdr = true;
  written: Uint8Array[] = [];
  reads: Uint8Array[] = [];
  constructor(private readonly memory: WebAssembly.Memory) {}
  writev(iov: bigint, n: number): number { const f = gather(this.memory, iov, n); this.written.push(f); return f.length; }
  readv(iov: bigint, n: number): number { const r = this.reads.shift(); return r ? scatter(this.memory, iov, n, r) : -11; }
}

function setup(now: () => number) {
  const f = fixture({ backend: BackendKind.VNET_HDR, guestSize: 16 << 20 });
  f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC), 256);
  const tap = new CountingTap(f.mem.memory);
  const port = new TapPort(f.dev, tap, 0n);
  port.limits = { tx: new RateLimiter({ bytes: { size: 5000, refillMs: 100 } }, now), rx: new RateLimiter({ ops: { size: 2, refillMs: 100 } }, now) };
  return { f, tap, port };
}
const frame = (n: number) => buildFrame({ ip: 4, l4: "udp", payload: payload(1000, n) }).frame;

describe("TapPort under rate limits", () => {
  it("TX over the limit: frames stay on the guest's ring (none dropped) and go when tokens return", () => {
    let t = 0;
    const { f, tap, port } = setup(() => t);
    for (let i = 0; i < 10; i++) f.drv.send(frame(i));
    expect(port.pumpTx()).toBe("rate-limited");
    const first = tap.written.length;
    expect(first).toBeGreaterThanOrEqual(4);
    expect(first).toBeLessThan(10);
    expect(port.workPending).toBe(false); // a loop sleeps, it does not spin
    expect(port.limitWaitMs).toBeGreaterThan(0);
    t += port.limitWaitMs! + 100;
    port.pumpTx();
    t += 200;
    port.pumpTx();
    expect(tap.written.map((w) => Buffer.from(w.subarray(HDR)).toString("hex"))).toEqual(Array.from({ length: 10 }, (_, i) => Buffer.from(frame(i)).toString("hex")));
    expect(f.dev.metrics(QueueIndex.TX).packets).toBe(10);
    expect(port.limits.tx!.throttled).toBeGreaterThan(0);
  });

  it("RX over the limit: frames wait in the tap, the tap is not watched for input meanwhile", () => {
    let t = 0;
    const { f, tap, port } = setup(() => t);
    f.drv.postRx(8);
    for (let i = 0; i < 5; i++) { const b = new Uint8Array(HDR + frame(i).length); b.set(frame(i), HDR); tap.reads.push(b); }
    expect(port.pumpRx()).toBe("rate-limited");
    expect(f.drv.receiveAll()).toHaveLength(2);
    expect(port.tapEvents() & 1).toBe(0);
    expect(port.limitWaitMs).toBe(50);
    t = 100;
    expect(port.pumpRx()).toBe("rate-limited");
    expect(f.drv.receiveAll()).toHaveLength(2);
    t = 200;
    port.pumpRx();
    expect(f.drv.receiveAll()).toHaveLength(1);
    expect(tap.reads).toHaveLength(0);
  });

  it("on the real clock, a pump loop sleeping as told never exceeds the limit (and comes near it)", async () => {
    const { f, tap, port } = setup(() => performance.now());
    const RATE = 2_000_000; // bytes/s
    port.limits = { tx: new RateLimiter({ bytes: { size: RATE / 10, refillMs: 100 } }) };
    const FRAME = HDR + frame(0).length;
    let sent = 0;
    const t0 = performance.now();
    const seconds = 1;
    while (performance.now() - t0 < seconds * 1000) {
      for (let i = 0; f.drv.freeDescriptors(QueueIndex.TX) > 2 && i < 64; i++) f.drv.send(frame(i));
      port.pumpTx();
      f.drv.takeUsed(QueueIndex.TX);
      const wait = port.limitWaitMs;
      await new Promise((r) => setTimeout(r, wait ?? 0));
    }
    sent = tap.written.length * FRAME;
    const elapsed = (performance.now() - t0) / 1000;
    // The bucket starts full: one bucket's worth on top of the rate.
    const expected = RATE * elapsed + RATE / 10;
    // Never above the limit; how close below it depends on how busy this machine is.
    expect(sent / expected).toBeLessThan(1.05);
    expect(sent / expected).toBeGreaterThan(0.7);
  }, 10_000);
});
