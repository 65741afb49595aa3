/**
 * No lost wakeups on the embedded network: two devices on the switch, each served by its kick
 * loop (kick eventfds waited on through the reactor, as for vhost-user guests), with and without
 * the core's fast path and a poll window. Guest A's driver sends, guest B's receives; both kick
 * only when the device asks and sleep only on interrupts they armed. Every frame must arrive at
 * B, in order, without a stall.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { KickLoop } from "../../host/io/kick-loop.js";
import { Switch } from "../../host/net/switch.js";
import * as libc from "../../host/runtime/libc.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { numberedFrame } from "../helpers/strict-traffic.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const OFFER = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.MRG_RXBUF, Feature.CSUM, Feature.GUEST_CSUM);

interface Case { eventIdx: boolean; ringSize: number; maxBurst: number; pollUs: number; fastPath: boolean; seed: number }

async function run(c: Case, frames: number): Promise<{ fast: number; got: number; dropped: number }> {
  const mem = createGuestMemory({ guestSize: 16 << 20, devices: 2 });
  const half = mem.guestSize / 2;
  const sw = new Switch();
  const irqs = [[0, 0], [0, 0]];
  const side = [0, 1].map((i) => {
    const regions = [{ gpa: 0n, size: half, wasm: mem.guestBase + i * half }];
    const dev = new VirtioNetDevice({
      memory: mem.memory, stateAddress: mem.stateAddresses[i], regions, backend: BackendKind.VNET_HDR, features: OFFER,
      mac: `02:00:00:00:00:0${i + 1}`, hooks: { interrupt: (q) => { irqs[i][q]++; } },
    });
    const drv = new GuestDriver({ memory: mem.memory, regions }, dev, c.seed + i);
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MRG_RXBUF) | (c.eventIdx ? featureMask(Feature.EVENT_IDX) : 0n), c.ringSize);
    const port = new DevicePort(`g${i}`, dev, sw, { fastPath: c.fastPath });
    const kickFds: [number, number] = [libc.eventfd(), libc.eventfd()];
    const loop = new KickLoop(kickFds, (q) => (q === QueueIndex.TX ? port.pumpTx() : port.pumpRx()), {
      pollUs: c.pollUs, setPolling: (on) => [QueueIndex.RX, QueueIndex.TX].map((q) => dev.setPolling(q, on)).some(Boolean),
    });
    loop.start();
    return { dev, drv, port, kickFds, loop };
  });
  const [a, b] = side;
  const rand = a.drv.random;
  const pick = (n: number) => 1 + Math.floor(rand() * n);
  const kick = (s: typeof a, q: QueueIndex.RX | QueueIndex.TX, old: number) => { if (s.drv.kickNeeded(q, old)) libc.eventfdSignal(s.kickFds[q]); };
  // Frames go A -> B by MAC; B's address is learned from one frame it sends first.
  const toB = (i: number) => { const f = numberedFrame(0, i); f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]); return f; };
  let sent = 0;
  let got = 0;
  try {
    b.drv.send(Uint8Array.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5, ...new Array(46).fill(0)]));
    libc.eventfdSignal(b.kickFds[QueueIndex.TX]);
    const postRx = () => {
      const room = b.drv.freeDescriptors(QueueIndex.RX);
      if (room === 0) return false;
      const old = b.drv.queues[QueueIndex.RX].availIdx;
      b.drv.postRx(Math.min(room, pick(c.maxBurst)), { parts: [1526] });
      kick(b, QueueIndex.RX, old);
      return true;
    };
    const postTx = () => {
      const room = Math.min(a.drv.freeDescriptors(QueueIndex.TX), frames - sent);
      if (room <= 0) return false;
      const old = a.drv.queues[QueueIndex.TX].availIdx;
      for (let n = Math.min(room, pick(c.maxBurst)); n > 0; n--) a.drv.send(toB(sent++));
      kick(a, QueueIndex.TX, old);
      return true;
    };
    // A switch drops what a receiver's backlog cannot hold (counted as backlogDrops): frames
    // may go missing only that way, and never come out of order.
    let next = 0;
    const reapRx = () => {
      let n = 0;
      for (const r of b.drv.receiveAll()) {
        const index = new DataView(r.frame.buffer, r.frame.byteOffset).getUint32(14);
        const want = toB(index);
        if (index < next || r.frame.length !== want.length || !r.frame.every((v, k) => v === want[k])) {
          throw new Error(`frame ${index} at B after ${next - 1}: out of order or wrong bytes`);
        }
        next = index + 1;
        got++;
        n++;
      }
      return n;
    };
    // A driver fills its RX ring when it comes up.
    while (b.drv.freeDescriptors(QueueIndex.RX) > 0) postRx();
    a.drv.disableInterrupts(QueueIndex.TX);
    b.drv.disableInterrupts(QueueIndex.RX);
    let stalled = performance.now();
    const settled = () => got + b.port.backlogDrops >= frames;
    while (!settled()) {
      let progress = 0;
      for (let s = pick(4); s > 0; s--) {
        const x = rand();
        if (x < 0.35) progress += postTx() ? 1 : 0;
        else if (x < 0.6) progress += postRx() ? 1 : 0;
        else if (x < 0.8) progress += a.drv.takeUsed(QueueIndex.TX).length;
        else progress += reapRx();
      }
      // Let the loops run (they live on this thread), as a guest's vCPU would be descheduled.
      await new Promise((r) => setImmediate(r));
      if (progress > 0 || postRx() || postTx() || a.drv.takeUsed(QueueIndex.TX).length > 0) { stalled = performance.now(); continue; }
      const armA = a.drv.enableInterrupts(QueueIndex.TX);
      const armB = b.drv.enableInterrupts(QueueIndex.RX);
      let woke = armA || armB;
      while (!woke) {
        await sleep(1);
        if (irqs[0][QueueIndex.TX] > 0 || irqs[1][QueueIndex.RX] > 0) woke = true;
        irqs[0][QueueIndex.TX] = irqs[1][QueueIndex.RX] = 0;
        if (settled()) break;
        if (performance.now() - stalled > 4000) {
          throw new Error(`lost wakeup: sent ${sent}, received ${got} of ${frames}, A's TX used pending ${a.drv.usedPending(QueueIndex.TX)}, B's RX used pending ${b.drv.usedPending(QueueIndex.RX)}, backlog ${b.port.metrics().backlog}, A avail ${a.drv.queues[QueueIndex.TX].availIdx} device next ${a.dev.nextAvail(QueueIndex.TX)}, `
            + `B avail ${b.drv.queues[QueueIndex.RX].availIdx} device next ${b.dev.nextAvail(QueueIndex.RX)} free ${b.drv.freeDescriptors(QueueIndex.RX)}, A tx ${JSON.stringify(a.dev.metrics(QueueIndex.TX)).slice(0, 90)} B rx ${JSON.stringify(b.dev.metrics(QueueIndex.RX)).slice(0, 400)} sw ${JSON.stringify(sw.counters)} B backlog drops ${b.port.backlogDrops}`);
        }
      }
      reapRx();
      a.drv.disableInterrupts(QueueIndex.TX);
      b.drv.disableInterrupts(QueueIndex.RX);
      stalled = performance.now();
    }
    expect(got + b.port.backlogDrops).toBe(frames);
    return { fast: a.port.fastForwarded, got, dropped: b.port.backlogDrops };
  } finally {
    for (const s of side) {
      await s.loop.stop();
      for (const fd of s.kickFds) libc.close(fd);
    }
  }
}

describe("kick loops on the embedded network with drivers that kick only when asked", () => {
  it("every frame from A reaches B in order, with and without the fast path and polling", async () => {
    await fc.assert(fc.asyncProperty(fc.record({
      eventIdx: fc.boolean(),
      ringSize: fc.constantFrom(64, 256, 1024),
      maxBurst: fc.integer({ min: 1, max: 600 }),
      pollUs: fc.constantFrom(0, 0, 50),
      fastPath: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    }), async (c) => {
      await run(c, 1200);
    }), { numRuns: 10, endOnFailure: true });
  }, 120_000);

  it("the fast path carries the bulk once both addresses are learned", async () => {
    const r = await run({ eventIdx: true, ringSize: 1024, maxBurst: 64, pollUs: 0, fastPath: true, seed: 5 }, 2000);
    expect(r.fast, JSON.stringify(r)).toBeGreaterThan(1000);
    expect(r.got + r.dropped).toBe(2000);
  }, 60_000);
});
