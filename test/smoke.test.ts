import { describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../assembly/abi.js";
import { featureMask } from "../host/device/features.js";
import { fixture } from "./helpers/setup.js";
import { buildFrame, payload } from "./helpers/frames.js";

describe("smoke", () => {
  it("sends and receives one frame", () => {
    const f = fixture();
    f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC));
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(100) });
    f.drv.send(b.frame);
    const out = f.dev.collectTx();
    expect(out.length).toBe(1);
    expect(Array.from(out[0].frame)).toEqual(Array.from(b.frame));
    f.drv.postRx(2);
    expect(f.dev.receive(b.frame).kind).toBe("delivered");
    f.dev.flushRx();
    const rx = f.drv.receiveAll();
    expect(rx.length).toBe(1);
    expect(Array.from(rx[0].frame)).toEqual(Array.from(b.frame));
    expect(rx[0].hdr.numBuffers).toBe(1);
    expect(f.drv.takeUsed(QueueIndex.TX).length).toBe(1);
  });
});
