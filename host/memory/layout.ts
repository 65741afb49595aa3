/**
 * Laying out a Wasm memory for guests the host creates itself: Wasm address 0 stays unused,
 * state blocks follow, then guest RAM on a 64 KiB boundary (so it can later be aliased with
 * mmap). Emulators that own their memory skip this and pass their own addresses.
 */
import { coreStateSize } from "../wasm/core.js";

/** A guest-physical range mapped at a Wasm address. */
export interface GuestRegion {
  /** Guest-physical start. */
  gpa: bigint;
  /** Bytes. */
  size: number;
  /** Wasm address of `gpa`. */
  wasm: number;
}

/** A guest-physical hole (not RAM), e.g. the VGA window 0xA0000-0xBFFFF. */
export interface GuestHole {
  start: number;
  end: number;
}

export interface GuestMemoryOptions {
  /** Bytes of guest RAM. */
  guestSize: number;
  /** Guest-physical holes that are not RAM. */
  holes?: readonly GuestHole[];
  /** Number of device state blocks to reserve. Default 1. */
  devices?: number;
  /** Create a shared memory (for Workers). Default false. */
  shared?: boolean;
}

export interface GuestMemory {
  memory: WebAssembly.Memory;
  /** Wasm address of each device's state block. */
  stateAddresses: number[];
  /** Wasm address of a 64-byte zeroed area per device for the host (e.g. a DeviceLock word). */
  hostAddresses: number[];
  /** Wasm address of guest-physical 0. */
  guestBase: number;
  guestSize: number;
  /** Guest RAM minus holes. */
  regions: GuestRegion[];
}

const PAGE = 65536;
/** Bytes of host-owned area per device. */
const HOST_AREA = 64;

/** Splits [0, size) around the holes into regions at `base + gpa`. */
export function regionsWithHoles(base: number, size: number, holes: readonly GuestHole[] = []): GuestRegion[] {
  const sorted = [...holes].sort((a, b) => a.start - b.start);
  const regions: GuestRegion[] = [];
  let at = 0;
  for (const h of sorted) {
    if (h.end <= h.start || h.start < at || h.end > size) throw new RangeError(`bad hole ${h.start.toString(16)}-${h.end.toString(16)}`);
    if (h.start > at) regions.push({ gpa: BigInt(at), size: h.start - at, wasm: base + at });
    at = h.end;
  }
  if (at < size) regions.push({ gpa: BigInt(at), size: size - at, wasm: base + at });
  return regions;
}

/** Creates a memory holding `devices` state blocks and `guestSize` bytes of guest RAM. */
export function createGuestMemory(opts: GuestMemoryOptions): GuestMemory {
  const devices = opts.devices ?? 1;
  if (!Number.isInteger(opts.guestSize) || opts.guestSize <= 0) throw new RangeError("guestSize must be a positive integer");
  const stateSize = coreStateSize();
  const stateAddresses: number[] = [];
  const hostAddresses: number[] = [];
  let at = PAGE;
  for (let i = 0; i < devices; i++) {
    stateAddresses.push(at);
    at += Math.ceil(stateSize / 64) * 64;
    hostAddresses.push(at);
    at += HOST_AREA;
  }
  const guestBase = Math.ceil(at / PAGE) * PAGE;
  const pages = Math.ceil((guestBase + opts.guestSize) / PAGE);
  const memory = opts.shared
    ? new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true })
    : new WebAssembly.Memory({ initial: pages });
  return {
    memory,
    stateAddresses,
    hostAddresses,
    guestBase,
    guestSize: opts.guestSize,
    regions: regionsWithHoles(guestBase, opts.guestSize, opts.holes),
  };
}
