import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { Gateway } from "../../host/net/gateway.js";
import { Switch, type NetFrame, type SwitchPort } from "../../host/net/switch.js";
import { dhcpOption, dhcpRequest } from "../helpers/dhcp.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, decodeFrame, ipv4HeaderValid, l4ChecksumValid, payload } from "../../host/driver/frames.js";

class Recorder implements SwitchPort {
  got: NetFrame[] = [];
  constructor(readonly name: string, readonly acceptsPartial = true) {}
  deliver(f: NetFrame): void { this.got.push({ data: f.data.slice(), hdr: { ...f.hdr } }); }
}

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n);
const frameFrom = (src: number, dst: Uint8Array) => buildFrame({ ip: 4, l4: "udp", payload: payload(20), srcMac: mac(src), dstMac: dst }).frame;
const NONE = { flags: 0, csumStart: 0, csumOffset: 0 };

describe("switch: learning, flooding, aging", () => {
  it("floods unknown and broadcast destinations, forwards learned ones, never back to the ingress port", () => {
    const sw = new Switch();
    const [a, b, c] = [new Recorder("a"), new Recorder("b"), new Recorder("c")];
    [a, b, c].forEach((p) => sw.attach(p));
    sw.input(a, { data: frameFrom(1, mac(2)), hdr: NONE });
    expect([a.got.length, b.got.length, c.got.length]).toEqual([0, 1, 1]);
    sw.input(b, { data: frameFrom(2, mac(1)), hdr: NONE });
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 1, 1]); // learned: only a
    sw.input(a, { data: frameFrom(1, mac(2)), hdr: NONE });
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 2, 1]);
    sw.input(c, { data: frameFrom(3, Uint8Array.of(255, 255, 255, 255, 255, 255)), hdr: NONE });
    expect([a.got.length, b.got.length, c.got.length]).toEqual([2, 3, 1]);
    sw.input(a, { data: frameFrom(1, mac(1)), hdr: NONE });
    expect(sw.counters.filtered).toBe(1);
    expect(sw.size).toBe(3);
  });

  it("ages entries out and floods again", () => {
    let t = 0;
    const sw = new Switch(1000, () => t);
    const [a, b, c] = [new Recorder("a"), new Recorder("b"), new Recorder("c")];
    [a, b, c].forEach((p) => sw.attach(p));
    sw.input(b, { data: frameFrom(2, mac(9)), hdr: NONE });
    t = 999;
    sw.input(a, { data: frameFrom(1, mac(2)), hdr: NONE });
    expect(c.got.length).toBe(1); // only the first (flooded) frame
    t = 2500;
    sw.input(a, { data: frameFrom(1, mac(2)), hdr: NONE });
    expect(c.got.length).toBe(2); // aged out: flooded
  });

  it("does not learn multicast sources and drops runts and bad offsets", () => {
    const sw = new Switch();
    const [a, b] = [new Recorder("a"), new Recorder("b")];
    sw.attach(a); sw.attach(b);
    sw.input(a, { data: frameFrom(1, mac(2)).map((x, i) => (i === 6 ? 1 : x)), hdr: NONE });
    expect(sw.size).toBe(0);
    sw.input(a, { data: new Uint8Array(10), hdr: NONE });
    sw.input(a, { data: frameFrom(1, mac(2)), hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: 60, csumOffset: 6 } });
    expect(sw.counters.dropped).toBe(2);
  });
});

describe("switch: offload-aware forwarding", () => {
  it("hands a partial checksum untouched to a capable port and complete to an incapable one", () => {
    const sw = new Switch();
    const src = new Recorder("src");
    const capable = new Recorder("capable", true);
    const incapable = new Recorder("incapable", false);
    [src, capable, incapable].forEach((p) => sw.attach(p));
    const b = buildFrame({ ip: 6, l4: "tcp", payload: payload(900), csum: "partial", dstMac: mac(77) });
    sw.input(src, { data: b.frame, hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: 16 } });
    expect(capable.got[0].hdr.flags).toBe(NetHdr.F_NEEDS_CSUM);
    expect(Array.from(capable.got[0].data)).toEqual(Array.from(b.frame));
    expect(incapable.got[0].hdr.flags).toBe(0);
    expect(l4ChecksumValid(b, incapable.got[0].data)).toBe(true);
    expect(sw.counters).toMatchObject({ partialUntouched: 1, partialCompleted: 1 });
  });
});

/** Two guests and the gateway on one switch, in one memory. */
function network(aFeatures: bigint, bFeatures: bigint) {
  const mem = createGuestMemory({ guestSize: 8 << 20, devices: 2 });
  const half = mem.guestSize / 2;
  const sw = new Switch();
  const gw = new Gateway(sw, { subnet: "198.51.100.0", dns: "198.51.100.53" });
  const guests = [aFeatures, bFeatures].map((features, i) => {
    const regions = [{ gpa: 0n, size: half, wasm: mem.guestBase + i * half }];
    const dev = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[i], regions, backend: BackendKind.VNET_HDR, mac: `02:00:00:00:00:0${i + 1}` });
    const drv = new GuestDriver({ memory: mem.memory, regions }, dev, i + 1);
    drv.bringUp(features, 64);
    drv.postRx(32);
    return { dev, drv, port: new DevicePort(`guest${i}`, dev, sw) };
  });
  return { sw, gw, guests };
}

const LINUX = featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX);
const MINIMAL = featureMask(Feature.VERSION_1);

describe("embedded network: devices, switch and gateway", () => {
  it("between a guest with offloads and one without, the incapable guest gets complete checksums", () => {
    const { sw, guests: [a, b] } = network(LINUX, MINIMAL);
    const bf = buildFrame({ ip: 4, l4: "tcp", payload: payload(1200), csum: "partial", srcMac: mac(1), dstMac: Uint8Array.of(2, 0, 0, 0, 0, 2) });
    a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: 16 } });
    a.port.pumpTx();
    const [rx] = b.drv.receiveAll();
    expect(rx.hdr.flags).toBe(0);
    expect(l4ChecksumValid(bf, rx.frame)).toBe(true);
    expect(b.dev.metrics(QueueIndex.RX).csumSoftware).toBe(1);
    expect(sw.counters.partialUntouched).toBeGreaterThan(0);
  });

  it("between two offload-capable guests, no checksum is computed anywhere", () => {
    const { sw, guests: [a, b] } = network(LINUX, LINUX);
    const bf = buildFrame({ ip: 6, l4: "udp", payload: payload(1200), csum: "partial", dstMac: Uint8Array.of(2, 0, 0, 0, 0, 2) });
    a.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: 6 } });
    a.port.pumpTx();
    const [rx] = b.drv.receiveAll();
    expect(rx.hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, csumStart: bf.l4Off, csumOffset: 6 });
    expect(Array.from(rx.frame)).toEqual(Array.from(bf.frame));
    expect(a.dev.metrics(QueueIndex.TX).csumSoftware + b.dev.metrics(QueueIndex.RX).csumSoftware + sw.counters.partialCompleted).toBe(0);
  });

  it("the gateway answers ARP and ICMP echo with valid checksums", () => {
    const { gw, guests: [a] } = network(MINIMAL, MINIMAL);
    const arp = new Uint8Array(42);
    arp.fill(0xff, 0, 6); arp.set(mac(1), 6); arp.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
    arp.set(mac(1), 22); arp.set([198, 51, 100, 50], 28); arp.set([198, 51, 100, 1], 38);
    a.drv.send(arp);
    const ping = buildFrame({ ip: 4, l4: "icmp", payload: payload(56), src: [198, 51, 100, 50], dst: gw.ip, dstMac: gw.mac, srcMac: mac(1) });
    a.drv.send(ping.frame);
    a.port.pumpTx();
    const got = a.drv.receiveAll().map((r) => r.frame);
    expect(got[0].subarray(22, 32)).toEqual(Uint8Array.from([...gw.mac, 198, 51, 100, 1]));
    const echo = decodeFrame(got[1]).ip!;
    expect([echo.icmpType, ...echo.src, ...echo.dst]).toEqual([0, 198, 51, 100, 1, 198, 51, 100, 50]);
    expect(l4ChecksumValid(echo, got[1])).toBe(true);
    expect(ipv4HeaderValid(echo, got[1])).toBe(true);
    expect(Array.from(echo.payload)).toEqual(Array.from(payload(56)));
  });

  it("DHCP: DISCOVER → OFFER, REQUEST → ACK with lease, mask, router and DNS; a wrong request gets NAK", () => {
    const { gw, guests: [a] } = network(LINUX, MINIMAL);
    const me = Uint8Array.of(2, 0, 0, 0, 0, 1);
    a.drv.send(dhcpRequest(me, 1));
    a.port.pumpTx();
    const [offer] = a.drv.receiveAll();
    const o = decodeFrame(offer.frame).ip!;
    expect(offer.hdr.flags).toBe(0);
    expect(l4ChecksumValid(o, offer.frame) && ipv4HeaderValid(o, offer.frame)).toBe(true);
    const yiaddr = Array.from(o.payload.subarray(16, 20));
    expect(yiaddr.slice(0, 3)).toEqual([198, 51, 100]);
    expect(yiaddr[3]).toBeGreaterThanOrEqual(100);
    expect(dhcpOption(o.payload, 53)).toEqual([2]);
    a.drv.send(dhcpRequest(me, 3, [50, 4, ...yiaddr, 54, 4, ...gw.ip]));
    a.port.pumpTx();
    const ack = decodeFrame(a.drv.receiveAll()[0].frame).ip!;
    expect(dhcpOption(ack.payload, 53)).toEqual([5]);
    expect(Array.from(ack.payload.subarray(16, 20))).toEqual(yiaddr);
    expect(dhcpOption(ack.payload, 1)).toEqual([255, 255, 255, 0]);
    expect(dhcpOption(ack.payload, 3)).toEqual(gw.ip);
    expect(dhcpOption(ack.payload, 6)).toEqual([198, 51, 100, 53]);
    expect(dhcpOption(ack.payload, 51)).toEqual([0, 0, 0x0e, 0x10]);
    a.drv.send(dhcpRequest(me, 3, [50, 4, 198, 51, 100, 7]));
    a.port.pumpTx();
    expect(dhcpOption(decodeFrame(a.drv.receiveAll()[0].frame).ip!.payload, 53)).toEqual([6]);
    expect(gw.counters).toMatchObject({ dhcpOffers: 1, dhcpAcks: 1, dhcpNaks: 1 });
  });

  it("keeps frames for a guest without buffers and delivers them when it posts some", () => {
    const { guests: [a, b] } = network(MINIMAL, MINIMAL);
    b.drv.receiveAll();
    // Use up b's 32 buffers, then 5 more wait in the port's backlog.
    for (let i = 0; i < 37; i++) a.drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(10 + i), dstMac: Uint8Array.of(255, 255, 255, 255, 255, 255) }).frame);
    a.port.pumpTx();
    expect(b.drv.receiveAll().length).toBe(32);
    b.drv.postRx(8);
    b.port.pumpRx();
    // UDP/IPv4 frames carry 42 bytes of headers: these are the payloads of frames 32..36, in order.
    expect(b.drv.receiveAll().map((r) => r.frame.length - 42)).toEqual([42, 43, 44, 45, 46]);
  });
});

describe("gateway IPv6", () => {
  const LL = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1];
  const send6 = (g: ReturnType<typeof network>["guests"][0], type: number, dst: number[], dstMac: Uint8Array, body: number[]) => {
    g.drv.send(buildFrame({ ip: 6, l4: "icmp", icmpType: type, icmpId: 0, icmpSeq: 0, src: LL, dst, srcMac: mac(1), dstMac, payload: Uint8Array.from(body) }).frame);
    g.port.pumpTx();
    return g.drv.receiveAll().map((r) => ({ ...decodeFrame(r.frame).ip!, frame: r.frame }));
  };

  it("answers a router solicitation with the /64 for SLAAC", () => {
    const { gw, guests: [a] } = network(MINIMAL, MINIMAL);
    const [ra] = send6(a, 133, [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], Uint8Array.of(0x33, 0x33, 0, 0, 0, 2), [1, 1, ...mac(1)]);
    expect([ra.proto, ra.icmpType]).toEqual([58, 134]);
    expect(l4ChecksumValid(ra, ra.frame)).toBe(true);
    expect(Array.from(ra.src)).toEqual(Array.from(gw.linkLocal6));
    // Options after the 16-byte RA: source link-layer (type 1), then prefix information (type 3).
    const opts = ra.frame.subarray(ra.l4Off + 16);
    expect(Array.from(opts.subarray(0, 8))).toEqual([1, 1, ...gw.mac]);
    expect(Array.from(opts.subarray(8, 12))).toEqual([3, 4, 64, 0xc0]);
    expect(Array.from(opts.subarray(24, 40))).toEqual([0xfd, 0x57, 0x61, 0x73, 0x6d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("answers a neighbour solicitation for its address, and echo requests", () => {
    const { gw, guests: [a] } = network(MINIMAL, MINIMAL);
    const solicited = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1];
    const [na] = send6(a, 135, solicited, Uint8Array.of(0x33, 0x33, 0xff, 0, 0, 1), [...gw.ip6, 1, 1, ...mac(1)]);
    expect([na.icmpType, ...na.frame.subarray(na.l4Off + 4, na.l4Off + 5)]).toEqual([136, 0xe0]);
    expect(Array.from(na.frame.subarray(na.l4Off + 8, na.l4Off + 24))).toEqual(Array.from(gw.ip6));
    expect(Array.from(na.frame.subarray(na.l4Off + 24, na.l4Off + 32))).toEqual([2, 1, ...gw.mac]);
    expect(l4ChecksumValid(na, na.frame)).toBe(true);
    const data = Array.from(payload(40));
    a.drv.send(buildFrame({ ip: 6, l4: "icmp", src: LL, dst: Array.from(gw.ip6), srcMac: mac(1), dstMac: gw.mac, payload: Uint8Array.from(data), icmpSeq: 4 }).frame);
    a.port.pumpTx();
    const echo = decodeFrame(a.drv.receiveAll()[0].frame).ip!;
    expect([echo.icmpType, ...echo.dst]).toEqual([129, ...LL]);
    expect(Array.from(echo.payload)).toEqual(data);
    expect(l4ChecksumValid(echo, echo.frame)).toBe(true);
    expect(gw.counters).toMatchObject({ neighborAdverts: 1, echo6Replies: 1 });
  });
});
