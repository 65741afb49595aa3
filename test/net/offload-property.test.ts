/**
 * Property tests of checksum offload translation (issue: "works for every guest"): random
 * frames split across 1..8 buffers, every backend kind, guests with and without the offload
 * features. After the device and then the receiver's own completion rule, the L4 checksum
 * (and the IPv4 header checksum) verify against the independent reference, and no other byte
 * of the frame changed.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex, TunHdr } from "../../assembly/abi.js";
import { decodeTunHdr, decodeVirtioHdr, encodeTunHdr, encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { cuts, frameSpec } from "../helpers/arbitraries.js";
import { diffOutside } from "../helpers/complete.js";
import { buildFrame, ipv4HeaderValid, l4ChecksumValid, completePartial } from "../../host/driver/frames.js";
import { fixture, type Fixture } from "../helpers/setup.js";

const BASE = featureMask(Feature.VERSION_1, Feature.MAC, Feature.INDIRECT_DESC, Feature.EVENT_IDX);
const CSUM = featureMask(Feature.CSUM);
const GUEST_CSUM = featureMask(Feature.GUEST_CSUM);
const BACKENDS = [BackendKind.PLAIN, BackendKind.VNET_HDR, BackendKind.TUN_HDR];

/** One device per (backend, features), reused across runs: 32 MiB of guest RAM each. */
const devices = new Map<string, Fixture>();
function device(backend: BackendKind, features: bigint): Fixture {
  const key = `${backend}/${features}`;
  let f = devices.get(key);
  if (!f || f.drv.queues.length === 0) {
    f = fixture({ backend, guestSize: 32 << 20 });
    f.drv.bringUp(BASE | features, 256);
    devices.set(key, f);
  }
  return f;
}

describe("TX: guest partial checksums reach the wire complete", () => {
  it("for every backend, frame shape and split", () => {
    fc.assert(fc.property(frameSpec, cuts(300), fc.constantFrom(...BACKENDS), fc.boolean(),
      (spec, at, backend, separateHeader) => {
        const b = buildFrame({ ...spec, csum: "partial" });
        const f = device(backend, CSUM);
        f.drv.send(b.frame, {
          hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField },
          splits: at, separateHeader,
        });
        const out = f.dev.collectTx();
        f.drv.takeUsed(QueueIndex.TX);
        expect(out.length).toBe(1);
        let wire = out[0].frame;
        if (backend === BackendKind.VNET_HDR) {
          const h = decodeVirtioHdr(out[0].header);
          if (h.flags & NetHdr.F_NEEDS_CSUM) wire = completePartial(wire, h.csumStart, h.csumOffset);
        } else if (backend === BackendKind.TUN_HDR) {
          const th = decodeTunHdr(out[0].header);
          if (th.flags & (TunHdr.F_TCP_CSUM | TunHdr.F_UDP_CSUM)) wire = completePartial(wire, b.l4Off, b.csumField);
          // tun_hdr can only name TCP and UDP, and only for the real TCP/UDP header.
          if (th.flags & TunHdr.F_TCP_CSUM) expect(b.proto).toBe(6);
          if (th.flags & TunHdr.F_UDP_CSUM) expect(b.proto).toBe(17);
        }
        expect(l4ChecksumValid(b, wire)).toBe(true);
        expect(diffOutside(wire, b.frame, [[b.l4Off + b.csumField, 2]])).toEqual([]);
      }), { numRuns: 300 });
  });

  it("with a guest that negotiated nothing and sends complete frames, nothing is changed", () => {
    fc.assert(fc.property(frameSpec, cuts(300), fc.constantFrom(...BACKENDS), (spec, at, backend) => {
      const b = buildFrame({ ...spec, csum: "full" });
      const f = device(backend, 0n);
      f.drv.send(b.frame, { splits: at });
      const [out] = f.dev.collectTx();
      f.drv.takeUsed(QueueIndex.TX);
      expect(Array.from(out.frame)).toEqual(Array.from(b.frame));
      if (backend !== BackendKind.PLAIN) expect(out.header.every((x) => x === 0)).toBe(true);
    }), { numRuns: 100 });
  });
});

describe("RX: frames reach the guest complete or correctly flagged", () => {
  it("for every backend, frame shape, buffer split, with and without GUEST_CSUM", () => {
    fc.assert(fc.property(frameSpec, cuts(2000), fc.constantFrom(...BACKENDS), fc.boolean(), fc.boolean(),
      (spec, at, backend, guestCsum, ipv4Csum) => {
        const f = device(backend, guestCsum ? CSUM | GUEST_CSUM : 0n);
        const partial = backend !== BackendKind.PLAIN;
        const b = buildFrame({ ...spec, csum: partial ? (spec.l4 === "icmp" && backend === BackendKind.TUN_HDR ? "zero" : "partial") : "full" });
        let header: Uint8Array | undefined;
        const sent = b.frame.slice();
        if (backend === BackendKind.VNET_HDR) {
          header = encodeVirtioHdr({ flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField });
        } else if (backend === BackendKind.TUN_HDR) {
          let flags = spec.l4 === "tcp" ? TunHdr.F_TCP_CSUM : spec.l4 === "udp" ? TunHdr.F_UDP_CSUM : TunHdr.F_ICMP_CSUM;
          if (ipv4Csum && spec.ip === 4) {
            flags |= TunHdr.F_IPV4_CSUM;
            sent[b.l3Off + 10] = 0;
            sent[b.l3Off + 11] = 0;
          }
          header = encodeTunHdr({ flags });
        }
        // Buffers: a 2048-byte chain split at random points.
        const points = [0, ...at.filter((c) => c < 2048).sort((x, y) => x - y), 2048];
        const parts = points.slice(1).map((p, i) => p - points[i]).filter((n) => n > 0);
        f.drv.postRx(1, { parts });
        expect(f.dev.receive(sent, header)).toEqual({ kind: "delivered", length: b.frame.length });
        f.dev.flushRx();
        const [rx] = f.drv.receiveAll();
        let frame = rx.frame;
        expect(rx.hdr.numBuffers).toBe(1);
        if (!guestCsum) expect(rx.hdr.flags).toBe(0); // virtio 1.2, 5.1.6.4.1
        if (rx.hdr.flags & NetHdr.F_NEEDS_CSUM) {
          expect(rx.hdr.csumStart).toBe(b.l4Off);
          frame = completePartial(frame, rx.hdr.csumStart, rx.hdr.csumOffset);
        }
        expect(l4ChecksumValid(b, frame)).toBe(true);
        if (b.ip === 4) expect(ipv4HeaderValid(b, frame)).toBe(true);
        expect(diffOutside(frame, b.frame, [[b.l4Off + b.csumField, 2]])).toEqual([]);
      }), { numRuns: 300 });
  });
});
