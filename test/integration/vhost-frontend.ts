/**
 * A vhost-user front-end model that speaks to the back-end the way QEMU 7.2 does (message
 * order as observed, see platform notes), for tests without QEMU. Guest RAM is a memfd that
 * this side aliases into its own shared Wasm memory for the driver model, and passes to the
 * back-end, which maps it into its own: the two sides share the bytes, not the memory object.
 */
import { Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { featureBit } from "../../host/device/features.js";
import * as libc from "../../host/runtime/libc.js";
import type { DriverTransport } from "../../host/driver/guest-driver.js";
import type { GuestRegion } from "../../host/memory/layout.js";
import {
  decodeHeader, encodeMessage, F_PROTOCOL_FEATURES, VRING_F_LOG, FLAG_NEED_REPLY, FLAG_REPLY, FLAG_VERSION, HEADER_SIZE,
  memTablePayload, ProtocolFeature, readU64, Req, singleRegionPayload, u64Payload, vringAddrPayload, vringStatePayload,
  type MemRegion,
} from "../../host/vhost-user/protocol.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FrontendOptions {
  /** Guest RAM bytes. */
  ramSize: number;
  /** Use ADD_MEM_REG (CONFIGURE_MEM_SLOTS) instead of SET_MEM_TABLE. */
  memSlots?: boolean;
  /** A hole in guest RAM (two regions of one memfd, like QEMU's 0xA0000-0xBFFFF). */
  hole?: [number, number];
}

interface RingConfig { size: number; desc: bigint; avail: bigint; used: bigint }

export class VhostFrontend implements DriverTransport {
  readonly memory: WebAssembly.Memory;
  readonly regions: GuestRegion[] = [];
  readonly kickFds: [number, number] = [libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK), libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK)];
  readonly callFds: [number, number] = [libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK), libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK)];
  private readonly memfd: number;
  private readonly base: bigint;
  private readonly guestBase = 1 << 20;
  private readonly memRegions: MemRegion[] = [];
  private features = 0n;
  private protocolFeatures = 0n;
  private readonly rings: RingConfig[] = [];
  private fd = -1;

  constructor(readonly opts: FrontendOptions) {
    const pages = Math.ceil((this.guestBase + opts.ramSize) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.base = libc.memoryAddress(this.memory);
    this.memfd = libc.memfdCreate("vnw-test-guest-ram");
    libc.ftruncate(this.memfd, opts.ramSize);
    libc.mmap(this.base + BigInt(this.guestBase), opts.ramSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, this.memfd, 0);
    const spans: [number, number][] = opts.hole ? [[0, opts.hole[0]], [opts.hole[1], opts.ramSize]] : [[0, opts.ramSize]];
    for (const [start, end] of spans) {
      this.regions.push({ gpa: BigInt(start), size: end - start, wasm: this.guestBase + start });
      // userspace_addr: where this front-end has the bytes mapped (ring addresses are given in it).
      this.memRegions.push({ gpa: BigInt(start), size: BigInt(end - start), qva: this.base + BigInt(this.guestBase + start), mmapOffset: BigInt(start) });
    }
  }

  async connect(path: string, timeoutMs = 5000): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      try {
        this.fd = libc.unixConnect(path, true);
        return;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw e;
        await sleep(50);
      }
    }
  }

  /** Server side of --client mode: listen on `path` and take the back-end's connection. */
  async accept(listenFd: number, timeoutMs = 5000): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const fd = libc.accept(listenFd);
      if (fd >= 0) {
        this.fd = fd;
        return;
      }
      if (Date.now() - t0 > timeoutMs) throw new Error("the back-end did not connect");
      await sleep(20);
    }
  }

  disconnect(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  /** Sends a request; if `reply` (or REPLY_ACK asked for one), waits for and returns the reply payload. */
  async request(req: Req, payload?: Uint8Array, fds: number[] = [], reply = false): Promise<Uint8Array | null> {
    const ack = !reply && (this.protocolFeatures & (1n << BigInt(ProtocolFeature.REPLY_ACK))) !== 0n;
    const sent = libc.sendWithFds(this.fd, encodeMessage(req, FLAG_VERSION | (ack ? FLAG_NEED_REPLY : 0), payload), fds);
    if (sent < 0) throw new Error(`sendmsg: ${libc.errnoName(-sent)}`);
    if (!reply && !ack) return null;
    const p = await this.readReply(req);
    if (ack && readU64(p) !== 0n) throw new Error(`back-end refused request ${req}`);
    return p;
  }

  /** Writes raw bytes (for garbage tests). */
  sendRaw(bytes: Uint8Array): void {
    libc.sendWithFds(this.fd, bytes);
  }

  private async readReply(req: Req, timeoutMs = 5000): Promise<Uint8Array> {
    const hdr = new Uint8Array(HEADER_SIZE);
    const t0 = Date.now();
    let got = 0;
    while (got < HEADER_SIZE) {
      const r = libc.recvWithFds(this.fd, hdr.subarray(got), HEADER_SIZE - got);
      if (r.n > 0) { got += r.n; continue; }
      if (r.n === 0) throw new Error("back-end closed the connection");
      if (Date.now() - t0 > timeoutMs) throw new Error(`no reply to request ${req}`);
      await sleep(2);
    }
    const h = decodeHeader(hdr);
    if (h.request !== req || !(h.flags & FLAG_REPLY)) throw new Error(`unexpected reply ${h.request}/${h.flags} to ${req}`);
    const p = new Uint8Array(h.size);
    got = 0;
    while (got < h.size) {
      const r = libc.recvWithFds(this.fd, p.subarray(got), h.size - got);
      if (r.n > 0) got += r.n;
      else await sleep(1);
    }
    return p;
  }

  // ── DriverTransport: the driver model's calls are recorded, then replayed as messages ──
  setStatus(v: number): number { return v; }
  setDriverFeatures(f: bigint): boolean { this.features = f; return true; }
  configureQueue(q: QueueIndex, size: number, desc: bigint, avail: bigint, used: bigint): number {
    this.rings[q] = { size, desc, avail, used };
    return 0;
  }
  enableQueue(): number { return 0; }

  /** Offered features (GET_FEATURES) without the protocol bit. */
  async getFeatures(): Promise<bigint> {
    return readU64((await this.request(Req.GET_FEATURES, undefined, [], true))!) & ~(1n << F_PROTOCOL_FEATURES);
  }

  /** QEMU's session setup up to SET_FEATURES: protocol features, owner, call fds, early enables. */
  async handshake(): Promise<bigint> {
    const offered = await this.getFeatures();
    const pf = readU64((await this.request(Req.GET_PROTOCOL_FEATURES, undefined, [], true))!);
    let want = (1n << BigInt(ProtocolFeature.MQ)) | (1n << BigInt(ProtocolFeature.REPLY_ACK));
    if (this.opts.memSlots) want |= (1n << BigInt(ProtocolFeature.CONFIGURE_MEM_SLOTS)) | (1n << BigInt(ProtocolFeature.STATUS));
    await this.request(Req.SET_PROTOCOL_FEATURES, u64Payload(pf & want));
    this.protocolFeatures = pf & want;
    await this.request(Req.GET_QUEUE_NUM, undefined, [], true);
    await this.request(Req.SET_OWNER);
    for (const q of [0, 1]) await this.request(Req.SET_VRING_CALL, u64Payload(BigInt(q)), [this.callFds[q]]);
    for (const q of [0, 1]) await this.request(Req.SET_VRING_ENABLE, vringStatePayload(q, 1));
    return offered;
  }

  /** The guest's memory: one SET_MEM_TABLE, or an ADD_MEM_REG per region (CONFIGURE_MEM_SLOTS). */
  private async sendMemory(): Promise<void> {
    if (this.opts.memSlots) {
      for (const r of this.memRegions) await this.request(Req.ADD_MEM_REG, singleRegionPayload(r), [this.memfd]);
    } else {
      await this.request(Req.SET_MEM_TABLE, memTablePayload(this.memRegions), this.memRegions.map(() => this.memfd));
    }
  }

  /**
   * SET_VRING_ADDR for ring `q` (addresses in this front-end's address space, as QEMU gives them).
   * With `log`, VHOST_VRING_F_LOG and that guest-physical address for the used ring's log (QEMU:
   * the used ring's own, once logging is on); `true` for the used ring's.
   */
  sendRingAddr(q: number, log?: bigint | true): Promise<unknown> {
    const r = this.rings[q];
    const qva = (gpa: bigint) => this.base + BigInt(this.guestBase) + gpa;
    const logAt = log === true ? r.used : log ?? 0n;
    return this.request(Req.SET_VRING_ADDR, vringAddrPayload({ index: q, flags: log === undefined ? 0 : VRING_F_LOG, desc: qva(r.desc), used: qva(r.used), avail: qva(r.avail), log: logAt }));
  }

  /** Ring `q`'s size, base, address, kick fd and then call fd, in QEMU's order. */
  private async setUpRing(q: number): Promise<void> {
    await this.request(Req.SET_VRING_NUM, vringStatePayload(q, this.rings[q].size));
    await this.request(Req.SET_VRING_BASE, vringStatePayload(q, 0));
    await this.sendRingAddr(q);
    await this.request(Req.SET_VRING_KICK, u64Payload(BigInt(q)), [this.kickFds[q]]);
    await this.request(Req.SET_VRING_CALL, u64Payload(BigInt(q)), [this.callFds[q]]);
  }

  private driverOk(): Promise<unknown> {
    return this.request(Req.SET_STATUS, u64Payload(BigInt(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK)));
  }

  /** After the driver model laid out its rings: features, memory, rings, status (QEMU's start). */
  async start(): Promise<void> {
    await this.request(Req.SET_FEATURES, u64Payload(this.features | (1n << F_PROTOCOL_FEATURES)));
    if (this.opts.memSlots) await this.request(Req.GET_MAX_MEM_SLOTS, undefined, [], true);
    await this.sendMemory();
    for (const q of [0, 1]) await this.setUpRing(q);
    for (const q of [0, 1]) await this.request(Req.SET_VRING_ENABLE, vringStatePayload(q, 1));
    if (this.opts.memSlots) await this.driverOk();
  }

  /**
   * A guest reboot as QEMU 7.2 drives it: SET_STATUS 0 (the device resets and drops its ring
   * fds), then, once the driver has laid out new rings, features again, the rings enabled early,
   * and per ring size, base, address, kick fd and only then call fd, then DRIVER_OK.
   */
  async reboot(layout: () => void): Promise<void> {
    await this.request(Req.SET_STATUS, u64Payload(0n));
    layout();
    await this.request(Req.SET_FEATURES, u64Payload(this.features | (1n << F_PROTOCOL_FEATURES)));
    for (const q of [0, 1]) await this.request(Req.SET_VRING_ENABLE, vringStatePayload(q, 1));
    for (const q of [0, 1]) await this.setUpRing(q);
    await this.driverOk();
  }

  /**
   * A reset of a random kind (SET_STATUS 0, RESET_DEVICE, RESET_OWNER), then a request that has
   * a reply, so the back-end has acted on the reset before the guest reuses ring memory (a real
   * guest's memory is not rewritten while the device runs: QEMU stops the rings, waiting for
   * GET_VRING_BASE's reply, before a rebooted guest runs). Returns what it did.
   */
  async resetRandomly(random: () => number): Promise<string> {
    const kind = [Req.SET_STATUS, Req.RESET_DEVICE, Req.RESET_OWNER][Math.floor(random() * 3)];
    await this.request(kind, kind === Req.SET_STATUS ? u64Payload(0n) : undefined);
    await this.request(Req.GET_FEATURES, undefined, [], true);
    return `reset ${kind}`;
  }

  /**
   * The set-up messages of start() in a random order that any front-end could use (memory
   * always before ring addresses, which are given in the front-end's address space).
   */
  async startShuffled(random: () => number): Promise<string[]> {
    const steps: { name: string; after?: string; run: () => Promise<unknown> }[] = [];
    const order: string[] = [];
    steps.push({ name: "features", run: () => this.request(Req.SET_FEATURES, u64Payload(this.features | (1n << F_PROTOCOL_FEATURES))) });
    steps.push({ name: "memory", run: () => this.sendMemory() });
    for (const q of [0, 1]) {
      steps.push({ name: `num${q}`, run: () => this.request(Req.SET_VRING_NUM, vringStatePayload(q, this.rings[q].size)) });
      steps.push({ name: `base${q}`, run: () => this.request(Req.SET_VRING_BASE, vringStatePayload(q, 0)) });
      steps.push({ name: `addr${q}`, after: "memory", run: () => this.sendRingAddr(q) });
      steps.push({ name: `kick${q}`, run: () => this.request(Req.SET_VRING_KICK, u64Payload(BigInt(q)), [this.kickFds[q]]) });
      steps.push({ name: `call${q}`, run: () => this.request(Req.SET_VRING_CALL, u64Payload(BigInt(q)), [this.callFds[q]]) });
      steps.push({ name: `enable${q}`, run: () => this.request(Req.SET_VRING_ENABLE, vringStatePayload(q, 1)) });
    }
    const done = new Set<string>();
    while (steps.length) {
      const ready = steps.filter((x) => !x.after || done.has(x.after));
      const next = ready[Math.floor(random() * ready.length)];
      steps.splice(steps.indexOf(next), 1);
      await next.run();
      done.add(next.name);
      order.push(next.name);
    }
    if (this.opts.memSlots) await this.driverOk();
    return order;
  }

  /** QEMU's stop: GET_VRING_BASE for each ring; returns the bases. */
  async stop(): Promise<number[]> {
    const out: number[] = [];
    for (const q of [0, 1]) {
      const p = (await this.request(Req.GET_VRING_BASE, vringStatePayload(q, 0), [], true))!;
      out.push(new DataView(p.buffer, p.byteOffset).getUint32(4, true));
    }
    return out;
  }

  /** Whether a feature was negotiated for the guest. */
  has(f: Feature): boolean { return (this.features & featureBit(f)) !== 0n; }

  close(): void {
    this.disconnect();
    for (const fd of [...this.kickFds, ...this.callFds, this.memfd]) libc.close(fd);
  }
}
