/**
 * Software segmentation against the independent reference (test/helpers/segment-ref.ts):
 * random TCP/UDP datagrams over IPv4 (options) and IPv6 (extension headers), with VLAN tags,
 * random MSS, random TCP flags and sequence numbers, and random descriptor split points.
 * Each path the core segments on is checked byte for byte, and every frame's checksums are
 * verified with the test's own RFC 1071 code.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, GsoMask, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { decodeVirtioHdr, encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, completePartial, onesSum, pseudoHeaderSum, type BuiltFrame, type Ext } from "../../host/driver/frames.js";
import { fixture } from "../helpers/setup.js";
import { cuts, fitRoute, sourceRoute } from "../helpers/arbitraries.js";
import { referenceSegment } from "../helpers/segment-ref.js";

const BASE = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM);
const HOST_GSO = featureMask(Feature.HOST_TSO4, Feature.HOST_TSO6, Feature.HOST_ECN, Feature.HOST_USO);
const OFFER = BASE | HOST_GSO | featureMask(Feature.MRG_RXBUF, Feature.STATUS);
const RUNS = Number(process.env.VNW_PROPERTY_RUNS ?? 60);

interface Case { b: BuiltFrame; mss: number; gsoType: number; splits: number[] }

const gsoCase: fc.Arbitrary<Case> = fc.record({
  ip: fc.constantFrom<4 | 6>(4, 6),
  l4: fc.constantFrom<"tcp" | "udp">("tcp", "udp"),
  payload: fc.integer({ min: 0, max: 9000 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  vlans: fc.array(fc.constantFrom(0x8100, 0x88a8), { maxLength: 2 }),
  ipv4OptionBytes: fc.constantFrom(0, 4, 12, 40),
  ext: fc.array(fc.constantFrom<Ext>("hop", "dst", "routing", "frag"), { maxLength: 3 }),
  tcpOptionBytes: fc.constantFrom(0, 12, 40),
  tcpFlags: fc.integer({ min: 0, max: 255 }),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  mss: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 500, max: 2000 })),
  ecn: fc.boolean(),
  splits: cuts(400),
  sourceRoute,
}).map(fitRoute).map((r) => {
  const b = buildFrame({ ...r, payload: r.payload, csum: "partial" });
  const gsoType = r.l4 === "udp" ? NetHdr.GSO_UDP_L4 : (r.ip === 4 ? NetHdr.GSO_TCPV4 : NetHdr.GSO_TCPV6) | (r.ecn ? NetHdr.GSO_ECN : 0);
  return { b, mss: r.mss, gsoType, splits: r.splits };
});

function gsoHdr(c: Case) {
  return { flags: NetHdr.F_NEEDS_CSUM, gsoType: c.gsoType, gsoSize: c.mss, csumStart: c.b.l4Off, csumOffset: c.b.csumField, hdrLen: 0 };
}

/** The checksums of a segment verify (IPv4 header; L4 over pseudo-header and datagram). */
function checksumsVerify(b: BuiltFrame, seg: Uint8Array): boolean {
  const s: BuiltFrame = { ...b, frame: seg, l3End: seg.length };
  const ipOk = b.ip === 6 || onesSum(seg.subarray(b.l3Off, b.l4Off)) === 0xffff;
  return ipOk && onesSum(seg.subarray(b.l4Off), pseudoHeaderSum(s)) === 0xffff;
}

const hex = (u: Uint8Array[]) => u.map((x) => Buffer.from(x).toString("hex"));

describe("software segmentation equals the reference", () => {
  it("TX to a plain backend: complete checksums, split anywhere in the guest's buffers", () => {
    fc.assert(fc.property(gsoCase, (c) => {
      const f = fixture({ backend: BackendKind.PLAIN, features: OFFER });
      f.drv.bringUp(BASE | HOST_GSO, 64);
      f.drv.send(c.b.frame, { hdr: gsoHdr(c), splits: c.splits });
      const out = f.dev.collectTx().map((o) => o.frame);
      const want = referenceSegment(c.b, c.mss, "full");
      expect(hex(out)).toEqual(hex(want));
      for (const seg of out) expect(checksumsVerify(c.b, seg)).toBe(true);
      expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
      expect(f.dev.metrics(QueueIndex.TX)).toMatchObject({ gsoSegmented: 1, gsoSegments: want.length, packets: want.length });
    }), { numRuns: RUNS });
  });

  it("TX to a virtio_net_hdr backend without the GSO type: partial checksums the backend finishes", () => {
    fc.assert(fc.property(gsoCase, (c) => {
      const f = fixture({ backend: BackendKind.VNET_HDR, backendGso: 0, features: OFFER });
      f.drv.bringUp(BASE | HOST_GSO, 64);
      f.drv.send(c.b.frame, { hdr: gsoHdr(c), splits: c.splits });
      const out = f.dev.collectTx();
      expect(hex(out.map((o) => o.frame))).toEqual(hex(referenceSegment(c.b, c.mss, "partial")));
      for (const o of out) {
        expect(decodeVirtioHdr(o.header)).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_NONE, csumStart: c.b.l4Off, csumOffset: c.b.csumField });
        expect(checksumsVerify(c.b, completePartial(o.frame, c.b.l4Off, c.b.csumField))).toBe(true);
      }
    }), { numRuns: RUNS });
  });

  it("RX to a guest without GUEST_TSO/USO: into its buffers, merged or not, partial or complete", () => {
    fc.assert(fc.property(gsoCase, fc.boolean(), fc.boolean(), fc.integer({ min: 64, max: 3000 }), (c, guestCsum, mrg, bufLen) => {
      const f = fixture({ backend: BackendKind.VNET_HDR, guestSize: 8 << 20, features: OFFER });
      const features = featureMask(Feature.VERSION_1, Feature.MAC) | (guestCsum ? featureMask(Feature.GUEST_CSUM) : 0n)
        | (mrg ? featureMask(Feature.MRG_RXBUF) : 0n);
      f.drv.bringUp(features, 256);
      const want = referenceSegment(c.b, c.mss, guestCsum ? "partial" : "full");
      // Without MRG_RXBUF each buffer must hold a whole segment; with it, any size will do.
      const len = mrg ? bufLen : 12 + Math.max(...want.map((w) => w.length));
      f.drv.postRx(Math.min(250, mrg ? want.reduce((a, w) => a + Math.ceil((12 + w.length) / len), 0) : want.length), { parts: [len] });
      const r = f.dev.receive(c.b.frame, encodeVirtioHdr(gsoHdr(c), 12));
      f.dev.flushRx();
      const got = f.drv.receiveMerged();
      if (r.kind === "no-buffer") {
        // Only when the posted buffers (at most 250) cannot hold every segment: nothing is
        // consumed, and the port keeps the frame until the guest posts more.
        expect(got).toEqual([]);
        expect(want.reduce((a, w) => a + Math.ceil((12 + w.length) / len), 0)).toBeGreaterThan(250);
        return;
      }
      expect(r).toEqual({ kind: "delivered", length: c.b.frame.length });
      expect(got).toHaveLength(want.length);
      expect(hex(got.map((g) => g.frame))).toEqual(hex(want.slice(0, got.length)));
      for (const g of got) {
        expect(g.hdr).toMatchObject(guestCsum
          ? { flags: NetHdr.F_NEEDS_CSUM, gsoType: 0, csumStart: c.b.l4Off, csumOffset: c.b.csumField, numBuffers: g.lens.length }
          : { flags: 0, gsoType: 0, numBuffers: g.lens.length });
        // virtio 1.2, 5.1.6.4: every buffer but the last is filled completely.
        g.lens.slice(0, -1).forEach((l, i) => expect(l).toBe(g.caps[i]));
        const seg = guestCsum ? completePartial(g.frame, c.b.l4Off, c.b.csumField) : g.frame;
        expect(checksumsVerify(c.b, seg)).toBe(true);
      }
    }), { numRuns: RUNS });
  });

  it("a backend that takes the type gets the frame whole (no segmentation)", () => {
    const b = buildFrame({ ip: 4, l4: "udp", payload: new Uint8Array(3000), csum: "partial" });
    const c: Case = { b, mss: 1000, gsoType: NetHdr.GSO_UDP_L4, splits: [] };
    const f = fixture({ backend: BackendKind.VNET_HDR, backendGso: GsoMask.ALL, features: OFFER });
    f.drv.bringUp(BASE | HOST_GSO, 64);
    f.drv.send(b.frame, { hdr: gsoHdr(c) });
    const out = f.dev.collectTx();
    expect(out).toHaveLength(1);
    expect(decodeVirtioHdr(out[0].header)).toMatchObject({ gsoType: NetHdr.GSO_UDP_L4, gsoSize: 1000 });
    const g = fixture({ backend: BackendKind.VNET_HDR, features: OFFER });
    g.drv.bringUp(BASE | HOST_GSO, 64);
    g.drv.send(b.frame, { hdr: gsoHdr(c) });
    expect(g.dev.collectTx()).toHaveLength(3);
  });
});
