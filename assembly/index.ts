// The core's exports: the whole ABI. Every function takes the state block address `st` the
// host allocated (stateSize() bytes, 16-byte aligned) and initialised with init(). The core
// imports only env.memory and touches only that block and the guest regions registered in it.

import { Code, Layout, QueueIndex } from "./abi";
import { memAdd, memClear, memRemove, translate } from "./mem/guest";
import { sumScalar, sumSimd, fold } from "./net/checksum";
import * as dev from "./net/device";
import * as ctrl from "./net/ctrl";
import * as dirtyLog from "./net/dirty-log";
import { flush } from "./net/datapath";
import * as rx from "./net/rx";
import * as tx from "./net/tx";
import { dependenciesMet, withoutUnmet } from "./net/features";
import { parseSg } from "./net/parse";
import { sgSum } from "./net/sg";
import {
  device, guestMem, parsed, poolAt, queueAt, rxFilter, sgAt, OFF_PARSE_SCRATCH, OFF_SG_TOOL, OFF_TOOL_IOV, STATE_SIZE,
  TOOL_IOV_MAX, MAGIC,
} from "./state";
import { iovecSet, IOV_SIZE } from "./virtq/layout";
import { packedAvailBefore } from "./virtq/packed";
import { setOption as applyOption, getOption as readOption } from "./net/options";

/** Layout version of the state block. */
export function layoutVersion(): u32 { return Layout.VERSION; }
/** Bytes the host must reserve for one device's state block. */
export function stateSize(): u32 { return <u32>STATE_SIZE; }

/** Initialises a state block (zero, defaults). Writes only [st, st + stateSize()). */
export function init(st: usize): void { dev.deviceInit(st); }
/** True if `st` holds an initialised state block of this layout. */
export function isInitialised(st: usize): bool { return device(st).magic == MAGIC && device(st).layout == Layout.VERSION; }

/** Native address of Wasm address 0 (for iovecs handed to readv/writev), or 0. */
export function setNativeBase(st: usize, base: u64): void { device(st).nativeBase = base; }

/**
 * Registers guest-physical [gpa, gpa + size) at Wasm address `wasm`. Refused if it overlaps
 * the state block, another region, or runs past the memory.
 */
export function memAddRegion(st: usize, gpa: u64, size: u64, wasm: u64): i32 {
  const end = <u64>st + STATE_SIZE;
  if (wasm < end && <u64>st < wasm + size) return Code.INVALID;
  return memAdd(guestMem(st), gpa, size, wasm) ? Code.OK : Code.INVALID;
}
/** Removes the region starting at `gpa`. */
export function memRemoveRegion(st: usize, gpa: u64): i32 {
  if (!memRemove(guestMem(st), gpa)) return Code.INVALID;
  dev.memoryRemoved(st);
  return Code.OK;
}
/** Removes all regions. */
export function memClearRegions(st: usize): void {
  memClear(guestMem(st));
  dev.memoryRemoved(st);
}

export function setMac(st: usize, mac: u64): void { device(st).mac = mac & 0xffffffffffff; }
export function setOption(st: usize, option: u32, value: u32): i32 { return applyOption(st, option, value); }
export function getOption(st: usize, option: u32): u32 { return readOption(st, option); }

/** True if every feature in `f` has its prerequisites in `f` (virtio 1.2, 5.1.3.1). */
export function featureDependenciesMet(f: u64): bool { return dependenciesMet(f); }
/** `f` without the features whose prerequisites are missing from it. */
export function featureWithoutUnmet(f: u64): u64 { return withoutUnmet(f); }
export function setOfferedFeatures(st: usize, f: u64): i32 { return dev.setOffered(st, f); }
export function offeredFeatures(st: usize): u64 { return device(st).offered; }
export function setDriverFeatures(st: usize, f: u64): i32 { return dev.setDriverFeatures(st, f); }
export function driverFeatures(st: usize): u64 { return device(st).driver; }
export function negotiatedFeatures(st: usize): u64 { return device(st).negotiated; }
export function setStatus(st: usize, v: u32): u32 { return dev.setStatus(st, v); }
export function status(st: usize): u32 { return device(st).status; }
/** Size of the virtio_net_hdr the driver uses (10 or 12); set TUNSETVNETHDRSZ to it. */
export function hdrLen(st: usize): u32 { return device(st).hdrLen; }
/** Takes (and clears) the pending DeviceEvent bits. */
export function takeEvents(st: usize): u32 {
  const d = device(st);
  const e = d.events;
  d.events = 0;
  return e;
}

export function configRead(st: usize, off: u32, size: u32): u32 { return dev.configRead(st, off, size); }

export function queueSetSize(st: usize, q: u32, n: u32): i32 { return dev.queueSetSize(st, q, n); }
export function queueSetAddrs(st: usize, q: u32, desc: u64, avail: u64, used: u64): i32 { return dev.queueSetAddrs(st, q, desc, avail, used); }
export function queueEnable(st: usize, q: u32, on: bool): i32 { return dev.queueEnable(st, q, on); }
export function queueSetNextAvail(st: usize, q: u32, idx: u32): i32 { return dev.queueSetNextAvail(st, q, idx); }
/** The next available index the device will read: RX buffers held in the pool do not count (they go back). */
export function queueNextAvail(st: usize, q: u32): u32 {
  if (q > <u32>QueueIndex.CTRL) return 0;
  const vq = queueAt(st, q);
  const pooled = q == QueueIndex.RX ? device(st).rxPoolN : 0;
  if (vq.packed == 0) return (vq.nextAvail - pooled) & 0xffff;
  // Packed: avail position | wrap << 15 | used position << 16 | wrap << 31 (vhost-user GET_VRING_BASE).
  let descs: u32 = 0;
  for (let i: u32 = 0; i < pooled; i++) descs += poolAt(st, i).head >>> 16;
  return packedAvailBefore(vq, descs) | (vq.nextUsed << 16) | (vq.usedWrap << 31);
}
export function queueBroken(st: usize, q: u32): bool { return q > <u32>QueueIndex.CTRL ? false : queueAt(st, q).broken != 0; }

export function txNext(st: usize): i32 { return tx.txNext(st); }
/** Address of the first iovec of the frame txNext() returned. */
export function txIov(st: usize): usize { return st + device(st).txIovStart; }
export function txDone(st: usize, sent: i32): i32 { return tx.txDone(st, sent); }
/** Publishes completed TX buffers; 1 if the guest wants an interrupt now. */
export function txFlush(st: usize): i32 { return flush(st, 1); }

export function rxNext(st: usize): i32 { return rx.rxNext(st, 0); }
/** rxNext() for a frame of known size: `bytes` with the guest header (in-process backends). */
export function rxNextFor(st: usize, bytes: u32): i32 { return rx.rxNext(st, bytes); }
/** Address of the first iovec for the backend's readv after rxNext(). */
export function rxIov(st: usize): usize { return st + device(st).rxIovStart; }
/** Bytes the pending RX chain holds (guest header included). */
export function rxCapacity(st: usize): u32 { return device(st).rxCap; }
export function rxCommit(st: usize, nread: u32): i32 { return rx.rxCommit(st, nread); }
export function rxAbort(st: usize): i32 { return rx.rxAbort(st); }
/** Wasm address of the staging area: a virtio_net_hdr (12 bytes) then a GSO frame. */
export function rxStagingAddr(st: usize): usize { return rx.stagingAddr(st); }
/** Bytes the staging area holds. */
export function rxStagingSize(): u32 { return rx.stagingSize(); }
/** Segments the GSO frame in the staging area into the guest's buffers; frames delivered or -(Metric). */
export function rxSegmentStaged(st: usize, frameLen: u32): i32 { return rx.rxSegmentStaged(st, frameLen); }
/** Publishes completed RX buffers; 1 if the guest wants an interrupt now. */
export function rxFlush(st: usize): i32 { return flush(st, 0); }

/** Answers up to `budget` control-queue commands; the number answered or a negative Code. */
export function ctrlProcess(st: usize, budget: u32): i32 { return ctrl.ctrlProcess(st, budget); }
/** Publishes answered control commands; 1 if the guest wants an interrupt now. */
export function ctrlFlush(st: usize): i32 { return flush(st, QueueIndex.CTRL); }
/** Asks the guest to announce itself (VIRTIO_NET_S_ANNOUNCE + config change); NOT_READY without GUEST_ANNOUNCE running. */
export function announce(st: usize): i32 { return ctrl.announce(st); }
/** The receive filter's RxMode bits. */
export function rxMode(st: usize): u32 { return rxFilter(st).mode; }
/** The device's MAC (it changes with CTRL_MAC_ADDR_SET), low 48 bits in memory order. */
export function mac(st: usize): u64 { return device(st).mac; }
/** Queue pairs in use (CTRL_MQ VQ_PAIRS_SET). */
export function queuePairs(st: usize): u32 { return device(st).pairs; }
/** The guest offloads in effect (GUEST_* feature bits; CTRL_GUEST_OFFLOADS changes them). */
export function guestOffloads(st: usize): u64 { return device(st).guestOffloads; }

/** Queue `q`'s size (0 unset), whether it is enabled, and its ring addresses (guest-physical: 0 descriptors, 1 driver area, 2 device area). */
export function queueSize(st: usize, q: u32): u32 { return q > <u32>QueueIndex.CTRL ? 0 : queueAt(st, q).size; }
export function queueEnabled(st: usize, q: u32): bool { return q > <u32>QueueIndex.CTRL ? false : queueAt(st, q).enabled != 0; }
export function queueAddress(st: usize, q: u32, which: u32): u64 {
  if (q > <u32>QueueIndex.CTRL) return 0;
  const vq = queueAt(st, q);
  return which == 0 ? vq.descGpa : which == 1 ? vq.availGpa : vq.usedGpa;
}

/** Dirty logging for migration: `bytes` of bitmap at Wasm `at` (1 bit per 4 KiB guest page); 0 bytes: off. */
export function setDirtyLog(st: usize, at: usize, bytes: u32): i32 { return dirtyLog.setDirtyLog(st, at, bytes); }

// Saved state beyond the negotiation (net/saved.ts).
export { savedSize, saveExtras, restoreExtras } from "./net/saved";

/** Host polling of queue `q` on/off (off: 1 if work is already there, look before sleeping). */
export function queueSetPolling(st: usize, q: u32, on: bool): i32 { return dev.queueSetPolling(st, q, on); }

// Device-to-device forwarding in one memory (net/forward.ts).
export { forwardSet, forwardSetCount, forwardTouched, txForward } from "./net/forward";

/** Address of queue `q`'s counters (u64 × MetricCount.N), 0 for a bad index. */
export function metricsPtr(st: usize, q: u32): usize { return dev.metricsPtr(st, q); }

// ─────────────── tools over guest memory (tests, benchmarks, diagnostics) ───────────────
// They read only guest RAM through the region table and write only the state block.

/**
 * Builds the tool scatter-gather list from `count` { u64 gpa; u64 len } pairs stored at
 * guest-physical `listGpa`. Returns false if the list or any piece is outside guest RAM.
 */
function toolSg(st: usize, listGpa: u64, n: u32): bool {
  if (n > TOOL_IOV_MAX) return false;
  const mem = guestMem(st);
  const list = translate(mem, listGpa, <u64>n * 16);
  if (list == 0) return false;
  const sg = sgAt(st, OFF_SG_TOOL);
  sg.iov = <u32>(st + OFF_TOOL_IOV);
  sg.n = n;
  sg.nb = 0;
  for (let i: u32 = 0; i < n; i++) {
    const gpa = load<u64>(list + <usize>i * 16);
    const len = load<u64>(list + <usize>i * 16, 8);
    const p = translate(mem, gpa, len);
    if (p == 0 || len > 0xffffffff) return false;
    iovecSet(sg.iov, i, <u64>p, len);
  }
  return true;
}

/**
 * Parses the frame of `frameLen` bytes scattered over the list at `listGpa`; returns the
 * address of the result (ParseField × u32) or 0 if the list is not in guest RAM.
 */
export function parseGuestFrame(st: usize, listGpa: u64, n: u32, frameLen: u32): usize {
  if (!toolSg(st, listGpa, n)) return 0;
  const out = parsed(st);
  parseSg(sgAt(st, OFF_SG_TOOL), 0, frameLen, st + OFF_PARSE_SCRATCH, out);
  return changetype<usize>(out);
}

/**
 * Folded RFC 1071 sum (little-endian word order) of logical bytes [off, off + len) of the
 * list at `listGpa`; -1 if the list is not in guest RAM.
 */
export function checksumGuestList(st: usize, listGpa: u64, n: u32, off: u32, len: u32): i32 {
  if (!toolSg(st, listGpa, n)) return -1;
  return <i32>sgSum(sgAt(st, OFF_SG_TOOL), off, len);
}

/**
 * Folded sum of guest bytes [gpa, gpa + len) with the SIMD (simd = true) or the scalar loop,
 * `rounds` times (for benchmarks: the loop stays inside Wasm). -1 if outside guest RAM.
 */
export function checksumGuest(st: usize, gpa: u64, len: u32, simd: bool, rounds: u32): i32 {
  const p = translate(guestMem(st), gpa, len);
  if (p == 0) return -1;
  let s: u32 = 0;
  for (let i: u32 = 0; i < rounds; i++) s = fold(simd ? sumSimd(p, len) : sumScalar(p, len)) + (s & 0);
  return <i32>s;
}
