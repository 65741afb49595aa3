/**
 * A virtio-net guest driver in TypeScript, working on guest RAM in a Wasm memory the way Linux's
 * virtio_net / virtio_ring do: split rings at driver-chosen addresses, headers in their own
 * descriptor or inline, indirect tables, buffers placed with random gaps (so nothing works by
 * reading contiguous memory by accident), notification suppression honoured both ways.
 *
 * It is the guest side of the in-process demo, the driver every test here drives the device
 * through, and what an embedder tests an integration with (`virtio-net-wasm/testing`).
 */
import { isSharedMemory } from "../wasm/core.js";
import { Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { decodeVirtioHdr, encodeVirtioHdr, type VirtioNetHdr } from "../device/header.js";
/** What the driver needs of the device's transport (VirtioNetDevice provides it). */
export interface DriverTransport {
  setStatus(value: number): number;
  setDriverFeatures(features: bigint): boolean;
  configureQueue(q: QueueIndex, size: number, desc: bigint, avail: bigint, used: bigint): number;
  enableQueue(q: QueueIndex, on: boolean): number;
}
import type { GuestMemory } from "../memory/layout.js";
import { featureMask, hasFeature } from "../device/features.js";

/** Entries of the control queue (as Linux's and QEMU's). */
export const CTRL_QUEUE_SIZE = 64;
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;

/** A small deterministic PRNG (mulberry32) so failures replay. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One ring as the driver sees it. Split (virtio 1.2, 2.7): `desc`, `avail`, `used` are the
 * three parts, `free` the free descriptors, chains keyed by head. Packed (2.8): `desc` is the
 * descriptor ring, `avail` the driver event area, `used` the device event area, `free` the free
 * buffer ids, chains keyed by id, and the positions and wrap counters in `packed`.
 */
export interface DriverQueue {
  size: number;
  desc: bigint;
  avail: bigint;
  used: bigint;
  /** Driver's avail idx (free-running; packed: descriptors made available, mod 2^16). */
  availIdx: number;
  /** Last used idx the driver consumed (split). */
  lastUsed: number;
  free: number[];
  /** head (packed: id) -> descriptors (split: indices; packed: ring positions) and buffers of that chain. */
  chains: Map<number, { descs: number[]; bufs: { gpa: bigint; len: number }[] }>;
  /** Packed rings only: next available and next used positions, their wrap counters, free ring slots. */
  packed?: { availPos: number; availWrap: number; usedPos: number; usedWrap: number; freeSlots: number };
}

/** Packed descriptor flags (virtio 1.2, 2.8.1). */
export const PDESC_F_AVAIL = 1 << 7;
export const PDESC_F_USED = 1 << 15;
/** Event suppression flags (virtio 1.2, 2.8.10). */
export const EVENT_ENABLE = 0;
export const EVENT_DISABLE = 1;
export const EVENT_DESC = 2;

export interface SendOptions {
  /** Header to put in front (default: all zero). */
  hdr?: Partial<VirtioNetHdr>;
  /** Header in its own descriptor (true) or inline with the frame (false, default). */
  separateHeader?: boolean;
  /** Split points (offsets into header+frame) at which to start a new descriptor. */
  splits?: number[];
  /** Put the chain in an indirect table. */
  indirect?: boolean;
}

export interface RxBufferOptions {
  /** Sizes of the descriptors making up each buffer chain (default one of 1526). */
  parts?: number[];
  indirect?: boolean;
}

export class GuestDriver {
  readonly queues: DriverQueue[] = [];
  private next = 0x1000n;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  readonly random: () => number;
  /** Header size the driver uses (12 with VERSION_1). */
  hdrSize: 10 | 12 = 12;
  /** Whether takeUsed() re-arms used_event (EVENT_IDX) like a driver that wants more interrupts. */
  rearmUsedEvent = true;
  /** The features negotiate() last had accepted. */
  features = 0n;
  /**
   * Ring layout: "packed" adds VIRTIO_F_RING_PACKED to every negotiation, "split" takes it out,
   * "as-asked" (default) negotiates what negotiate() is given.
   */
  layout: "split" | "packed" | "as-asked" = "as-asked";

  constructor(readonly mem: Pick<GuestMemory, "memory" | "regions">, readonly dev: DriverTransport, seed = 1) {
    this.u8 = new Uint8Array(mem.memory.buffer);
    this.dv = new DataView(mem.memory.buffer);
    this.random = rng(seed);
  }

  // ───────────────────────────── guest RAM ─────────────────────────────

  /** Wasm address of guest-physical `gpa` (throws if unmapped). */
  wasm(gpa: bigint): number {
    for (const r of this.mem.regions) {
      if (gpa >= r.gpa && gpa < r.gpa + BigInt(r.size)) return r.wasm + Number(gpa - r.gpa);
    }
    throw new RangeError(`gpa 0x${gpa.toString(16)} not in guest RAM`);
  }

  /** Allocates guest RAM with a random gap in front, skipping holes. */
  alloc(size: number, align = 16): bigint {
    const gap = BigInt(Math.floor(this.random() * 4) * 16);
    let at = ((this.next + gap + BigInt(align - 1)) / BigInt(align)) * BigInt(align);
    // Skip into the next region if this one cannot hold it.
    for (const r of this.mem.regions) {
      const end = r.gpa + BigInt(r.size);
      if (at < r.gpa) at = r.gpa;
      if (at + BigInt(size) <= end) {
        this.next = at + BigInt(size);
        return at;
      }
    }
    throw new RangeError("guest RAM exhausted");
  }

  /**
   * Ring index fields (avail idx, used idx, used_event) are read and written atomically: with
   * a device in another thread these are the synchronisation points (virtio 1.2, 2.7.13).
   */
  private idx16(gpa: bigint, v?: number): number {
    const w = this.wasm(gpa);
    if (!isSharedMemory(this.mem.memory)) {
      if (v !== undefined) this.dv.setUint16(w, v, true);
      return this.dv.getUint16(w, true);
    }
    const a = new Uint16Array(this.mem.memory.buffer, w, 1);
    if (v !== undefined) Atomics.store(a, 0, v);
    return Atomics.load(a, 0);
  }

  write(gpa: bigint, bytes: Uint8Array): void { this.u8.set(bytes, this.wasm(gpa)); }
  read(gpa: bigint, len: number): Uint8Array { const w = this.wasm(gpa); return this.u8.slice(w, w + len); }
  w16(gpa: bigint, v: number): void { this.dv.setUint16(this.wasm(gpa), v, true); }
  r16(gpa: bigint): number { return this.dv.getUint16(this.wasm(gpa), true); }
  r32(gpa: bigint): number { return this.dv.getUint32(this.wasm(gpa), true); }

  writeDesc(table: bigint, i: number, addr: bigint, len: number, flags: number, next: number): void {
    const w = this.wasm(table + BigInt(16 * i));
    this.dv.setBigUint64(w, addr, true);
    this.dv.setUint32(w + 8, len, true);
    this.dv.setUint16(w + 12, flags, true);
    this.dv.setUint16(w + 14, next, true);
  }

  // ───────────────────────────── setup ─────────────────────────────

  /**
   * The driver side of initialisation (virtio 1.2, 3.1.1): reset, ACKNOWLEDGE, DRIVER, write
   * features, FEATURES_OK and read it back. Returns whether the device accepted the features.
   */
  negotiate(features: bigint): boolean {
    if (this.layout === "packed") features |= featureMask(Feature.RING_PACKED);
    if (this.layout === "split") features &= ~featureMask(Feature.RING_PACKED);
    this.dev.setStatus(0);
    this.dev.setStatus(Status.ACKNOWLEDGE);
    this.dev.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    this.dev.setDriverFeatures(features);
    const s = this.dev.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    const ok = (s & Status.FEATURES_OK) !== 0;
    this.features = ok ? features : 0n;
    const v1 = (features & featureMask(Feature.VERSION_1, Feature.MRG_RXBUF)) !== 0n;
    this.hdrSize = v1 ? 12 : 10;
    return ok;
  }

  /**
   * Lays out the rings (Linux style: three separate allocations) and enables them: RX and TX,
   * and the control queue (64 entries, as Linux and QEMU) when CTRL_VQ was negotiated.
   */
  setupQueues(ringSize = 256): void {
    const ctrl = hasFeature(this.features, Feature.CTRL_VQ);
    const packed = this.packedRings;
    for (const q of ctrl ? [QueueIndex.RX, QueueIndex.TX, QueueIndex.CTRL] : [QueueIndex.RX, QueueIndex.TX]) {
      const size = q === QueueIndex.CTRL ? CTRL_QUEUE_SIZE : ringSize;
      const availBytes = packed ? 4 : 6 + 2 * size;
      const usedBytes = packed ? 4 : 6 + 8 * size;
      const desc = this.alloc(16 * size, 16);
      const avail = this.alloc(availBytes, packed ? 4 : 2);
      const used = this.alloc(usedBytes, 4);
      this.u8.fill(0, this.wasm(desc), this.wasm(desc) + 16 * size);
      this.u8.fill(0, this.wasm(avail), this.wasm(avail) + availBytes);
      this.u8.fill(0, this.wasm(used), this.wasm(used) + usedBytes);
      this.queues[q] = {
        size, desc, avail, used, availIdx: 0, lastUsed: 0,
        free: Array.from({ length: size }, (_, i) => i), chains: new Map(),
        ...(packed ? { packed: { availPos: 0, availWrap: 1, usedPos: 0, usedWrap: 1, freeSlots: size } } : {}),
      };
      const r = this.dev.configureQueue(q, size, desc, avail, used);
      if (r !== 0) throw new Error(`configureQueue(${q}) = ${r}`);
      const e = this.dev.enableQueue(q, true);
      if (e !== 0) throw new Error(`enableQueue(${q}) = ${e}`);
    }
  }

  /** DRIVER_OK. */
  start(): void {
    this.dev.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  }

  /** negotiate + setupQueues + start; throws if the features are refused. */
  bringUp(features: bigint, size = 256): void {
    if (!this.negotiate(features)) throw new Error(`features 0x${features.toString(16)} refused`);
    this.setupQueues(size);
    this.start();
  }

  // ───────────────────────────── rings ─────────────────────────────

  /**
   * Places a chain of buffers on queue `qi`, directly or through an indirect table, and makes
   * it available. Returns the head. Buffers are device-writable if `write`, unless a buffer
   * says otherwise (a control command: readable parts, then the writable ack).
   */
  addChain(qi: QueueIndex, bufs: { gpa: bigint; len: number; write?: boolean }[], write: boolean, indirect = false): number {
    const q = this.queues[qi];
    const wflag = (b: { write?: boolean }) => ((b.write ?? write) ? DESC_F_WRITE : 0);
    if (q.packed) return this.addPackedChain(q, bufs, wflag, indirect);
    let head: number;
    let descs: number[];
    if (indirect) {
      const table = this.alloc(16 * bufs.length, 16);
      bufs.forEach((b, i) => this.writeDesc(table, i, b.gpa, b.len, wflag(b) | (i + 1 < bufs.length ? DESC_F_NEXT : 0), i + 1 < bufs.length ? i + 1 : 0));
      head = this.takeFree(q, 1)[0];
      this.writeDesc(q.desc, head, table, 16 * bufs.length, DESC_F_INDIRECT, 0);
      descs = [head];
    } else {
      descs = this.takeFree(q, bufs.length);
      head = descs[0];
      bufs.forEach((b, i) => this.writeDesc(q.desc, descs[i], b.gpa, b.len, wflag(b) | (i + 1 < bufs.length ? DESC_F_NEXT : 0), i + 1 < bufs.length ? descs[i + 1] : 0));
    }
    q.chains.set(head, { descs, bufs });
    this.publishAvail(qi, head);
    return head;
  }

  /** Whether the rings are packed (VIRTIO_F_RING_PACKED negotiated). */
  get packedRings(): boolean { return hasFeature(this.features, Feature.RING_PACKED); }

  /**
   * A packed chain (virtio 1.2, 2.8.6, 2.8.21 driver side): a free buffer id, descriptors at the
   * next positions with the AVAIL/USED bits of the lap each lands in, the first one's flags
   * written last so the device never sees a half-written chain. Returns the id.
   */
  private addPackedChain(q: DriverQueue, bufs: { gpa: bigint; len: number; write?: boolean }[], wflag: (b: { write?: boolean }) => number, indirect: boolean): number {
    const p = q.packed!;
    const slots = indirect ? 1 : bufs.length;
    if (p.freeSlots < slots || q.free.length === 0) throw new Error("ring full");
    const id = q.free.splice(Math.floor(this.random() * q.free.length), 1)[0];
    const lap = (wrap: number) => (wrap ? PDESC_F_AVAIL : PDESC_F_USED);
    const entries = indirect ? [{ gpa: this.indirectTable(bufs, wflag), len: 16 * bufs.length, flags: DESC_F_INDIRECT }]
      : bufs.map((b, i) => ({ gpa: b.gpa, len: b.len, flags: wflag(b) | (i + 1 < bufs.length ? DESC_F_NEXT : 0) }));
    let pos = p.availPos;
    let wrap = p.availWrap;
    const first = { pos, flags: entries[0].flags | lap(wrap) };
    const positions: number[] = [];
    entries.forEach((e, i) => {
      const w = this.wasm(q.desc + BigInt(16 * pos));
      this.dv.setBigUint64(w, e.gpa, true);
      this.dv.setUint32(w + 8, e.len, true);
      this.dv.setUint16(w + 12, id, true);
      if (i > 0) this.dv.setUint16(w + 14, e.flags | lap(wrap), true);
      positions.push(pos);
      if (++pos === q.size) { pos = 0; wrap ^= 1; }
    });
    this.flags16(q.desc + BigInt(16 * first.pos) + 14n, first.flags);
    p.availPos = pos;
    p.availWrap = wrap;
    p.freeSlots -= slots;
    q.availIdx = (q.availIdx + slots) & 0xffff;
    q.chains.set(id, { descs: positions, bufs });
    return id;
  }

  /** A packed indirect table for `bufs`: packed descriptors (flags at 14, id unused) in order, NEXT not used (virtio 1.2, 2.8.8). */
  private indirectTable(bufs: { gpa: bigint; len: number; write?: boolean }[], wflag: (b: { write?: boolean }) => number): bigint {
    const table = this.alloc(16 * bufs.length, 16);
    bufs.forEach((b, i) => {
      const w = this.wasm(table + BigInt(16 * i));
      this.dv.setBigUint64(w, b.gpa, true);
      this.dv.setUint32(w + 8, b.len, true);
      this.dv.setUint16(w + 12, 0, true);
      this.dv.setUint16(w + 14, wflag(b), true);
    });
    return table;
  }

  /** A descriptor's flags, stored with release semantics when the memory is shared (the device may be in another thread). */
  private flags16(gpa: bigint, v?: number): number {
    return this.idx16(gpa, v);
  }

  private takeFree(q: DriverQueue, n: number): number[] {
    if (q.free.length < n) throw new Error("ring full");
    // Take descriptors in a shuffled order: chains need not be contiguous in the table.
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(q.free.splice(Math.floor(this.random() * q.free.length), 1)[0]);
    return out;
  }

  /** Writes `head` into the avail ring and bumps avail idx. */
  publishAvail(qi: QueueIndex, head: number): void {
    const q = this.queues[qi];
    this.w16(q.avail + BigInt(4 + 2 * (q.availIdx % q.size)), head);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    this.idx16(q.avail + 2n, q.availIdx);
  }

  /** Used elements the device published since the last call; frees their descriptors. */
  takeUsed(qi: QueueIndex): { id: number; len: number; bufs: { gpa: bigint; len: number }[] }[] {
    const q = this.queues[qi];
    if (q.packed) return this.takeUsedPacked(qi, q);
    const idx = this.idx16(q.used + 2n);
    const out: { id: number; len: number; bufs: { gpa: bigint; len: number }[] }[] = [];
    while (q.lastUsed !== idx) {
      const e = q.used + BigInt(4 + 8 * (q.lastUsed % q.size));
      const id = this.r32(e);
      const len = this.r32(e + 4n);
      const chain = q.chains.get(id);
      if (!chain) throw new Error(`device returned unknown head ${id}`);
      q.chains.delete(id);
      q.free.push(...chain.descs);
      out.push({ id, len, bufs: chain.bufs });
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    // Re-enable callbacks as Linux's virtqueue_enable_cb does: with EVENT_IDX, interrupt me
    // at the next used entry (the device ignores used_event without EVENT_IDX).
    if (this.rearmUsedEvent) this.setUsedEvent(qi, q.lastUsed);
    return out;
  }

  /** Sets used_event (EVENT_IDX): interrupt me when the used idx passes `v`. */
  setUsedEvent(qi: QueueIndex, v: number): void {
    const q = this.queues[qi];
    if (q.packed) {
      // The driver event area: notify when the used descriptor at v (position | wrap << 15) is written.
      this.idx16(q.avail, v);
      this.idx16(q.avail + 2n, EVENT_DESC);
      return;
    }
    this.idx16(q.avail + BigInt(4 + 2 * q.size), v);
  }

  /** The device's avail_event (EVENT_IDX; packed: the device event area's off_wrap). */
  availEvent(qi: QueueIndex): number {
    const q = this.queues[qi];
    if (q.packed) return this.r16(q.used);
    return this.r16(q.used + BigInt(4 + 8 * q.size));
  }

  /** Used packed descriptors from the next used position on; frees their ids and slots. */
  private takeUsedPacked(qi: QueueIndex, q: DriverQueue): { id: number; len: number; bufs: { gpa: bigint; len: number }[] }[] {
    const p = q.packed!;
    const out: { id: number; len: number; bufs: { gpa: bigint; len: number }[] }[] = [];
    while (this.usedPending(qi)) {
      const d = q.desc + BigInt(16 * p.usedPos);
      const id = this.r16(d + 12n);
      const len = this.r32(d + 8n);
      const chain = q.chains.get(id);
      if (!chain) throw new Error(`device returned unknown buffer id ${id}`);
      q.chains.delete(id);
      q.free.push(id);
      p.freeSlots += chain.descs.length;
      p.usedPos += chain.descs.length;
      if (p.usedPos >= q.size) { p.usedPos -= q.size; p.usedWrap ^= 1; }
      out.push({ id, len, bufs: chain.bufs });
    }
    if (this.rearmUsedEvent && this.eventIdx) this.setUsedEvent(qi, p.usedPos | (p.usedWrap << 15));
    return out;
  }

  // ─────────────── notification suppression, as a driver honours it ───────────────

  private get eventIdx(): boolean { return hasFeature(this.features, Feature.EVENT_IDX); }

  /**
   * After making buffers available (avail idx moved from `oldAvail` to now): whether the device
   * asked to be notified (virtio 1.2, 2.7.10.1 driver side: avail_event with EVENT_IDX, else
   * VRING_USED_F_NO_NOTIFY). A driver that kicks only when this says so is what a fast
   * front-end (Linux, DPDK) is; the device must never depend on extra kicks.
   */
  kickNeeded(qi: QueueIndex, oldAvail: number): boolean {
    const q = this.queues[qi];
    if (q.packed) return this.kickNeededPacked(q, (q.availIdx - oldAvail) & 0xffff);
    if (this.eventIdx) {
      const event = this.idx16(q.used + BigInt(4 + 8 * q.size));
      return ((q.availIdx - event - 1) & 0xffff) < ((q.availIdx - oldAvail) & 0xffff);
    }
    return (this.idx16(q.used) & 1) === 0; // VRING_USED_F_NO_NOTIFY
  }

  /**
   * Asks for a used-buffer notification at the next used entry (used_event = last seen with
   * EVENT_IDX, else clears VRING_AVAIL_F_NO_INTERRUPT), then looks at the used index once more,
   * as Linux's virtqueue_enable_cb does. Returns true if used buffers are already there: the
   * driver must process them instead of sleeping.
   */
  enableInterrupts(qi: QueueIndex): boolean {
    const q = this.queues[qi];
    if (q.packed) {
      if (this.eventIdx) this.setUsedEvent(qi, q.packed.usedPos | (q.packed.usedWrap << 15));
      else this.idx16(q.avail + 2n, EVENT_ENABLE);
      return this.usedPending(qi);
    }
    if (this.eventIdx) this.setUsedEvent(qi, q.lastUsed);
    else this.idx16(q.avail, 0);
    return this.usedPending(qi);
  }

  /** Asks the device not to interrupt (VRING_AVAIL_F_NO_INTERRUPT; with EVENT_IDX, used_event left behind). */
  disableInterrupts(qi: QueueIndex): void {
    const q = this.queues[qi];
    if (q.packed) this.idx16(q.avail + 2n, EVENT_DISABLE);
    else if (!this.eventIdx) this.idx16(q.avail, 1);
  }

  /** Whether the device has published used buffers the driver has not taken. */
  usedPending(qi: QueueIndex): boolean {
    const q = this.queues[qi];
    if (q.packed) {
      const f = this.flags16(q.desc + BigInt(16 * q.packed.usedPos) + 14n);
      const w = q.packed.usedWrap;
      return ((f & PDESC_F_AVAIL) !== 0 ? 1 : 0) === w && ((f & PDESC_F_USED) !== 0 ? 1 : 0) === w;
    }
    return this.idx16(q.used + 2n) !== q.lastUsed;
  }

  /**
   * Packed (virtio 1.2, 2.8.10 driver side): the device event area says whether to notify:
   * always, never, or when the descriptor at its off_wrap was among the `added` just made
   * available (as Linux's virtqueue_kick_prepare_packed).
   */
  private kickNeededPacked(q: DriverQueue, added: number): boolean {
    const flags = this.idx16(q.used + 2n);
    if (flags === EVENT_DISABLE) return false;
    if (flags !== EVENT_DESC) return true;
    const p = q.packed!;
    const offWrap = this.idx16(q.used);
    let off = offWrap & 0x7fff;
    if (offWrap >> 15 !== p.availWrap) off -= q.size;
    const now = p.availPos;
    return ((now - off - 1) & 0xffff) < (added & 0xffff);
  }

  /** Free descriptors on queue `qi` (packed: free ring slots). */
  freeDescriptors(qi: QueueIndex): number { const q = this.queues[qi]; return q.packed ? q.packed.freeSlots : q.free.length; }

  setAvailFlags(qi: QueueIndex, flags: number): void { const q = this.queues[qi]; this.w16(q.packed ? q.avail + 2n : q.avail, flags); }
  usedFlags(qi: QueueIndex): number { const q = this.queues[qi]; return this.r16(q.packed ? q.used + 2n : q.used); }

  // ───────────────────────────── TX / RX ─────────────────────────────

  /** Queues `frame` for transmission with a virtio_net_hdr; returns the head. */
  send(frame: Uint8Array, opts: SendOptions = {}): number {
    const hdr = encodeVirtioHdr(opts.hdr ?? {}, this.hdrSize);
    const whole = new Uint8Array(hdr.length + frame.length);
    whole.set(hdr);
    whole.set(frame, hdr.length);
    const cuts = new Set<number>(opts.splits ?? []);
    if (opts.separateHeader) cuts.add(hdr.length);
    const points = [0, ...[...cuts].filter((c) => c > 0 && c < whole.length).sort((a, b) => a - b), whole.length];
    const bufs: { gpa: bigint; len: number }[] = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const part = whole.subarray(points[i], points[i + 1]);
      const gpa = this.alloc(part.length, 1);
      this.write(gpa, part);
      bufs.push({ gpa, len: part.length });
    }
    return this.addChain(QueueIndex.TX, bufs, false, opts.indirect ?? false);
  }

  /** Posts `count` receive buffers. */
  postRx(count: number, opts: RxBufferOptions = {}): number[] {
    const heads: number[] = [];
    for (let i = 0; i < count; i++) {
      const bufs = (opts.parts ?? [1526]).map((len) => ({ gpa: this.alloc(len, 2), len }));
      heads.push(this.addChain(QueueIndex.RX, bufs, true, opts.indirect ?? false));
    }
    return heads;
  }

  // ───────────────────────────── control queue ─────────────────────────────

  /**
   * Queues a control command (virtio 1.2, 5.1.6.5): `class, command, data` readable, split at
   * `splits` (offsets into those bytes), then a 1-byte writable ack (set to 0xff first).
   * Returns the head and where the ack is.
   */
  queueCtrl(cls: number, cmd: number, data: Uint8Array = new Uint8Array(0), opts: { splits?: number[]; indirect?: boolean } = {}): { head: number; ack: bigint } {
    const whole = Uint8Array.of(cls, cmd, ...data);
    const points = [0, ...(opts.splits ?? []).filter((c) => c > 0 && c < whole.length).sort((a, b) => a - b), whole.length];
    const bufs: { gpa: bigint; len: number; write?: boolean }[] = [];
    for (let i = 0; i + 1 < points.length; i++) {
      if (points[i] === points[i + 1]) continue;
      const gpa = this.alloc(points[i + 1] - points[i], 1);
      this.write(gpa, whole.subarray(points[i], points[i + 1]));
      bufs.push({ gpa, len: points[i + 1] - points[i], write: false });
    }
    const ack = this.alloc(1, 1);
    this.write(ack, Uint8Array.of(0xff));
    bufs.push({ gpa: ack, len: 1, write: true });
    return { head: this.addChain(QueueIndex.CTRL, bufs, false, opts.indirect ?? false), ack };
  }

  /**
   * Sends a control command and waits for it the way Linux does (virtnet_send_command): queue,
   * notify (`notify`: the transport's kick, or the device's processCtrl), then the used entry.
   * Returns the ack (Ctrl.OK / Ctrl.ERR), or -1 if the device did not answer.
   */
  ctrl(cls: number, cmd: number, data: Uint8Array, notify: () => void, opts: { splits?: number[]; indirect?: boolean } = {}): number {
    const { head, ack } = this.queueCtrl(cls, cmd, data, opts);
    notify();
    const used = this.takeUsed(QueueIndex.CTRL);
    const mine = used.find((u) => u.id === head);
    if (!mine || mine.len < 1) return -1;
    return this.read(ack, 1)[0];
  }

  /** Completed receive buffers as header + frame. */
  receiveAll(): { hdr: VirtioNetHdr; frame: Uint8Array; raw: Uint8Array }[] {
    return this.takeUsed(QueueIndex.RX).map((u) => {
      const raw = this.usedBytes(u);
      return { hdr: decodeVirtioHdr(raw.subarray(0, this.hdrSize)), frame: raw.slice(this.hdrSize), raw };
    });
  }

  /** The `len` bytes the device wrote into a used chain's buffers, in order. */
  private usedBytes({ len, bufs }: { len: number; bufs: { gpa: bigint; len: number }[] }): Uint8Array {
    const raw = new Uint8Array(len);
    let at = 0;
    for (const b of bufs) {
      if (at >= len) break;
      const take = Math.min(b.len, len - at);
      raw.set(this.read(b.gpa, take), at);
      at += take;
    }
    return raw;
  }


  /**
   * Completed receive buffers with MRG_RXBUF: each packet gathered over the num_buffers used
   * buffers its header announces (virtio 1.2, 5.1.6.4.2), with each buffer's used length.
   */
  receiveMerged(): { hdr: VirtioNetHdr; frame: Uint8Array; lens: number[]; caps: number[] }[] {
    const used = this.takeUsed(QueueIndex.RX).map((u) => ({ raw: this.usedBytes(u), cap: u.bufs.reduce((a, b) => a + b.len, 0) }));
    const out: { hdr: VirtioNetHdr; frame: Uint8Array; lens: number[]; caps: number[] }[] = [];
    for (let i = 0; i < used.length;) {
      const hdr = decodeVirtioHdr(used[i].raw.subarray(0, this.hdrSize));
      const n = Math.max(1, hdr.numBuffers ?? 1);
      const parts = used.slice(i, i + n);
      if (parts.length < n) throw new Error(`num_buffers ${n} but only ${parts.length} used buffers follow`);
      const whole = new Uint8Array(parts.reduce((a, p) => a + p.raw.length, 0));
      let at = 0;
      for (const p of parts) { whole.set(p.raw, at); at += p.raw.length; }
      out.push({ hdr, frame: whole.slice(this.hdrSize), lens: parts.map((p) => p.raw.length), caps: parts.map((p) => p.cap) });
      i += n;
    }
    return out;
  }
}
