/** Table tests of the offload rules, one behaviour per case, with the counters each must move. */
import { describe, expect, it } from "vitest";
import { BackendKind, CsumPolicy, Feature, Metric, NetHdr, QueueIndex, TunHdr } from "../../assembly/abi.js";
import { decodeTunHdr, decodeVirtioHdr, encodeTunHdr, encodeVirtioHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, DEVICE_MAC, ipv4HeaderValid, l4ChecksumValid, payload, PEER_MAC, type BuiltFrame, completePartial, decodeFrame } from "../../host/driver/frames.js";
import { fixture, type Fixture, type FixtureOptions } from "../helpers/setup.js";

const BASE = featureMask(Feature.VERSION_1, Feature.MAC);
const CSUM = featureMask(Feature.CSUM);
const GUEST_CSUM = featureMask(Feature.GUEST_CSUM);

function up(features: bigint, opts: FixtureOptions = {}): Fixture {
  const f = fixture(opts);
  f.drv.bringUp(BASE | features, 64);
  return f;
}

const tcp4 = () => buildFrame({ ip: 4, l4: "tcp", payload: payload(500), csum: "partial" });
const needsCsum = (b: BuiltFrame, start = b.l4Off, off = b.csumField) =>
  ({ flags: NetHdr.F_NEEDS_CSUM, csumStart: start, csumOffset: off });

function tx(f: Fixture, b: BuiltFrame, hdr: Parameters<Fixture["drv"]["send"]>[1] = {}) {
  f.drv.send(b.frame, hdr);
  const out = f.dev.collectTx();
  f.drv.takeUsed(QueueIndex.TX);
  return out;
}

describe("TX policy for NEEDS_CSUM without negotiated CSUM", () => {
  it.each([BackendKind.PLAIN, BackendKind.VNET_HDR, BackendKind.TUN_HDR])("default COMPLETE finishes it in software (backend %i)", (backend) => {
    const f = up(0n, { backend });
    const b = tcp4();
    const [out] = tx(f, b, { hdr: needsCsum(b) });
    expect(l4ChecksumValid(b, out.frame)).toBe(true);
    if (backend !== BackendKind.PLAIN) expect(out.header.every((x) => x === 0)).toBe(true);
    const m = f.dev.metrics(QueueIndex.TX);
    expect([m.csumUnnegotiated, m.csumSoftware, m.csumOffloaded]).toEqual([1, 1, 0]);
  });

  it("DROP drops and counts", () => {
    const f = up(0n, { csumPolicy: CsumPolicy.DROP, backend: BackendKind.VNET_HDR });
    const b = tcp4();
    expect(tx(f, b, { hdr: needsCsum(b) })).toEqual([]);
    expect(f.dev.metrics(QueueIndex.TX).dropCsumPolicy).toBe(1);
  });

  it("PASS hands the partial checksum on as if negotiated", () => {
    const f = up(0n, { csumPolicy: CsumPolicy.PASS, backend: BackendKind.VNET_HDR });
    const b = tcp4();
    const [out] = tx(f, b, { hdr: needsCsum(b) });
    expect(decodeVirtioHdr(out.header)).toMatchObject(needsCsum(b));
    expect(f.dev.metrics(QueueIndex.TX).csumOffloaded).toBe(1);
  });

  it("PASS still finishes it in software for a plain backend", () => {
    const f = up(0n, { csumPolicy: CsumPolicy.PASS });
    const b = tcp4();
    const [out] = tx(f, b, { hdr: needsCsum(b) });
    expect(l4ChecksumValid(b, out.frame)).toBe(true);
  });
});

describe("TX translation with CSUM negotiated", () => {
  it("passes a valid header through to a virtio_net_hdr backend, clearing flags it must not carry", () => {
    const f = up(CSUM, { backend: BackendKind.VNET_HDR });
    const b = tcp4();
    const [out] = tx(f, b, { hdr: { ...needsCsum(b), flags: NetHdr.F_NEEDS_CSUM | NetHdr.F_DATA_VALID | 0x40, hdrLen: 54, numBuffers: 7 } });
    expect(decodeVirtioHdr(out.header)).toEqual({ ...needsCsum(b), gsoType: 0, hdrLen: 0, gsoSize: 0, numBuffers: 0 });
    expect(Array.from(out.frame)).toEqual(Array.from(b.frame)); // untouched: nobody computed anything
  });

  it.each([
    ["TCP/IPv4", { ip: 4, l4: "tcp" }, TunHdr.F_TCP_CSUM],
    ["UDP/IPv4", { ip: 4, l4: "udp" }, TunHdr.F_UDP_CSUM],
    ["TCP/IPv6 behind extension headers", { ip: 6, l4: "tcp", ext: ["hop", "routing", "dst"] }, TunHdr.F_TCP_CSUM],
    ["UDP/IPv6 in QinQ", { ip: 6, l4: "udp", vlans: [0x88a8, 0x8100] }, TunHdr.F_UDP_CSUM],
    ["TCP/IPv4 with options", { ip: 4, l4: "tcp", ipv4OptionBytes: 40 }, TunHdr.F_TCP_CSUM],
  ] as const)("maps NEEDS_CSUM to tun_hdr for %s", (_n, spec, flag) => {
    const f = up(CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ...spec, payload: payload(300), csum: "partial", ext: "ext" in spec ? [...spec.ext] : [], vlans: "vlans" in spec ? [...spec.vlans] : [] });
    const [out] = tx(f, b, { hdr: needsCsum(b), splits: [20, 41] });
    expect(decodeTunHdr(out.header)).toEqual({ flags: flag, vtag: 0, mss: 0 });
    expect(Array.from(out.frame)).toEqual(Array.from(b.frame));
    expect(f.dev.metrics(QueueIndex.TX).csumOffloaded).toBe(1);
  });

  it.each([
    ["ICMP (tun_hdr has no way to ask for it)", { ip: 4, l4: "icmp" }, undefined, undefined],
    ["a TCP frame whose csum_offset names the UDP field", { ip: 4, l4: "tcp" }, undefined, 6],
    ["a UDP frame whose csum_start is not the UDP header", { ip: 4, l4: "udp" }, 30, undefined],
  ] as const)("finishes in software what tun_hdr cannot say: %s", (_n, spec, start, off) => {
    const f = up(CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ...spec, payload: payload(120), csum: "partial" });
    const s = start ?? b.l4Off;
    const o = off ?? b.csumField;
    const [out] = tx(f, b, { hdr: needsCsum(b, s, o) });
    expect(decodeTunHdr(out.header).flags).toBe(0);
    // The device did exactly what the guest asked: the sum from s stored at s + o.
    expect(Array.from(out.frame)).toEqual(Array.from(completePartial(b.frame, s, o)));
    expect(f.dev.metrics(QueueIndex.TX).csumSoftware).toBe(1);
  });

  it.each([
    ["csum_start past the frame", 2000, 16],
    ["csum_offset field past the frame", 40, 1500],
    ["field straddling the end", 0, 0xffff],
  ])("drops %s and counts it, never writing outside the frame", (_n, start, off) => {
    const f = up(CSUM);
    const b = tcp4();
    expect(tx(f, b, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: start, csumOffset: off } })).toEqual([]);
    expect(f.dev.metrics(QueueIndex.TX).dropBadCsumOffsets).toBe(1);
  });

  it("drops GSO frames from a guest that did not negotiate HOST_TSO4 and counts them", () => {
    const f = up(CSUM, { backend: BackendKind.VNET_HDR });
    const b = tcp4();
    expect(tx(f, b, { hdr: { ...needsCsum(b), gsoType: NetHdr.GSO_TCPV4, gsoSize: 1448 } })).toEqual([]);
    expect(f.dev.metrics(QueueIndex.TX).dropGsoUnsupported).toBe(1);
  });

  it("ignores csum_start/csum_offset without NEEDS_CSUM (virtio 1.2, 5.1.6.2.2)", () => {
    const f = up(CSUM, { backend: BackendKind.VNET_HDR });
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(40) });
    const [out] = tx(f, b, { hdr: { flags: 0, csumStart: 9999, csumOffset: 9999 } });
    expect(decodeVirtioHdr(out.header).flags).toBe(0);
    expect(f.dev.metrics(QueueIndex.TX).csumNone).toBe(1);
  });
});

describe("RX translation", () => {
  function rx(f: Fixture, frame: Uint8Array, header?: Uint8Array) {
    f.drv.postRx(1, { parts: [12, 30, 2000] });
    const r = f.dev.receive(frame, header);
    f.dev.flushRx();
    return { r, got: f.drv.receiveAll() };
  }

  it("hands a virtio_net_hdr partial checksum to a GUEST_CSUM guest untouched", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.VNET_HDR });
    const b = tcp4();
    const { got } = rx(f, b.frame, encodeVirtioHdr(needsCsum(b)));
    expect(got[0].hdr).toMatchObject({ ...needsCsum(b), numBuffers: 1 });
    expect(Array.from(got[0].frame)).toEqual(Array.from(b.frame));
  });

  it("passes DATA_VALID only to a GUEST_CSUM guest", () => {
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(40) });
    const a = up(CSUM | GUEST_CSUM, { backend: BackendKind.VNET_HDR });
    expect(rx(a, b.frame, encodeVirtioHdr({ flags: NetHdr.F_DATA_VALID })).got[0].hdr.flags).toBe(NetHdr.F_DATA_VALID);
    const c = up(0n, { backend: BackendKind.VNET_HDR });
    expect(rx(c, b.frame, encodeVirtioHdr({ flags: NetHdr.F_DATA_VALID })).got[0].hdr.flags).toBe(0);
  });

  it("drops a backend header with csum offsets outside the frame, keeping the buffer", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.VNET_HDR });
    const b = tcp4();
    const { r } = rx(f, b.frame, encodeVirtioHdr({ flags: NetHdr.F_NEEDS_CSUM, csumStart: 5000, csumOffset: 16 }));
    expect(r).toEqual({ kind: "dropped", reason: Metric.DROP_BAD_CSUM_OFFSETS });
    expect(f.dev.receive(b.frame, encodeVirtioHdr({})).kind).toBe("delivered");
  });

  it("segments GSO from the backend for a guest that did not negotiate GUEST_TSO4 (partial checksums for GUEST_CSUM)", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.VNET_HDR });
    const b = tcp4();
    f.drv.postRx(2);
    const { r, got } = rx(f, b.frame, encodeVirtioHdr({ ...needsCsum(b), gsoType: NetHdr.GSO_TCPV4, gsoSize: 200 }));
    expect(r).toEqual({ kind: "delivered", length: b.frame.length });
    expect(got.map((g) => g.frame.length)).toEqual([b.l4Off + 20 + 200, b.l4Off + 20 + 200, b.l4Off + 20 + 100]);
    for (const g of got) {
      expect(g.hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_NONE, csumStart: b.l4Off, csumOffset: 16 });
      const done = completePartial(g.frame.slice(), b.l4Off, 16);
      const ip = decodeFrame(done).ip!;
      expect(l4ChecksumValid(ip, done)).toBe(true);
      expect(ipv4HeaderValid(ip, done)).toBe(true);
    }
    expect(f.dev.metrics(QueueIndex.RX)).toMatchObject({ gsoSegmented: 1, gsoSegments: 3, dropGsoUnsupported: 0 });
  });

  it("tun_hdr TCP_CSUM becomes NEEDS_CSUM with offsets found by parsing (VLAN, IPv4 options)", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(100), vlans: [0x8100], ipv4OptionBytes: 12, csum: "partial" });
    const { got } = rx(f, b.frame, encodeTunHdr({ flags: TunHdr.F_TCP_CSUM }));
    expect(got[0].hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, csumStart: 14 + 4 + 32, csumOffset: 16 });
    expect(f.dev.metrics(QueueIndex.RX).csumOffloaded).toBe(1);
  });

  it("tun_hdr IPV4_CSUM and ICMP_CSUM are done in software (virtio cannot express them)", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ip: 4, l4: "icmp", payload: payload(56), csum: "zero" });
    const sent = b.frame.slice();
    sent[b.l3Off + 10] = 0;
    sent[b.l3Off + 11] = 0;
    const { got } = rx(f, sent, encodeTunHdr({ flags: TunHdr.F_ICMP_CSUM | TunHdr.F_IPV4_CSUM }));
    expect(got[0].hdr.flags).toBe(0);
    expect(ipv4HeaderValid(b, got[0].frame)).toBe(true);
    expect(l4ChecksumValid(b, got[0].frame)).toBe(true);
    expect(f.dev.metrics(QueueIndex.RX).csumSoftwareL3).toBe(2);
  });

  it("tun_hdr VTAG re-inserts the 802.1Q tag in software", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    const inner = buildFrame({ ip: 4, l4: "udp", payload: payload(1000), csum: "partial" });
    const tagged = buildFrame({ ip: 4, l4: "udp", payload: payload(1000), vlans: [0x8100], csum: "partial" });
    const { got } = rx(f, inner.frame, encodeTunHdr({ flags: TunHdr.F_VTAG | TunHdr.F_UDP_CSUM, vtag: 100 }));
    expect(got[0].frame.length).toBe(inner.frame.length + 4);
    expect(got[0].hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, csumStart: tagged.l4Off, csumOffset: 6 });
    expect(l4ChecksumValid(tagged, completePartial(got[0].frame, tagged.l4Off, 6))).toBe(true);
    expect(Array.from(got[0].frame.subarray(0, 18))).toEqual(Array.from(tagged.frame.subarray(0, 18)));
    expect(f.dev.metrics(QueueIndex.RX).vlanReinserted).toBe(1);
  });

  it.each([
    ["a TCP flag on a UDP frame", { ip: 4, l4: "udp" }, TunHdr.F_TCP_CSUM],
    ["TCP and UDP flags together", { ip: 4, l4: "tcp" }, TunHdr.F_TCP_CSUM | TunHdr.F_UDP_CSUM],
    ["IPV4_CSUM on an IPv6 frame", { ip: 6, l4: "tcp" }, TunHdr.F_IPV4_CSUM],
  ] as const)("drops a tun_hdr that contradicts the frame: %s", (_n, spec, flags) => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ...spec, payload: payload(60), csum: "partial" });
    expect(rx(f, b.frame, encodeTunHdr({ flags })).r).toEqual({ kind: "dropped", reason: Metric.DROP_BAD_BACKEND_HDR });
  });

  it("finishes in software, to the end of the IP datagram, a frame with Ethernet padding", () => {
    const f = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(2), csum: "partial", padding: 14 });
    const { got } = rx(f, b.frame, encodeTunHdr({ flags: TunHdr.F_UDP_CSUM }));
    expect(got[0].hdr.flags).toBe(0);
    expect(l4ChecksumValid(b, got[0].frame)).toBe(true);
  });

  it("enforces the MTU on received frames when MTU was negotiated", () => {
    const f = up(featureMask(Feature.MTU), { mtu: 1000 });
    const big = buildFrame({ ip: 4, l4: "udp", payload: payload(1200) });
    expect(rx(f, big.frame).r).toEqual({ kind: "dropped", reason: Metric.DROP_OVERSIZE });
  });
});

describe("locked MAC (vmd's locked lladdr)", () => {
  it("passes a guest sending from its own MAC with offloads on (the seed's reported failure)", () => {
    const f = up(CSUM | GUEST_CSUM, { lockedMac: true, backend: BackendKind.TUN_HDR });
    const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(1000), csum: "partial", srcMac: DEVICE_MAC });
    const out = tx(f, b, { hdr: needsCsum(b), separateHeader: true, splits: [12 + 3] });
    expect(out.length).toBe(1);
    expect(decodeTunHdr(out[0].header).flags).toBe(TunHdr.F_TCP_CSUM);
  });

  it("drops TX from another MAC and counts it", () => {
    const f = up(0n, { lockedMac: true });
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(10), srcMac: PEER_MAC });
    expect(tx(f, b)).toEqual([]);
    expect(f.dev.metrics(QueueIndex.TX).dropLockedMac).toBe(1);
  });

  it("delivers RX for our MAC, broadcast and multicast only", () => {
    const f = up(0n, { lockedMac: true });
    const results = [DEVICE_MAC, Uint8Array.of(255, 255, 255, 255, 255, 255), Uint8Array.of(0x33, 0x33, 0, 0, 0, 1), PEER_MAC]
      .map((dstMac) => {
        f.drv.postRx(1);
        return f.dev.receive(buildFrame({ ip: 4, l4: "udp", payload: payload(10), dstMac }).frame).kind;
      });
    expect(results).toEqual(["delivered", "delivered", "delivered", "dropped"]);
    expect(f.dev.metrics(QueueIndex.RX).dropLockedMac).toBe(1);
  });
});

describe("TSO passthrough (segmentation offload)", () => {
  const TSO = featureMask(Feature.CSUM, Feature.GUEST_CSUM, Feature.HOST_TSO4, Feature.HOST_TSO6, Feature.HOST_ECN,
    Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN, Feature.MTU);
  const offer = BASE | TSO | featureMask(Feature.STATUS, Feature.EVENT_IDX, Feature.INDIRECT_DESC);
  const upTso = (opts: FixtureOptions) => {
    const f = fixture({ ...opts, features: offer });
    f.drv.bringUp(BASE | TSO, 64);
    return f;
  };
  const big = (ip: 4 | 6 = 4) => buildFrame({ ip, l4: "tcp", payload: payload(20000), csum: "partial" });
  const tsoHdr = (b: BuiltFrame, gsoType: number, gsoSize = 1448) => ({ ...needsCsum(b), gsoType, gsoSize, hdrLen: b.l4Off + 20 });

  it.each([[4, NetHdr.GSO_TCPV4], [6, NetHdr.GSO_TCPV6], [4, NetHdr.GSO_TCPV4 | NetHdr.GSO_ECN]] as const)(
    "hands a TSO frame (IPv%i, gso_type %i) to a virtio_net_hdr backend as is", (ip, gsoType) => {
      const f = upTso({ backend: BackendKind.VNET_HDR });
      const b = big(ip);
      const [out] = tx(f, b, { hdr: tsoHdr(b, gsoType), splits: [100, 4000] });
      expect(decodeVirtioHdr(out.header)).toEqual({ ...tsoHdr(b, gsoType), numBuffers: 0 });
      expect(Array.from(out.frame)).toEqual(Array.from(b.frame));
      expect(f.dev.metrics(QueueIndex.TX).gsoOffloaded).toBe(1);
    });

  it("maps TSO to tun_hdr TCP_MSS after confirming TCP at csum_start", () => {
    const f = upTso({ backend: BackendKind.TUN_HDR });
    const b = big(6);
    const [out] = tx(f, b, { hdr: tsoHdr(b, NetHdr.GSO_TCPV6, 1220) });
    expect(decodeTunHdr(out.header)).toEqual({ flags: TunHdr.F_TCP_CSUM | TunHdr.F_TCP_MSS, vtag: 0, mss: 1220 });
  });

  it.each([
    ["without NEEDS_CSUM (virtio 1.2, 5.1.6.2.1)", (b: BuiltFrame) => ({ ...tsoHdr(b, NetHdr.GSO_TCPV4), flags: 0 }), "dropBadGso"],
    ["with gso_size 0", (b: BuiltFrame) => tsoHdr(b, NetHdr.GSO_TCPV4, 0), "dropBadGso"],
    ["whose checksum field is not TCP's", (b: BuiltFrame) => ({ ...tsoHdr(b, NetHdr.GSO_TCPV4), csumOffset: 6 }), "dropBadGso"],
    ["of a type not negotiated (UDP fragmentation)", (b: BuiltFrame) => tsoHdr(b, NetHdr.GSO_UDP), "dropGsoUnsupported"],
    ["of an unknown type", (b: BuiltFrame) => tsoHdr(b, 0x33), "dropGsoUnsupported"],
  ] as const)("drops a TSO frame %s", (_n, hdr, metric) => {
    const f = upTso({ backend: BackendKind.VNET_HDR });
    const b = big();
    expect(tx(f, b, { hdr: hdr(b) })).toEqual([]);
    expect(f.dev.metrics(QueueIndex.TX)[metric]).toBe(1);
  });

  it("drops TSO from a guest that negotiated CSUM but not HOST_TSO4; segments it for a plain backend", () => {
    const a = up(CSUM, { backend: BackendKind.VNET_HDR });
    const b = big();
    expect(tx(a, b, { hdr: tsoHdr(b, NetHdr.GSO_TCPV4) })).toEqual([]);
    expect(a.dev.metrics(QueueIndex.TX).dropGsoUnsupported).toBe(1);
    const p = upTso({ backend: BackendKind.PLAIN });
    const out = tx(p, b, { hdr: tsoHdr(b, NetHdr.GSO_TCPV4) });
    const mss = tsoHdr(b, NetHdr.GSO_TCPV4).gsoSize;
    expect(out.length).toBe(Math.ceil((b.frame.length - b.l4Off - 20) / mss));
    for (const o of out) {
      expect(o.frame.length).toBeLessThanOrEqual(b.l4Off + 20 + mss);
      const ip = decodeFrame(o.frame).ip!;
      expect(l4ChecksumValid(ip, o.frame)).toBe(true);
      expect(ipv4HeaderValid(ip, o.frame)).toBe(true);
    }
    expect(p.dev.metrics(QueueIndex.TX)).toMatchObject({ gsoSegmented: 1, gsoSegments: out.length, packets: out.length });
  });

  it("hands the backend's GSO frame to a GUEST_TSO guest, larger than the MTU, in a big-packets chain", () => {
    const f = upTso({ backend: BackendKind.VNET_HDR, mtu: 1500 });
    const b = big(6);
    f.drv.postRx(1, { parts: Array(17).fill(4096) });
    expect(f.dev.receive(b.frame, encodeVirtioHdr(tsoHdr(b, NetHdr.GSO_TCPV6)))).toEqual({ kind: "delivered", length: b.frame.length });
    f.dev.flushRx();
    const [rx] = f.drv.receiveAll();
    expect(rx.hdr).toEqual({ ...tsoHdr(b, NetHdr.GSO_TCPV6), numBuffers: 1 });
    expect(Array.from(rx.frame)).toEqual(Array.from(b.frame));
  });

  it("turns tun_hdr TCP_MSS into GSO_TCPV4 for a GUEST_TSO guest, and drops it for one without", () => {
    const f = upTso({ backend: BackendKind.TUN_HDR });
    const b = big(4);
    f.drv.postRx(1, { parts: Array(17).fill(4096) });
    f.dev.receive(b.frame, encodeTunHdr({ flags: TunHdr.F_TCP_CSUM | TunHdr.F_TCP_MSS, mss: 1400 }));
    f.dev.flushRx();
    const [rx] = f.drv.receiveAll();
    expect(rx.hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1400, csumStart: b.l4Off, csumOffset: 16 });
    const g = up(CSUM | GUEST_CSUM, { backend: BackendKind.TUN_HDR });
    g.drv.postRx(1, { parts: Array(17).fill(4096) });
    expect(g.dev.receive(b.frame, encodeTunHdr({ flags: TunHdr.F_TCP_CSUM | TunHdr.F_TCP_MSS, mss: 1400 }))).toEqual({ kind: "dropped", reason: Metric.DROP_GSO_UNSUPPORTED });
  });

  it("still applies the MTU to non-GSO frames", () => {
    const f = upTso({ backend: BackendKind.VNET_HDR, mtu: 1500 });
    f.drv.postRx(1, { parts: Array(17).fill(4096) });
    expect(f.dev.receive(big().frame, encodeVirtioHdr({}))).toEqual({ kind: "dropped", reason: Metric.DROP_OVERSIZE });
  });
});
