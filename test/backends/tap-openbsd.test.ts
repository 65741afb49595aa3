/**
 * The OpenBSD tap backend against a fake file-descriptor layer that behaves as if_tun.c v1.252
 * does where this code relies on it: TUNSCAP with bits outside TUN_IF_CAPS is EINVAL, a
 * write's tun_hdr carries at most one of TCP/UDP/ICMP_CSUM, and reads prepend the header.
 * Frames move through the real engine (BackendKind.TUN_HDR) between the driver model and the
 * fake, whose "wire" completes checksums as the OpenBSD stack would for M_*_CSUM_OUT.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr, QueueIndex, TunHdr } from "../../assembly/abi.js";
import {
  IFCAP_CSUM_TCPv4, IFCAP_CSUM_TCPv6, IFCAP_CSUM_UDPv4, IFCAP_CSUM_UDPv6, IFCAP_TSOv4, OpenBsdTap, TUNSCAP, TUN_IF_CAPS,
  tunCapabilities, type TapSyscalls,
} from "../../host/backends/tap-openbsd.js";
import { decodeTunHdr, encodeTunHdr } from "../../host/device/header.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, l4ChecksumValid, payload, completePartial } from "../../host/driver/frames.js";
import { gather, scatter } from "../helpers/iovecs.js";
import { fixture } from "../helpers/setup.js";

class FakeTapFd implements TapSyscalls {
  caps: number | null = null;
  ioctls: [number, number][] = [];
  written: { hdr: Uint8Array; frame: Uint8Array }[] = [];
  toRead: Uint8Array[] = [];
  closed = false;
  constructor(private readonly memory: WebAssembly.Memory) {}
  open(path: string): number {
    if (!/^\/dev\/tap\d+$/.test(path)) throw new Error(`open(${path}): ENOENT`);
    return 7;
  }
  ioctl(_fd: number, request: number, arg: Uint8Array): void {
    const v = new DataView(arg.buffer, arg.byteOffset).getUint32(0, true);
    this.ioctls.push([request, v]);
    if (request !== TUNSCAP) throw new Error("ioctl: ENOTTY");
    if (v & ~TUN_IF_CAPS) throw new Error("ioctl(TUNSCAP): EINVAL");
    this.caps = v;
  }
  writev(_fd: number, iov: bigint | number, n: number): number {
    const bytes = gather(this.memory, iov, n);
    const hdr = bytes.subarray(0, 8);
    const flags = decodeTunHdr(hdr).flags;
    const l4 = flags & (TunHdr.F_TCP_CSUM | TunHdr.F_UDP_CSUM | TunHdr.F_ICMP_CSUM);
    if (l4 & (l4 - 1)) throw new Error("writev: EINVAL (several checksum flags)");
    this.written.push({ hdr: new Uint8Array(hdr), frame: new Uint8Array(bytes.subarray(8)) });
    return bytes.length;
  }
  readv(_fd: number, iov: bigint | number, n: number): number {
    const pkt = this.toRead.shift();
    if (!pkt) return -35; // EAGAIN on OpenBSD
    return scatter(this.memory, iov, n, pkt);
  }
  close(): void { this.closed = true; }
}

const BASE = featureMask(Feature.VERSION_1, Feature.MAC);

describe("OpenBSD tap (tun_hdr) control side", () => {
  it.each([
    ["no offload", 0n, 0],
    ["CSUM only (guest → host offload needs no tap capability)", featureMask(Feature.CSUM), 0],
    ["GUEST_CSUM: TCP/UDP over v4 and v6, never IPv4 header", featureMask(Feature.GUEST_CSUM), IFCAP_CSUM_TCPv4 | IFCAP_CSUM_UDPv4 | IFCAP_CSUM_TCPv6 | IFCAP_CSUM_UDPv6],
    ["GUEST_TSO4 adds TSOv4", featureMask(Feature.GUEST_CSUM, Feature.GUEST_TSO4), 0x186 | IFCAP_TSOv4],
  ])("TUNSCAP capabilities for %s", (_n, features, caps) => {
    expect(tunCapabilities(features)).toBe(caps);
  });

  it("turns the header on with zero capabilities at open, then follows negotiation", () => {
    const f = fixture({ backend: BackendKind.TUN_HDR });
    const sys = new FakeTapFd(f.mem.memory);
    const tap = OpenBsdTap.open(sys, "/dev/tap3");
    expect(sys.ioctls).toEqual([[TUNSCAP, 0]]);
    tap.applyNegotiated(BASE | featureMask(Feature.CSUM, Feature.GUEST_CSUM));
    expect(sys.caps).toBe(0x186);
    expect(() => tap.setCapabilities(0x8000)).toThrow(/outside TUN_IF_CAPS/);
  });

  it("carries frames both ways through the engine with tun_hdr translation", () => {
    const f = fixture({ backend: BackendKind.TUN_HDR });
    const sys = new FakeTapFd(f.mem.memory);
    const tap = OpenBsdTap.open(sys, "/dev/tap0");
    f.drv.bringUp(BASE | featureMask(Feature.CSUM, Feature.GUEST_CSUM), 64);
    tap.applyNegotiated(f.dev.negotiatedFeatures);

    // TX: a TCP frame with a partial checksum becomes TUN_H_TCP_CSUM; an ICMP one is finished here.
    const tcp = buildFrame({ ip: 6, l4: "tcp", payload: payload(700), csum: "partial", ext: ["hop"] });
    const icmp = buildFrame({ ip: 4, l4: "icmp", payload: payload(56), csum: "partial" });
    for (const b of [tcp, icmp]) f.drv.send(b.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField }, splits: [20] });
    f.dev.processTx((iov, n) => tap.writev(iov, n));
    expect(sys.written.map((w) => decodeTunHdr(w.hdr).flags)).toEqual([TunHdr.F_TCP_CSUM, 0]);
    // The OpenBSD stack finishes M_TCP_CSUM_OUT at the TCP header: then every frame is valid.
    expect(l4ChecksumValid(tcp, completePartial(sys.written[0].frame, tcp.l4Off, 16))).toBe(true);
    expect(l4ChecksumValid(icmp, sys.written[1].frame)).toBe(true);

    // RX: TUN_H_UDP_CSUM from the kernel reaches this GUEST_CSUM guest as NEEDS_CSUM.
    const udp = buildFrame({ ip: 4, l4: "udp", payload: payload(300), csum: "partial", ipv4OptionBytes: 8 });
    sys.toRead.push(Buffer.concat([encodeTunHdr({ flags: TunHdr.F_UDP_CSUM }), udp.frame]));
    f.drv.postRx(2);
    const c = f.dev.core;
    const n = c.rxNext(f.dev.state);
    c.rxCommit(f.dev.state, tap.readv(c.rxIov(f.dev.state), n));
    f.dev.flushRx();
    const [rx] = f.drv.receiveAll();
    expect(rx.hdr).toMatchObject({ flags: NetHdr.F_NEEDS_CSUM, csumStart: udp.l4Off, csumOffset: 6 });
    expect(l4ChecksumValid(udp, completePartial(rx.frame, udp.l4Off, 6))).toBe(true);
    expect(f.dev.metrics(QueueIndex.RX).csumOffloaded).toBe(1);
    tap.close();
    expect(sys.closed).toBe(true);
  });
});
