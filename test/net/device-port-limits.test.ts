/**
 * Rate limits on the embedded network (DevicePort), on a fake clock: a TX-limited guest's frames
 * stay on its ring until tokens return (none dropped, order kept); an RX-limited guest's frames
 * wait in its port's queue and arrive in order later; a limited port leaves the core's fast path
 * (which would not ask the limiter).
 */
import { describe, expect, it, vi } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { RateLimiter } from "../../host/device/rate-limiter.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { Switch } from "../../host/net/switch.js";

const FEATURES = featureMask(Feature.VERSION_1, Feature.MAC);
const MACS = [Uint8Array.of(2, 0, 0, 0, 0, 1), Uint8Array.of(2, 0, 0, 0, 0, 2)];

function pair() {
  const mem = createGuestMemory({ guestSize: 8 << 20, devices: 2 });
  const half = mem.guestSize / 2;
  const sw = new Switch();
  const guests = [0, 1].map((i) => {
    const regions = [{ gpa: 0n, size: half, wasm: mem.guestBase + i * half }];
    const dev = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[i], regions, backend: BackendKind.VNET_HDR });
    const drv = new GuestDriver({ memory: mem.memory, regions }, dev, i + 1);
    drv.bringUp(FEATURES, 64);
    drv.postRx(32);
    return { dev, drv, port: new DevicePort(`guest${i}`, dev, sw) };
  });
  // Both addresses learned, so the fast path would be usable without limits.
  for (const [i, g] of guests.entries()) {
    g.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(10), srcMac: MACS[i], dstMac: MACS[1 - i] }).frame);
    g.port.pumpTx();
    guests[1 - i].drv.receiveAll();
  }
  return { sw, guests };
}

const frame = (n: number) => buildFrame({ ip: 4, l4: "udp", payload: payload(900, n), srcMac: MACS[0], dstMac: MACS[1] }).frame;
const hex = (u: Uint8Array) => Buffer.from(u).toString("hex");

describe("rate limits on the embedded network", () => {
  it("TX: frames over the limit stay on the sender's ring and go, in order, when tokens return", () => {
    let t = 0;
    const { guests: [a, b] } = pair();
    a.port.limits = { tx: new RateLimiter({ ops: { size: 3, refillMs: 30 } }, () => t) };
    for (let i = 0; i < 8; i++) a.drv.send(frame(i));
    expect(a.port.pumpTx()).toBe(3);
    expect(a.port.fastForwarded).toBe(0);
    t = 30;
    expect(a.port.pumpTx()).toBe(3);
    t = 60;
    expect(a.port.pumpTx()).toBe(2);
    expect(b.drv.receiveAll().map((r) => hex(r.frame))).toEqual(Array.from({ length: 8 }, (_, i) => hex(frame(i))));
    expect(a.dev.metrics(QueueIndex.TX).packets).toBe(1 + 8); // the learning frame, then these
  });

  it("RX: frames over the receiver's limit wait in its queue and arrive in order", () => {
    let t = 0;
    const { guests: [a, b] } = pair();
    b.port.limits = { rx: new RateLimiter({ bytes: { size: 2000, refillMs: 100 } }, () => t) };
    for (let i = 0; i < 5; i++) a.drv.send(frame(i));
    a.port.pumpTx();
    expect(b.drv.receiveAll()).toHaveLength(2);
    t = 100;
    b.port.pumpRx();
    expect(b.drv.receiveAll()).toHaveLength(2);
    t = 200;
    b.port.pumpRx();
    const last = b.drv.receiveAll();
    expect(last.map((r) => hex(r.frame))).toEqual([hex(frame(4))]);
    expect(b.port.metrics().backlogDrops).toBe(0);
  });

  it("a closed port's pending retry never runs (its device may be freed by then)", () => {
    vi.useFakeTimers();
    try {
      let t = 0;
      const { sw, guests: [a] } = pair();
      a.port.limits = { tx: new RateLimiter({ ops: { size: 1, refillMs: 50 } }, () => t) };
      for (let i = 0; i < 3; i++) a.drv.send(frame(i));
      expect(a.port.pumpTx()).toBe(1);
      const sent = a.dev.metrics(QueueIndex.TX).packets;
      a.port.close();
      t = 1000;
      vi.advanceTimersByTime(1000);
      expect(a.dev.metrics(QueueIndex.TX).packets).toBe(sent);
      // And the retry does run for a port that stays.
      const { guests: [c] } = pair();
      c.port.limits = { tx: new RateLimiter({ ops: { size: 1, refillMs: 50 } }, () => t) };
      for (let i = 0; i < 2; i++) c.drv.send(frame(i));
      c.port.pumpTx();
      t += 100;
      vi.advanceTimersByTime(100);
      expect(c.dev.metrics(QueueIndex.TX).packets).toBe(1 + 2);
      expect(sw.counters.dropped).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
