/**
 * The smallest guest network stack that lets the real kernel judge the device: on top of the
 * driver model it answers ARP and ICMP/ICMPv6 echo, sends frames (with partial checksums when
 * CSUM was negotiated, as Linux does), and checks every frame it receives the way a guest
 * would: finish the checksum if the device said NEEDS_CSUM (allowed only with GUEST_CSUM),
 * then verify it with the independent reference.
 */
import { Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import type { DataQueue } from "../../host/device/virtio-net.js";
import type { GuestDriver } from "../../host/driver/guest-driver.js";
import {
  buildFrame, completePartial, decodeFrame, ipv4HeaderValid, l4ChecksumValid, type DecodedFrame, type FrameSpec,
} from "../../host/driver/frames.js";

export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const HOST4 = [192, 0, 2, 1];
export const GUEST4 = [192, 0, 2, 2];
export const HOST6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
export const GUEST6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
export const VLAN_HOST4 = [198, 51, 100, 1];
export const VLAN_GUEST4 = [198, 51, 100, 2];

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => x === b[i]);

export interface Received {
  frame: Uint8Array;
  decoded: DecodedFrame;
  /** The device handed a partial checksum (NEEDS_CSUM). */
  partial: boolean;
}

export class GuestStack {
  readonly received: Received[] = [];
  /** Frames whose checksum did not verify, or that carried NEEDS_CSUM without GUEST_CSUM. */
  readonly bad: string[] = [];
  hostMac: Uint8Array | null = null;
  /** While true the guest neither takes completed buffers nor posts new ones (a busy guest). */
  hold = false;
  private waiters: { pred: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];

  constructor(
    readonly drv: GuestDriver,
    readonly features: bigint,
    private readonly kick: (q: DataQueue) => void,
    readonly rxBuffers = 64,
    /** This guest's MAC and IPv4 address (what it answers ARP for). */
    readonly mac: Uint8Array = GUEST_MAC,
    readonly ip4: number[] = GUEST4,
  ) {}

  get offloads(): boolean { return ((this.features >> BigInt(Feature.CSUM)) & 1n) === 1n; }
  get guestCsum(): boolean { return ((this.features >> BigInt(Feature.GUEST_CSUM)) & 1n) === 1n; }

  /** Posts the initial RX buffers. */
  start(): void {
    this.drv.postRx(this.rxBuffers);
    this.kick(QueueIndex.RX);
  }

  /** Sends a frame built from `spec`, with a partial checksum if CSUM was negotiated. */
  send(spec: FrameSpec): void {
    const b = buildFrame({ ...spec, csum: this.offloads ? "partial" : "full", srcMac: this.mac, dstMac: spec.dstMac ?? this.hostMac ?? undefined });
    const hdr = this.offloads ? { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField } : {};
    this.drv.send(b.frame, { hdr, separateHeader: true });
    this.kick(QueueIndex.TX);
    this.drv.takeUsed(QueueIndex.TX);
  }

  /** Sends raw bytes (ARP) with no offload. */
  sendRaw(frame: Uint8Array): void {
    this.drv.send(frame);
    this.kick(QueueIndex.TX);
    this.drv.takeUsed(QueueIndex.TX);
  }

  /** ARP request for `ip` from this guest's address (or `from`). */
  arpRequest(ip: number[], from = this.ip4): void {
    const f = new Uint8Array(42);
    f.fill(0xff, 0, 6);
    f.set(this.mac, 6);
    f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
    f.set(this.mac, 22);
    f.set(from, 28);
    f.set(ip, 38);
    this.sendRaw(f);
  }

  /** Takes completed RX buffers, checks them, answers ARP/echo, reposts buffers. */
  poll(): void {
    if (this.hold) return;
    const got = this.drv.receiveAll();
    for (const rx of got) this.handle(rx.frame, rx.hdr.flags, rx.hdr.csumStart, rx.hdr.csumOffset);
    if (got.length) {
      this.drv.postRx(got.length);
      this.kick(QueueIndex.RX);
    }
  }

  private handle(raw: Uint8Array, flags: number, start: number, off: number): void {
    const partial = (flags & NetHdr.F_NEEDS_CSUM) !== 0;
    if (partial && !this.guestCsum) this.bad.push("NEEDS_CSUM without GUEST_CSUM");
    const frame = partial ? completePartial(raw, start, off) : raw;
    const decoded = decodeFrame(frame);
    if (decoded.ip) {
      if (!l4ChecksumValid(decoded.ip, frame)) this.bad.push(`bad L4 checksum: ${Buffer.from(frame.subarray(0, 64)).toString("hex")}`);
      if (decoded.ip.ip === 4 && !ipv4HeaderValid(decoded.ip, frame)) this.bad.push("bad IPv4 header checksum");
    }
    const r: Received = { frame, decoded, partial };
    this.received.push(r);
    this.respond(r);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(r)) return true;
      w.resolve(r);
      return false;
    });
  }

  private respond(r: Received): void {
    const f = r.frame;
    const d = r.decoded;
    if (d.ethertype === 0x0806 && f[21] === 1 && same(f.subarray(38, 42), this.ip4)) {
      // ARP request for us: reply.
      const reply = new Uint8Array(42);
      reply.set(f.subarray(6, 12), 0);
      reply.set(this.mac, 6);
      reply.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
      reply.set(this.mac, 22);
      reply.set(this.ip4, 28);
      reply.set(f.subarray(22, 32), 32);
      this.sendRaw(reply);
    }
    if (d.ethertype === 0x0806 && f[21] === 2) this.hostMac = f.slice(22, 28);
    const ip = d.ip;
    const forUs = ip && (ip.ip === 6 || same(ip.dst, this.ip4));
    if (ip && forUs && ((ip.proto === 1 && ip.icmpType === 8) || (ip.proto === 58 && ip.icmpType === 128))) {
      const dv = new DataView(f.buffer, f.byteOffset);
      this.send({
        ip: ip.ip, l4: "icmp", payload: ip.payload, src: ip.dst, dst: ip.src, dstMac: d.srcMac,
        icmpType: ip.ip === 4 ? 0 : 129, icmpId: dv.getUint16(ip.l4Off + 4), icmpSeq: dv.getUint16(ip.l4Off + 6),
        vlans: d.vlanIds.map(() => 0x8100), vlanIds: d.vlanIds,
      });
    }
  }

  /** Resolves with the first received frame (past or future) matching `pred`. */
  waitFor(pred: (r: Received) => boolean, timeoutMs = 5000, what = "frame"): Promise<Received> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (r) => { clearTimeout(timer); resolve(r); } });
    });
  }
}
