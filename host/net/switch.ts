/**
 * An in-process Ethernet switch, offload-aware like OpenBSD's veb(4): ports declare whether
 * they take frames with a partial checksum (virtio_net_hdr NEEDS_CSUM). A partial frame goes
 * untouched to every port that does (between two offload-capable guests nobody ever computes
 * the checksum) and is finished, on a copy, only on its way to a port that does not.
 * Learns source MACs per port, floods broadcast, multicast and unknown destinations, and ages
 * entries out.
 */
import { NetHdr } from "../../assembly/abi.js";
import type { VirtioNetHdr } from "../device/header.js";
import { Checksummer } from "./checksummer.js";

/** A frame in flight: the bytes and the offload metadata that travel with them. */
export interface NetFrame {
  data: Uint8Array;
  /**
   * NEEDS_CSUM and where; for a large segment (GSO) its type and size too. A GSO frame always
   * has NEEDS_CSUM (virtio 1.2, 5.1.6.2.1).
   */
  hdr: Pick<VirtioNetHdr, "flags" | "csumStart" | "csumOffset"> & Partial<Pick<VirtioNetHdr, "gsoType" | "gsoSize">>;
}

export interface SwitchPort {
  readonly name: string;
  /** Takes frames whose L4 checksum is partial (NEEDS_CSUM with csum_start/csum_offset). */
  readonly acceptsPartial: boolean;
  /**
   * Takes large segments (GSO frames up to 64 KiB): a device port (its core segments for a
   * guest that cannot take them), a tap with TSO enabled. Others never see them: the switch
   * drops and counts GSO frames for them rather than send a frame no wire could carry.
   */
  readonly acceptsGso?: boolean;
  /** Receives a frame from the switch. The port must not keep `frame.data` past the call unless it owns it. */
  deliver(frame: NetFrame): void;
  /** Gets a copy of every frame, not only those addressed or flooded to it (capture ports). */
  readonly promiscuous?: boolean;
}

export interface SwitchCounters {
  forwarded: number;
  flooded: number;
  /** Partial checksums delivered untouched (no checksum computed). */
  partialUntouched: number;
  /** Partial checksums finished here for a port that cannot take them. */
  partialCompleted: number;
  /** Frames dropped: malformed, or a partial checksum pointing outside the frame. */
  dropped: number;
  /** Frames addressed back to the port they came from. */
  filtered: number;
  /** Large segments that reached a port which cannot take them. */
  gsoDropped: number;
  /** Large segments delivered whole (never segmented in between). */
  gsoForwarded: number;
}

interface Entry {
  port: SwitchPort;
  seen: number;
}

export class Switch {
  private readonly ports: SwitchPort[] = [];
  /** Learned addresses by macKey(). */
  private readonly table = new Map<number, Entry>();
  private readonly csum = new Checksummer();
  readonly counters: SwitchCounters = { forwarded: 0, flooded: 0, partialUntouched: 0, partialCompleted: 0, dropped: 0, filtered: 0, gsoDropped: 0, gsoForwarded: 0 };

  /**
   * @param ageMs how long a learned MAC stays without being seen (default 300 s, as veb(4)).
   * @param now clock in ms (injectable for tests).
   */
  constructor(private readonly ageMs = 300_000, private readonly now: () => number = () => Date.now()) {}

  /**
   * Bumped whenever where a frame would go may have changed: a port attached or detached, an
   * address learned anew or moved, an entry aged out, or a port saying its state changed
   * (changed()). Fast paths that cache forwarding decisions rebuild when it moves.
   */
  version = 0;

  attach(port: SwitchPort): void {
    this.ports.push(port);
    this.version++;
  }

  detach(port: SwitchPort): void {
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    for (const [mac, e] of this.table) if (e.port === port) this.table.delete(mac);
    this.version++;
  }

  /** A port's ability to take frames on a fast path changed (e.g. it started queueing). */
  changed(): void {
    this.version++;
  }

  /** Whether a capture port sees every frame (then nothing may bypass the switch). */
  get capturing(): boolean {
    return this.ports.some((p) => p.promiscuous);
  }

  /** The fresh learned entries: MAC (6 bytes) and port. */
  *learned(): IterableIterator<[Uint8Array, SwitchPort]> {
    const t = this.now();
    for (const [key, e] of this.table) {
      if (t - e.seen <= this.ageMs) yield [macOfKey(key), e.port];
    }
  }

  /** The port a MAC was learned on, if the entry is still fresh. */
  lookup(mac: Uint8Array): SwitchPort | undefined {
    const e = this.table.get(macKey(mac));
    if (!e) return undefined;
    if (this.now() - e.seen > this.ageMs) {
      this.table.delete(macKey(mac));
      this.version++;
      return undefined;
    }
    return e.port;
  }

  /** Number of learned, unexpired entries. */
  get size(): number {
    const t = this.now();
    let n = 0;
    for (const e of this.table.values()) if (t - e.seen <= this.ageMs) n++;
    return n;
  }

  /** A frame arriving from `from`. */
  input(from: SwitchPort, frame: NetFrame): void {
    const d = frame.data;
    if (d.length < 14) { this.counters.dropped++; return; }
    const partial = (frame.hdr.flags & NetHdr.F_NEEDS_CSUM) !== 0;
    if (partial && frame.hdr.csumStart + frame.hdr.csumOffset + 2 > d.length) { this.counters.dropped++; return; }
    if ((frame.hdr.gsoType ?? NetHdr.GSO_NONE) !== NetHdr.GSO_NONE && (!partial || !frame.hdr.gsoSize)) { this.counters.dropped++; return; }
    const src = d.subarray(6, 12);
    // Learn unicast sources only (a multicast source is bogus).
    if ((src[0] & 1) === 0) {
      const key = macKey(src);
      const e = this.table.get(key);
      if (e?.port === from) e.seen = this.now();
      else {
        this.table.set(key, { port: from, seen: this.now() });
        this.version++;
      }
    }
    const dst = d.subarray(0, 6);
    const out = (dst[0] & 1) === 0 ? this.lookup(dst) : undefined;
    // Capture ports see the frame as it enters, before any port can react to it.
    let completed: NetFrame | null = null;
    for (const p of this.ports) if (p.promiscuous && p !== from) completed = this.send(p, frame, partial, completed);
    if (out) {
      if (out === from) { this.counters.filtered++; return; }
      this.counters.forwarded++;
      if (!out.promiscuous) this.send(out, frame, partial, completed);
      return;
    }
    this.counters.flooded++;
    for (const p of this.ports) {
      if (p === from || p.promiscuous) continue;
      completed = this.send(p, frame, partial, completed);
    }
  }

  /** Delivers to `p`, finishing a partial checksum for a port that cannot take it (once per frame). */
  private send(p: SwitchPort, frame: NetFrame, partial: boolean, completed: NetFrame | null): NetFrame | null {
    if ((frame.hdr.gsoType ?? NetHdr.GSO_NONE) !== NetHdr.GSO_NONE) {
      if (!p.acceptsGso) {
        this.counters.gsoDropped++;
        return completed;
      }
      this.counters.gsoForwarded++;
    }
    if (!partial || p.acceptsPartial) {
      if (partial) this.counters.partialUntouched++;
      p.deliver(frame);
      return completed;
    }
    if (!completed) {
      const data = frame.data.slice();
      this.csum.complete(data, frame.hdr.csumStart, frame.hdr.csumOffset);
      completed = { data, hdr: { flags: 0, csumStart: 0, csumOffset: 0 } };
      this.counters.partialCompleted++;
    }
    p.deliver(completed);
    return completed;
  }
}

/** A MAC as a number (48 bits fit a double exactly): the table's key, with no string per frame. */
function macKey(m: Uint8Array): number {
  return (m[0] * 0x10000 + ((m[1] << 8) | m[2])) * 0x1000000 + ((m[3] << 16) | (m[4] << 8) | m[5]);
}

function macOfKey(k: number): Uint8Array {
  const hi = Math.floor(k / 0x1000000);
  const lo = k % 0x1000000;
  return Uint8Array.of(Math.floor(hi / 0x10000), (hi >> 8) & 0xff, hi & 0xff, lo >> 16, (lo >> 8) & 0xff, lo & 0xff);
}
