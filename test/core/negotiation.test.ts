import { describe, expect, it } from "vitest";
import { Feature, QueueIndex, Status } from "../../assembly/abi.js";
import type { AdoptedQueue } from "../../host/device/virtio-net.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { readFileSync } from "node:fs";
import { CTRL_OFFER, featureBit, featureList, featureMask, FULL_OFFER, parseFeatureList } from "../../host/device/features.js";
import { fixture as anyLayoutFixture, type FixtureOptions } from "../helpers/setup.js";

/** Exact feature sets are checked here: without the RING_PACKED a packed run would add. */
const fixture = (o: FixtureOptions = {}) => anyLayoutFixture({ layout: "split", ...o });

const DEFAULT = featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS, Feature.MTU, Feature.CSUM,
  Feature.GUEST_CSUM, Feature.EVENT_IDX, Feature.INDIRECT_DESC);

// virtio 1.2, 5.1.3.1, written out independently of the core's table.
const REQUIRES: [Feature, Feature[]][] = [
  [Feature.GUEST_TSO4, [Feature.GUEST_CSUM]],
  [Feature.GUEST_TSO6, [Feature.GUEST_CSUM]],
  [Feature.GUEST_ECN, [Feature.GUEST_TSO4, Feature.GUEST_TSO6]],
  [Feature.GUEST_UFO, [Feature.GUEST_CSUM]],
  [Feature.HOST_TSO4, [Feature.CSUM]],
  [Feature.HOST_TSO6, [Feature.CSUM]],
  [Feature.HOST_ECN, [Feature.HOST_TSO4, Feature.HOST_TSO6]],
  [Feature.HOST_UFO, [Feature.CSUM]],
  [Feature.CTRL_RX, [Feature.CTRL_VQ]],
  [Feature.CTRL_VLAN, [Feature.CTRL_VQ]],
  [Feature.GUEST_ANNOUNCE, [Feature.CTRL_VQ]],
  [Feature.MQ, [Feature.CTRL_VQ]],
  [Feature.CTRL_MAC_ADDR, [Feature.CTRL_VQ]],
  [Feature.RSC_EXT, [Feature.HOST_TSO4, Feature.HOST_TSO6]],
  [Feature.GUEST_USO4, [Feature.GUEST_CSUM]],
  [Feature.GUEST_USO6, [Feature.GUEST_CSUM]],
  [Feature.HOST_USO, [Feature.CSUM]],
];

describe("feature dependencies (virtio 1.2, 5.1.3.1)", () => {
  const { dev } = fixture();
  it.each(REQUIRES)("feature %i alone is refused, with any one prerequisite accepted", (f, anyOf) => {
    expect(dev.core.featureDependenciesMet(featureBit(f))).toBe(0);
    for (const p of anyOf) {
      // Prerequisites may have prerequisites of their own: include them.
      let set = featureBit(f) | featureBit(p);
      if (p === Feature.GUEST_TSO4 || p === Feature.GUEST_TSO6) set |= featureBit(Feature.GUEST_CSUM);
      if (p === Feature.HOST_TSO4 || p === Feature.HOST_TSO6) set |= featureBit(Feature.CSUM);
      expect(dev.core.featureDependenciesMet(set)).toBe(1);
    }
  });
});

describe("negotiation", () => {
  it("offers the documented default set", () => {
    expect(fixture().dev.offeredFeatures).toBe(DEFAULT);
  });

  it.each([
    ["everything offered", DEFAULT],
    ["a minimal driver (MAC only)", featureMask(Feature.MAC)],
    ["nothing", 0n],
    ["no offloads, modern", featureMask(Feature.VERSION_1, Feature.MAC, Feature.EVENT_IDX)],
  ])("accepts a valid subset: %s", (_name, set) => {
    const f = fixture();
    expect(f.drv.negotiate(set)).toBe(true);
    expect(f.dev.negotiatedFeatures).toBe(set);
    expect(f.negotiated).toEqual([set]);
  });

  it("refuses features that were not offered, leaving FEATURES_OK clear", () => {
    const f = fixture();
    expect(f.drv.negotiate(DEFAULT | featureBit(Feature.MRG_RXBUF))).toBe(false);
    expect(f.dev.status & Status.FEATURES_OK).toBe(0);
    expect(f.negotiated).toEqual([]);
  });

  it("refuses an invalid offer and an offer of unimplemented features", () => {
    const f = fixture();
    expect(f.dev.core.setOfferedFeatures(f.dev.state, featureBit(Feature.GUEST_TSO4))).toBeLessThan(0);
    // Prerequisites missing (CTRL_RX needs CTRL_VQ), and features the core does not implement.
    expect(f.dev.core.setOfferedFeatures(f.dev.state, featureMask(Feature.CTRL_RX))).toBeLessThan(0);
    expect(f.dev.core.setOfferedFeatures(f.dev.state, featureMask(Feature.CTRL_VQ, Feature.RSS))).toBeLessThan(0);
    expect(f.dev.core.setOfferedFeatures(f.dev.state, featureMask(Feature.GUEST_UFO, Feature.GUEST_CSUM))).toBeLessThan(0);
    expect(f.dev.offeredFeatures).toBe(DEFAULT);
  });

  it("uses the 10-byte legacy header without VERSION_1 and 12 bytes with it", () => {
    const f = fixture();
    f.drv.negotiate(featureMask(Feature.MAC));
    expect(f.dev.headerLength).toBe(10);
    f.drv.negotiate(featureMask(Feature.VERSION_1));
    expect(f.dev.headerLength).toBe(12);
  });

  it("cannot change driver features after FEATURES_OK", () => {
    const f = fixture();
    f.drv.negotiate(featureMask(Feature.VERSION_1));
    expect(f.dev.setDriverFeatures(DEFAULT)).toBe(false);
    expect(f.dev.negotiatedFeatures).toBe(featureMask(Feature.VERSION_1));
  });

  it("reports config space: mac, link status, max pairs, mtu", () => {
    const f = fixture({ mac: "02:11:22:33:44:55", mtu: 9000 });
    expect([0, 1, 2, 3, 4, 5].map((i) => f.dev.readConfig(i, 1))).toEqual([2, 0x11, 0x22, 0x33, 0x44, 0x55]);
    expect(f.dev.readConfig(6, 2)).toBe(1);
    expect(f.dev.readConfig(8, 2)).toBe(1);
    expect(f.dev.readConfig(10, 2)).toBe(9000);
    f.drv.bringUp(DEFAULT);
    f.dev.setLinkUp(false);
    expect(f.dev.readConfig(6, 2)).toBe(0);
    expect(f.configChanges).toBe(1);
  });

  it("rejects a bad MTU and a bad MAC with clear errors", () => {
    expect(() => fixture({ mtu: 20 })).toThrow(/invalid mtu/);
    expect(() => fixture({ mac: "zz:00:00:00:00:00" })).toThrow(/bad MAC/);
  });
});

describe("FULL_OFFER (what the back-end, the CLI and the v86 adapter offer)", () => {
  const EXTRAS = featureMask(Feature.MRG_RXBUF, Feature.HOST_TSO4, Feature.HOST_TSO6, Feature.HOST_ECN, Feature.HOST_USO,
    Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN, Feature.GUEST_USO4, Feature.GUEST_USO6, Feature.RING_PACKED, Feature.IN_ORDER);

  it("is the core's default offer plus the segmentation offloads, MRG_RXBUF, packed rings and in-order use", () => {
    expect(FULL_OFFER).toBe(DEFAULT | EXTRAS);
  });

  it("is accepted by the core, and a driver asking for MAC and STATUS under it gets FEATURES_OK", () => {
    const f = fixture({ features: FULL_OFFER, layout: "as-asked" });
    expect(f.dev.offeredFeatures).toBe(FULL_OFFER);
    expect(f.drv.negotiate(featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS))).toBe(true);
    expect(f.drv.negotiate(FULL_OFFER)).toBe(true);
    expect(f.dev.negotiatedFeatures).toBe(FULL_OFFER);
  });

  it("is what the README says it is", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8").replace(/\s+/g, " ");
    const m = readme.match(/The core's default offer is `([^`]+)`; the vhost-user back-end and CLI offer everything the core implements for the data path \(`FULL_OFFER`\): that plus (.*?), whatever the backend/);
    expect(m, "README paragraph on the default offer and FULL_OFFER").not.toBeNull();
    const names = (text: string) => parseFeatureList(text.replace(/`/g, "").replace(/\band\b/g, ",")
      .replace(/(\w+?)(\d)\/(\d)/g, "$1$2,$1$3").replace(/\s+/g, ","));
    expect(featureList(names(m![1]))).toEqual(featureList(DEFAULT));
    expect(featureList(names(m![1]) | names(m![2]))).toEqual(featureList(FULL_OFFER));
    const ctrl = readme.match(/add the control queue \(`CTRL_OFFER`: `([^`]+)`\)/);
    expect(ctrl, "README sentence on CTRL_OFFER").not.toBeNull();
    expect(featureList(names(ctrl![1]))).toEqual(featureList(CTRL_OFFER));
  });
});

describe("features without their prerequisites (what QEMU passes to vhost-user back-ends)", () => {
  const { dev } = fixture();
  it.each(REQUIRES)("feature %i is dropped when none of its prerequisites is there, kept otherwise", (f, anyOf) => {
    expect(dev.core.featureWithoutUnmet(featureBit(f))).toBe(0n);
    let set = featureBit(f) | featureBit(anyOf[0]);
    if (anyOf[0] === Feature.GUEST_TSO4 || anyOf[0] === Feature.GUEST_TSO6) set |= featureBit(Feature.GUEST_CSUM);
    if (anyOf[0] === Feature.HOST_TSO4 || anyOf[0] === Feature.HOST_TSO6) set |= featureBit(Feature.CSUM);
    expect(dev.core.featureWithoutUnmet(set)).toBe(set);
  });

  it("turns QEMU's csum=off,guest_csum=off set into a valid one", () => {
    const qemu = 0x130003b80n; // seen from QEMU 7.2: TSO4/6 and ECN both ways, no CSUM, no GUEST_CSUM
    const fixed = dev.core.featureWithoutUnmet(qemu);
    expect(fixed).toBe(featureMask(Feature.INDIRECT_DESC, Feature.EVENT_IDX, Feature.VERSION_1));
    expect(dev.core.featureDependenciesMet(fixed)).toBe(1);
  });
});

describe("adopt(): taking over a negotiation a front-end already did", () => {
  const FEATURES = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.EVENT_IDX);
  const frame = (n: number) => buildFrame({ ip: 4, l4: "udp", payload: payload(32 + n) }).frame;
  const queuesOf = (f: ReturnType<typeof fixture>) => [QueueIndex.RX, QueueIndex.TX].map((q) => {
    const r = f.drv.queues[q];
    return { size: r.size, desc: r.desc, avail: r.avail, used: r.used, nextAvail: f.dev.nextAvail(q) };
  }) as [AdoptedQueue, AdoptedQueue];

  it("replays features, queues and DRIVER_OK, resuming each ring where it stopped", () => {
    const f = fixture();
    f.drv.bringUp(FEATURES, 64);
    for (let i = 0; i < 3; i++) f.drv.send(frame(i));
    expect(f.dev.collectTx()).toHaveLength(3);
    const queues = queuesOf(f);
    expect(queues[QueueIndex.TX].nextAvail).toBe(3);
    f.dev.adopt({ features: FEATURES, queues });
    expect(f.dev.status).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    expect(f.dev.negotiatedFeatures).toBe(FEATURES);
    f.drv.send(frame(7));
    const after = f.dev.collectTx();
    // Only the new frame: nothing before the resume index is read again.
    expect(after.map((o) => o.frame.length)).toEqual([frame(7).length]);
    f.drv.postRx(1);
    expect(f.dev.receive(frame(1)).kind).toBe("delivered");
  });

  it("without queues stops at FEATURES_OK (vhost-user's SET_FEATURES before the rings)", () => {
    const f = fixture();
    f.dev.adopt({ features: FEATURES });
    expect(f.dev.status).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    expect(f.negotiated).toEqual([FEATURES]);
  });

  it("refuses features that were not offered with a DeviceError, leaving the device reset", () => {
    const f = fixture();
    expect(() => f.dev.adopt({ features: FEATURES | featureBit(Feature.MRG_RXBUF) }))
      .toThrow(expect.objectContaining({ kind: "features-refused" }) as Error);
    expect(f.dev.status).toBe(0);
  });

  it("refuses a queue outside guest RAM with a DeviceError naming the queue", () => {
    const f = fixture();
    f.drv.bringUp(FEATURES, 64);
    const queues = queuesOf(f);
    queues[QueueIndex.TX] = { ...queues[QueueIndex.TX], desc: 1n << 40n };
    expect(() => f.dev.adopt({ features: FEATURES, queues })).toThrow(/queue 1: rings are not in guest memory/);
    expect(f.dev.status).toBe(0);
  });
});
