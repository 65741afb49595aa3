/**
 * VIRTIO_F_IN_ORDER (virtio 1.2, 2.7.9 / 2.8.20): a device that negotiated it uses the buffers
 * of each queue in the order they were made available. Property: whatever mix of frames goes
 * both ways — TX frames in several descriptors, frames held back by the backend (RETRY) and
 * taken again, RX frames over mergeable buffers, frames too big for the buffers and dropped — the
 * ids the device returns on each queue are exactly the heads the driver made available, in the
 * same order. On both ring layouts (VNW_RING=packed runs it on packed rings).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Code, Feature, QueueIndex } from "../../assembly/abi.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask, FULL_OFFER, hasFeature } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture } from "../helpers/setup.js";

type Op =
  | { kind: "tx"; size: number; parts: number }
  | { kind: "txHeld" }
  | { kind: "rx"; size: number }
  | { kind: "post"; count: number; part: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("tx" as const), size: fc.integer({ min: 60, max: 1514 }), parts: fc.integer({ min: 1, max: 3 }) }), weight: 3 },
  { arbitrary: fc.constant({ kind: "txHeld" as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("rx" as const), size: fc.oneof(fc.integer({ min: 60, max: 1514 }), fc.integer({ min: 1515, max: 9000 })) }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant("post" as const), count: fc.integer({ min: 1, max: 12 }), part: fc.constantFrom(256, 1536, 2048) }), weight: 3 },
);

describe("IN_ORDER: buffers used in the order they were made available", () => {
  it("is offered with the full offer and negotiable", () => {
    expect(hasFeature(FULL_OFFER, Feature.IN_ORDER)).toBe(true);
  });

  it("every queue returns exactly the heads it was given, in order, whatever the traffic", () => {
    fc.assert(fc.property(fc.boolean(), fc.array(op, { minLength: 40, maxLength: 150, size: "max" }), (mrg, ops) => {
      const f = fixture({ backend: BackendKind.VNET_HDR, features: FULL_OFFER });
      const features = featureMask(Feature.VERSION_1, Feature.MAC, Feature.IN_ORDER, ...(mrg ? [Feature.MRG_RXBUF] : []));
      f.drv.bringUp(features, 64);
      expect(hasFeature(f.dev.negotiatedFeatures, Feature.IN_ORDER)).toBe(true);
      const made: Record<number, number[]> = { [QueueIndex.RX]: [], [QueueIndex.TX]: [] };
      const used: Record<number, number[]> = { [QueueIndex.RX]: [], [QueueIndex.TX]: [] };
      let rxPosted = 0;
      let txQueued = 0;
      const collect = () => {
        for (const q of [QueueIndex.RX, QueueIndex.TX]) for (const u of f.drv.takeUsed(q)) used[q].push(u.id);
      };
      for (const o of ops) {
        if (o.kind === "tx" && txQueued < 60) {
          made[QueueIndex.TX].push(f.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(o.size - 42) }).frame, { splits: o.parts > 1 ? [14, 34].slice(0, o.parts - 1) : undefined }));
          txQueued++;
          // Every other TX round the backend takes one frame and then pushes back.
          let n = 0;
          f.dev.processTx(() => (n++ === 0 ? 0 : Code.RETRY));
        } else if (o.kind === "txHeld") {
          f.dev.processTx(() => Code.RETRY);
        } else if (o.kind === "post" && rxPosted + o.count <= 64) {
          made[QueueIndex.RX].push(...f.drv.postRx(o.count, { parts: [o.part] }));
          rxPosted += o.count;
        } else if (o.kind === "rx") {
          const r = f.dev.receive(buildFrame({ ip: 4, l4: "udp", payload: payload(o.size - 42) }).frame, encodeVirtioHdr({}, 12));
          if (r.kind === "delivered" || r.kind === "dropped") f.dev.flushRx();
        }
        collect();
        // What is outstanding on each ring (the driver model reuses ids once they came back).
        txQueued = made[QueueIndex.TX].length - used[QueueIndex.TX].length;
        rxPosted = made[QueueIndex.RX].length - used[QueueIndex.RX].length;
      }
      f.dev.processTx(() => 0);
      f.dev.flushRx();
      collect();
      for (const q of [QueueIndex.RX, QueueIndex.TX]) {
        // What came back is a prefix of what was made available, in the same order.
        expect(used[q], `queue ${q}`).toEqual(made[q].slice(0, used[q].length));
      }
      expect(used[QueueIndex.TX]).toEqual(made[QueueIndex.TX]);
    }), { numRuns: 300, seed: 35 });
  });
});
