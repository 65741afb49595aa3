/**
 * Traffic from a driver that kicks only when the device asks and sleeps only on interrupts it
 * armed (virtio 1.2, 2.7.7 and 2.7.10, as Linux and DPDK behave), against a data-path loop
 * whose backend is one end of a SOCK_SEQPACKET socket pair (a tap stand-in: frame boundaries
 * kept, EAGAIN when full, epoll-able). The test holds the other end as the "network".
 *
 * The driver posts bursts of random sizes (often larger than any pump budget) at random
 * moments, in both directions. When it has nothing left to do it arms interrupts, looks at the
 * used rings once more, and then waits for an interrupt or the network: if neither comes for
 * `stallMs`, some wakeup was lost (a kick the loop needed but did not ask for, an interrupt it
 * owed, or a loop asleep with work pending), and the run fails with the counts.
 */
import { QueueIndex } from "../../assembly/abi.js";
import type { DataQueue } from "../../host/device/virtio-net.js";
import type { GuestDriver } from "../../host/driver/guest-driver.js";
import * as libc from "../../host/runtime/libc.js";

/** The loop under test, as the driver and the network see it. */
export interface LoopUnderTest {
  /** The guest's notification on queue `q`. */
  kick(q: DataQueue): void;
  /** Interrupts raised on queue `q` since the last call. */
  takeInterrupts(q: DataQueue): number;
}

export interface TrafficPlan {
  txFrames: number;
  rxFrames: number;
  /** Largest burst the driver posts at once (descriptors permitting). */
  maxBurst: number;
  /** Give up after this long without any progress. */
  stallMs?: number;
}

export interface TrafficResult {
  txDelivered: number;
  rxDelivered: number;
  kicks: number;
  kicksSkipped: number;
  interrupts: number;
}

const HDR = 12;
const ETH = 14;

/** Frame `i` of a direction: a recognisable, length-varying Ethernet frame. */
export function numberedFrame(dir: number, i: number): Uint8Array {
  const len = 60 + ((i * 37 + dir * 11) % 200);
  const f = new Uint8Array(len);
  f.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5]);
  const dv = new DataView(f.buffer);
  dv.setUint32(ETH, i);
  dv.setUint8(ETH + 4, dir);
  for (let k = ETH + 5; k < len; k++) f[k] = (i + k) & 0xff;
  return f;
}

function sameFrame(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, k) => v === b[k]);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runStrictTraffic(drv: GuestDriver, loop: LoopUnderTest, peerFd: number, plan: TrafficPlan): Promise<TrafficResult> {
  const rand = drv.random;
  const pick = (n: number) => 1 + Math.floor(rand() * n);
  const res: TrafficResult = { txDelivered: 0, rxDelivered: 0, kicks: 0, kicksSkipped: 0, interrupts: 0 };
  let txPosted = 0;
  let rxInjected = 0;
  const buf = new Uint8Array(HDR + 2048);
  const stallMs = plan.stallMs ?? 4000;

  /** Makes `count` buffers available on `q` via `post`, kicking once or per buffer, only when asked. */
  const publish = (q: DataQueue, count: number, post: () => void) => {
    const perBuffer = rand() < 0.3;
    let old = drv.queues[q].availIdx;
    for (let i = 0; i < count; i++) {
      post();
      if (perBuffer || i === count - 1) {
        if (drv.kickNeeded(q, old)) { loop.kick(q); res.kicks++; } else res.kicksSkipped++;
        old = drv.queues[q].availIdx;
      }
    }
  };

  const postTx = () => {
    const room = Math.min(drv.freeDescriptors(QueueIndex.TX), plan.txFrames - txPosted);
    if (room <= 0) return false;
    publish(QueueIndex.TX, Math.min(room, pick(plan.maxBurst)), () => { drv.send(numberedFrame(0, txPosted++)); });
    return true;
  };
  const postRx = () => {
    const room = drv.freeDescriptors(QueueIndex.RX);
    if (room <= 0) return false;
    publish(QueueIndex.RX, Math.min(room, pick(plan.maxBurst)), () => { drv.postRx(1, { parts: [HDR + 1514] }); });
    return true;
  };
  /** The network side: takes what the device sent, checking order and bytes. */
  const peerRead = () => {
    let got = 0;
    for (;;) {
      const n = libc.read(peerFd, buf);
      if (n < 0) return got;
      const frame = buf.subarray(HDR, n);
      const want = numberedFrame(0, res.txDelivered);
      if (!sameFrame(frame, want)) throw new Error(`TX frame ${res.txDelivered}: wrong bytes or order (got ${n - HDR} bytes)`);
      res.txDelivered++;
      got++;
    }
  };
  /** The network side: offers frames to the device until the socket is full. */
  const peerWrite = (max: number) => {
    let put = 0;
    while (put < max && rxInjected < plan.rxFrames) {
      const f = numberedFrame(1, rxInjected);
      const out = new Uint8Array(HDR + f.length);
      out.set(f, HDR);
      if (libc.write(peerFd, out) < 0) break;
      rxInjected++;
      put++;
    }
    return put;
  };
  const reap = (q: QueueIndex) => {
    if (q === QueueIndex.TX) return drv.takeUsed(QueueIndex.TX).length;
    const got = drv.receiveAll();
    for (const r of got) {
      const want = numberedFrame(1, res.rxDelivered);
      if (!sameFrame(r.frame, want)) throw new Error(`RX frame ${res.rxDelivered}: wrong bytes or order (got ${r.frame.length} bytes)`);
      res.rxDelivered++;
    }
    return got.length;
  };
  const done = () => res.txDelivered === plan.txFrames && res.rxDelivered === plan.rxFrames;

  // NAPI style: interrupts off while the driver is busy, on (with a look) before it sleeps.
  drv.disableInterrupts(QueueIndex.RX);
  drv.disableInterrupts(QueueIndex.TX);
  let stalledSince = performance.now();
  while (!done()) {
    let progress = 0;
    for (let step = pick(6); step > 0; step--) {
      const a = rand();
      if (a < 0.25) progress += postTx() ? 1 : 0;
      else if (a < 0.45) progress += postRx() ? 1 : 0;
      else if (a < 0.65) progress += peerWrite(pick(plan.maxBurst));
      else if (a < 0.8) progress += peerRead();
      else if (a < 0.9) progress += reap(QueueIndex.TX); // a driver may reclaim whenever it likes
      else progress += reap(QueueIndex.RX);
    }
    if (progress > 0) { stalledSince = performance.now(); continue; }
    // A driver keeps its RX ring filled and sends what it has before it sleeps.
    if (postRx() || postTx() || reap(QueueIndex.TX) > 0) continue;
    // Nothing to do on our own: arm, look once more, then sleep until an interrupt or the network.
    let woke = false;
    for (const q of [QueueIndex.RX, QueueIndex.TX]) {
      if (drv.enableInterrupts(q)) { reap(q); woke = true; }
    }
    while (!woke) {
      await sleep(1);
      for (const q of [QueueIndex.RX, QueueIndex.TX] as const) {
        const n = loop.takeInterrupts(q);
        if (n === 0) continue;
        res.interrupts += n;
        // An interrupt may be for buffers already taken in the busy phase: then stay armed.
        if (reap(q) > 0) woke = true;
      }
      if (peerRead() + peerWrite(plan.maxBurst) > 0) woke = true;
      if (done()) break;
      if (performance.now() - stalledSince > stallMs) {
        throw new Error(`lost wakeup: no progress for ${stallMs} ms (tx posted ${txPosted}, delivered ${res.txDelivered}/${plan.txFrames}; `
          + `rx injected ${rxInjected}, delivered ${res.rxDelivered}/${plan.rxFrames}; kicks ${res.kicks}, skipped ${res.kicksSkipped})`);
      }
    }
    stalledSince = performance.now();
    drv.disableInterrupts(QueueIndex.RX);
    drv.disableInterrupts(QueueIndex.TX);
  }
  return res;
}
