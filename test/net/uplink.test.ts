/**
 * The uplink (libslirp behind the gateway) at the frame level: a stand-in guest port on the
 * embedded network sends UDP to the gateway's address, which slirp turns into a datagram on
 * the host's loopback; the host's answer comes back as a frame with valid checksums. Also:
 * one router (what slirp would say that the gateway says already is dropped), partial
 * checksums finished before slirp sees them, DHCP's DNS option, a forward whose port is taken,
 * UDP through a forward both ways, IPv6 to the host's ::1 (slirp resolves the guest by neighbour
 * discovery, and the guest's advert goes to slirp's 52:56 MAC: it was not routed to slirp before
 * this test), and a missing libslirp. No traffic leaves the machine: only 127.0.0.1 and 198.51.100.0/24.
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { NetHdr } from "../../assembly/abi.js";
import { buildFrame, decodeFrame, ipv4HeaderValid, l4ChecksumValid, payload } from "../../host/driver/frames.js";
import { embeddedNetwork, type EmbeddedNetwork } from "../../host/net/embedded-network.js";
import { Checksummer } from "../../host/net/checksummer.js";
import { arpReply } from "../../host/net/gateway/arp.js";
import { icmpv6Answer, ND_NEIGHBOR_SOLICIT, type Ipv6Host } from "../../host/net/gateway/icmpv6.js";
import type { NetFrame, SwitchPort } from "../../host/net/switch.js";
import { libslirp, SlirpUnavailable } from "../../host/runtime/libslirp.js";
import { dhcpOption, dhcpRequest } from "../helpers/dhcp.js";

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x99);
const GUEST_IP = [198, 51, 100, 20];
const NET = { subnet: "198.51.100.0", prefix6: "2001:db8:5::" };
const PREFIX6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
const GATEWAY6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const GUEST6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20);
const NONE = { flags: 0, csumStart: 0, csumOffset: 0 };
const until = async (cond: () => boolean, ms = 3000) => {
  for (const t0 = Date.now(); !cond(); ) {
    if (Date.now() - t0 > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};

let available = true;
try { libslirp(); } catch { available = false; }

/** A guest on the switch: records what it gets and answers ARP for its address (slirp asks before it sends). */
class StandInGuest implements SwitchPort {
  readonly name = "stand-in guest";
  readonly acceptsPartial = true;
  readonly got: NetFrame[] = [];
  constructor(private readonly net: EmbeddedNetwork) { net.sw.attach(this); }
  /** Its IPv6 identity, once it should answer neighbour solicitations. */
  ipv6: Ipv6Host | null = null;
  private readonly csum = new Checksummer();
  deliver(f: NetFrame): void {
    const d = f.data.slice();
    this.got.push({ data: d, hdr: { ...f.hdr } });
    // It answers ARP and neighbour solicitations for its addresses as any host does (the
    // gateway's code serves here too).
    const reply = d[12] === 0x08 && d[13] === 0x06 ? arpReply(d, GUEST_IP, GUEST_MAC)
      : this.ipv6 && d[12] === 0x86 && d[13] === 0xdd && d[20] === 58 && d[54] === ND_NEIGHBOR_SOLICIT ? icmpv6Answer(this.csum, d, this.ipv6)?.frame ?? null
      : null;
    if (reply) this.send(reply);
  }
  send(data: Uint8Array, hdr: NetFrame["hdr"] = NONE): void { this.net.sw.input(this, { data, hdr }); }
}

describe.skipIf(!available)("uplink (libslirp) at the frame level", () => {
  const open: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function setup(forwards = {}) {
    const net = embeddedNetwork({ ...NET, uplink: forwards });
    open.push(net);
    const guest = new StandInGuest(net);
    const host: Socket = createSocket("udp4");
    await new Promise<void>((r) => host.bind(0, "127.0.0.1", () => r()));
    open.push(host);
    return { net, guest, host, port: host.address().port };
  }

  const udpTo = (port: number, body: Uint8Array, csum: "full" | "partial" = "full") => buildFrame({
    ip: 4, l4: "udp", payload: body, srcMac: GUEST_MAC, dstMac: Uint8Array.of(0x52, 0x55, 198, 51, 100, 1),
    src: GUEST_IP, dst: [198, 51, 100, 1], sport: 40123, dport: port, csum,
  });

  it("UDP to the gateway's address reaches the host's loopback, and the answer comes back with valid checksums", async () => {
    const { net, guest, host, port } = await setup();
    const got: Buffer[] = [];
    host.on("message", (m, from) => { got.push(m); host.send(Buffer.from(`pong ${m}`), from.port, from.address); });
    guest.send(udpTo(port, Buffer.from("ping 1")).frame);
    await until(() => got.length === 1);
    expect(got[0].toString()).toBe("ping 1");
    await until(() => guest.got.some((f) => decodeFrame(f.data).ip?.proto === 17));
    const reply = guest.got.map((f) => ({ f, d: decodeFrame(f.data) })).find(({ d }) => d.ip?.proto === 17)!;
    expect(Buffer.from(reply.d.ip!.payload).toString()).toBe("pong ping 1");
    expect(Array.from(reply.d.ip!.src)).toEqual([198, 51, 100, 1]);
    expect(reply.d.ip!.dport).toBe(40123);
    expect(ipv4HeaderValid(reply.d.ip!, reply.f.data)).toBe(true);
    expect(l4ChecksumValid(reply.d.ip!, reply.f.data)).toBe(true);
    expect(net.gateway.counters.uplinked).toBeGreaterThanOrEqual(1);
    expect(net.uplink!.counters.fromHost).toBeGreaterThanOrEqual(1);
  });

  it("a partial checksum from a guest is finished before slirp sees it (slirp drops bad sums)", async () => {
    const { net, guest, host, port } = await setup();
    const got: Buffer[] = [];
    host.on("message", (m) => got.push(m));
    const b = udpTo(port, payload(300), "partial");
    guest.send(b.frame, { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField });
    await until(() => got.length === 1);
    expect(Buffer.compare(got[0], Buffer.from(payload(300)))).toBe(0);
    expect(net.sw.counters.partialCompleted).toBe(1);
  });

  it("one router: the gateway answers ARP and router solicitations, slirp's own answers never reach guests", async () => {
    const { net, guest } = await setup();
    const arp = new Uint8Array(42);
    arp.fill(0xff, 0, 6);
    arp.set(GUEST_MAC, 6);
    arp.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
    arp.set(GUEST_MAC, 22);
    arp.set(GUEST_IP, 28);
    arp.set([198, 51, 100, 1], 38);
    guest.send(arp);
    // A router solicitation from the guest's link-local address to all routers.
    const rs = buildFrame({ ip: 6, l4: "icmp", icmpType: 133, payload: new Uint8Array(4), srcMac: GUEST_MAC,
      dstMac: Uint8Array.of(0x33, 0x33, 0, 0, 0, 2), src: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], dst: [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2] });
    guest.send(rs.frame);
    await new Promise((r) => setTimeout(r, 200));
    const arpReplies = guest.got.filter((f) => f.data[12] === 0x08 && f.data[13] === 0x06 && f.data[21] === 2);
    const ras = guest.got.filter((f) => decodeFrame(f.data).ip?.icmpType === 134);
    expect(arpReplies).toHaveLength(1);
    expect(ras).toHaveLength(1);
    expect(net.gateway.counters).toMatchObject({ arpReplies: 1, routerAdverts: 1 });
  });

  it("DHCP hands out the uplink's DNS address (.3), and slirp's own DHCP stays silent", async () => {
    const { net, guest } = await setup();
    guest.send(dhcpRequest(GUEST_MAC, 1));
    await until(() => guest.got.some((f) => decodeFrame(f.data).ip?.sport === 67));
    const offers = guest.got.map((f) => decodeFrame(f.data)).filter((d) => d.ip?.sport === 67);
    expect(offers).toHaveLength(1);
    expect(dhcpOption(offers[0].ip!.payload, 6)).toEqual([198, 51, 100, 3]);
    expect(net.uplink!.nameserver).toEqual([198, 51, 100, 3]);
  });

  it("a forward whose host port is taken is a clear error at start", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      expect(() => embeddedNetwork({ ...NET, uplink: { forwards: [{ proto: "tcp", hostPort: port, guestAddr: GUEST_IP, guestPort: 80 }] } }))
        .toThrow(new RegExp(`cannot forward tcp 127.0.0.1:${port} to 198.51.100.20:80`));
    } finally {
      taken.close();
    }
  });

  it("a UDP forward: datagrams to the host port reach the guest's port intact, and the guest's answers reach the sender", async () => {
    // A free port on the loopback for the forward.
    const probe = createSocket("udp4");
    await new Promise<void>((r) => probe.bind(0, "127.0.0.1", () => r()));
    const hostPort = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const { net, guest, host } = await setup({ forwards: [{ proto: "udp", hostPort, guestAddr: GUEST_IP, guestPort: 5353 }] });
    const answers: string[] = [];
    host.on("message", (m, from) => { if (from.port === hostPort) answers.push(m.toString()); });
    const N = 50;
    // The guest answers each datagram to its port from where it came (slirp's side of the forward).
    let seen = 0;
    const answered = new Set<number>();
    const tick = setInterval(() => {
      for (; seen < guest.got.length; seen++) {
        const f = guest.got[seen];
        const d = decodeFrame(f.data);
        if (d.ip?.proto !== 17 || d.ip.dport !== 5353) continue;
        expect(ipv4HeaderValid(d.ip, f.data)).toBe(true);
        expect(l4ChecksumValid(d.ip, f.data)).toBe(true);
        const body = Buffer.from(d.ip.payload).toString();
        const i = Number(body.split(" ")[1]);
        if (answered.has(i)) continue;
        answered.add(i);
        guest.send(buildFrame({
          ip: 4, l4: "udp", payload: Buffer.from(`answer ${i}`), srcMac: GUEST_MAC, dstMac: f.data.slice(6, 12),
          src: GUEST_IP, dst: Array.from(d.ip.src), sport: 5353, dport: d.ip.sport, csum: "full",
        }).frame);
      }
    }, 2);
    try {
      // One at a time at first (slirp resolves the guest's MAC with the first), then a burst.
      host.send(Buffer.from("datagram 0"), hostPort, "127.0.0.1");
      await until(() => answers.length === 1);
      for (let i = 1; i < N; i++) host.send(Buffer.from(`datagram ${i}`), hostPort, "127.0.0.1");
      await until(() => answers.length === N);
    } finally {
      clearInterval(tick);
    }
    expect(new Set(answers)).toEqual(new Set(Array.from({ length: N }, (_, i) => `answer ${i}`)));
    expect(answered.size).toBe(N);
    expect(net.uplink!.counters.fromHost).toBeGreaterThanOrEqual(N);
  });

  it("IPv6: UDP to the gateway's IPv6 address reaches the host's ::1, and the answer comes back with a valid checksum", async () => {
    const { net, guest } = await setup();
    const host6: Socket = createSocket("udp6");
    await new Promise<void>((r) => host6.bind(0, "::1", () => r()));
    open.push(host6);
    const got: Buffer[] = [];
    host6.on("message", (m, from) => { got.push(m); host6.send(Buffer.from(`pong ${m}`), from.port, from.address); });
    // The stand-in answers neighbour solicitations for its address (slirp asks before it answers).
    guest.ipv6 = { mac: GUEST_MAC, prefix: PREFIX6, linkLocal: GUEST6, isOurs: (a) => Buffer.compare(Buffer.from(a), Buffer.from(GUEST6)) === 0 };
    guest.send(buildFrame({
      ip: 6, l4: "udp", payload: Buffer.from("ping six"), srcMac: GUEST_MAC, dstMac: Uint8Array.of(0x52, 0x55, 198, 51, 100, 1),
      src: Array.from(GUEST6), dst: Array.from(GATEWAY6), sport: 40124, dport: host6.address().port, csum: "full",
    }).frame);
    await until(() => got.length === 1);
    expect(got[0].toString()).toBe("ping six");
    await until(() => guest.got.some((f) => decodeFrame(f.data).ip?.proto === 17)).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(net.uplink!.counters)} ${JSON.stringify(net.gateway.counters)} ${guest.got.map((f) => Buffer.from(f.data.subarray(0, 80)).toString("hex")).join(" ")}`); });
    const reply = guest.got.map((f) => ({ f, d: decodeFrame(f.data) })).find(({ d }) => d.ip?.proto === 17)!;
    expect(Buffer.from(reply.d.ip!.payload).toString()).toBe("pong ping six");
    expect(Array.from(reply.d.ip!.src)).toEqual(Array.from(GATEWAY6));
    expect(reply.d.ip!.dport).toBe(40124);
    expect(l4ChecksumValid(reply.d.ip!, reply.f.data)).toBe(true);
    expect(net.uplink!.counters.fromHost).toBeGreaterThanOrEqual(1);
  });

  it("without libslirp the network is an island and says why, naming the package", async () => {
    expect(() => libslirp("/nonexistent/libslirp.so.0")).toThrow(SlirpUnavailable);
    expect(() => libslirp("/nonexistent/libslirp.so.0")).toThrow(/install the Debian package libslirp0/);
  });
});

describe.skipIf(!available)("uplink: what the gateway routes", () => {
  it("hands slirp only frames sent to a router: not frames flooded on their way to another guest, nor IPv4 broadcast data", async () => {
    const net = embeddedNetwork({ ...NET, uplink: {} });
    try {
      new StandInGuest(net);
      const other = Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x77); // a guest the switch has not learned yet
      const stranger = buildFrame({ ip: 4, l4: "udp", payload: payload(10), srcMac: GUEST_MAC, dstMac: other, src: GUEST_IP, dst: [198, 18, 0, 2] });
      const bcast = buildFrame({ ip: 4, l4: "udp", payload: payload(10), srcMac: GUEST_MAC, dstMac: new Uint8Array(6).fill(0xff), src: GUEST_IP, dst: [255, 255, 255, 255], dport: 9 });
      net.sw.input({ name: "x", acceptsPartial: true, deliver() {} }, { data: stranger.frame, hdr: NONE });
      net.sw.input({ name: "y", acceptsPartial: true, deliver() {} }, { data: bcast.frame, hdr: NONE });
      expect(net.gateway.counters.uplinked).toBe(0);
      expect(net.uplink!.counters.toHost).toBe(0);
    } finally {
      await net.close();
    }
  });
});
