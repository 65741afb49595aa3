/**
 * Mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF, virtio 1.2, 5.1.6.3-5.1.6.4): a packet
 * spans as many buffers as it needs, num_buffers says how many, all but the last are filled
 * completely; buffers the device holds for the next packets go back to the ring when it stops.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, Metric, QueueIndex } from "../../assembly/abi.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture } from "../helpers/setup.js";

const OFFER = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM, Feature.MRG_RXBUF, Feature.GUEST_TSO4);
const MRG = featureMask(Feature.VERSION_1, Feature.MAC, Feature.MRG_RXBUF);

describe("MRG_RXBUF", () => {
  it("spreads a 1514-byte frame over 256-byte buffers: num_buffers 6, all but the last full", () => {
    const f = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    f.drv.bringUp(MRG, 64);
    f.drv.postRx(16, { parts: [256] });
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(1472) });
    expect(f.dev.receive(b.frame, encodeVirtioHdr({}, 12))).toEqual({ kind: "delivered", length: 1514 });
    f.dev.flushRx();
    const [got, ...rest] = f.drv.receiveMerged();
    expect(rest).toEqual([]);
    expect(got.hdr.numBuffers).toBe(6);
    expect(got.lens).toEqual([256, 256, 256, 256, 256, 1526 - 5 * 256]);
    expect(Buffer.from(got.frame).equals(Buffer.from(b.frame))).toBe(true);
    expect(f.dev.metrics(QueueIndex.RX).buffersMerged).toBe(5);
  });

  it("buffers split into several descriptors and indirect tables merge the same way", () => {
    const f = fixture({ backend: BackendKind.VNET_HDR, features: OFFER | featureMask(Feature.INDIRECT_DESC) });
    f.drv.bringUp(MRG | featureMask(Feature.INDIRECT_DESC), 64);
    f.drv.postRx(8, { parts: [5, 100, 95], indirect: true });
    const b = buildFrame({ ip: 6, l4: "tcp", payload: payload(500) });
    f.dev.receive(b.frame, encodeVirtioHdr({}, 12));
    f.dev.flushRx();
    const [got] = f.drv.receiveMerged();
    expect(got.hdr.numBuffers).toBe(Math.ceil((12 + b.frame.length) / 200));
    got.lens.slice(0, -1).forEach((l) => expect(l).toBe(200));
    expect(Buffer.from(got.frame).equals(Buffer.from(b.frame))).toBe(true);
  });

  it("without MRG_RXBUF: num_buffers is 1 and a frame larger than the buffer is dropped, not split", () => {
    const f = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC), 64);
    f.drv.postRx(4, { parts: [600] });
    const small = buildFrame({ ip: 4, l4: "udp", payload: payload(400) });
    const big = buildFrame({ ip: 4, l4: "udp", payload: payload(1000) });
    expect(f.dev.receive(big.frame, encodeVirtioHdr({}, 12))).toEqual({ kind: "dropped", reason: Metric.DROP_BUFFER_TOO_SMALL });
    expect(f.dev.receive(small.frame, encodeVirtioHdr({}, 12)).kind).toBe("delivered");
    f.dev.flushRx();
    const got = f.drv.receiveMerged();
    expect(got.map((g) => [g.hdr.numBuffers, g.lens.length])).toEqual([[1, 1]]);
  });

  it("the tap path waits for room for a 64 KiB frame when GUEST_TSO is on, unless the ring can give no more", () => {
    const f = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    f.drv.bringUp(MRG | featureMask(Feature.CSUM, Feature.GUEST_CSUM, Feature.GUEST_TSO4), 64);
    f.drv.postRx(10, { parts: [1536] });
    expect(f.dev.rxNext()).toBe(0);
    f.drv.postRx(40, { parts: [1536] });
    expect(f.dev.rxNext()).toBeGreaterThan(0);
    expect(f.dev.rxCapacity()).toBeGreaterThanOrEqual(12 + 65553);
    f.dev.rxAbort();

    const g = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    g.drv.bringUp(MRG | featureMask(Feature.CSUM, Feature.GUEST_CSUM, Feature.GUEST_TSO4), 16);
    g.drv.postRx(16, { parts: [1536] });
    expect(g.dev.rxNext()).toBe(16);
  });

  it("buffers held for the next packet go back to the ring when the queue stops (GET_VRING_BASE)", () => {
    const f = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    f.drv.bringUp(MRG, 64);
    f.drv.postRx(8, { parts: [256] });
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(300) });
    f.dev.receive(b.frame, encodeVirtioHdr({}, 12));
    const c = f.dev.core;
    // The next available position (a packed ring's comes with wrap counters and the used position).
    const next = () => f.dev.nextAvail(QueueIndex.RX) & (f.drv.packedRings ? 0x7fff : 0xffff);
    // Two buffers used; the device may hold more, but reports only what it consumed.
    expect(next()).toBe(2);
    expect(c.queueEnable(f.dev.state, QueueIndex.RX, 0)).toBe(0);
    expect(next()).toBe(2);
    expect(c.queueEnable(f.dev.state, QueueIndex.RX, 1)).toBe(0);
    f.dev.receive(b.frame, encodeVirtioHdr({}, 12));
    f.dev.flushRx();
    const got = f.drv.receiveMerged();
    expect(got.map((g) => g.hdr.numBuffers)).toEqual([2, 2]);
    expect(next()).toBe(4);
  });
});
