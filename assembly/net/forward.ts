// Device-to-device forwarding inside one memory: the embedded switch's fast path.
//
// The host keeps a small table per device (learned MAC -> state block of the device it lives
// behind), built from its switch's learning table for devices that share this memory. For each
// frame on the TX ring whose destination and source are both in the table, the core takes it
// from the sender's chain straight into the receiver's RX buffers: one copy, the receiver's
// header written from the sender's (the receiver's RX translation then finishes a checksum only
// if that receiver did not negotiate GUEST_CSUM). Anything else (broadcast, unknown or unlearned
// addresses, no room at the receiver, a large segment it cannot take whole) stops the batch and
// is left on the ring for the host's own path, so learning, flooding and the gateway stay there.
//
// It touches the sender's state block and guest RAM, and each receiver's state block and RX
// buffers, exactly as the receiver's own rxNext()/rxCommit() would.

import { BackendKind, Code, Feature, Forward, Layout, NetHdr } from "../abi";
import { iovecAt, iovecSet, IOV_SIZE } from "../virtq/layout";
import { device, OFF_FWD, MAGIC, STATE_SIZE } from "../state";
import { rxCommit, rxNext } from "./rx";
import { txDone, txNext } from "./tx";
import { gsoAllowed, has } from "./features";
import { iovBase, iovLen, Sg, sgRead, sgWrite } from "./sg";

/** The table's header; entries follow at FWD_ENTRIES. */
@unmanaged
class FwdTable {
  /** Entries in use. */
  n: u32;
  /** Bit i: the device of entry i received frames since the host last asked (forwardTouched). */
  touched: u32;
  /** 8 bytes for reading a MAC out of a frame. */
  mac: u64;
}

// Two scatter-gather lists follow the header (class fields would be pointers, not structs):
// the pending TX frame past its backend header, and the receiver's RX chain.
// @ts-ignore: decorator
@inline const FWD_SRC: usize = 16;
// @ts-ignore: decorator
@inline const FWD_DST: usize = 32;

/** One learned address. */
@unmanaged
class FwdEntry {
  /** MAC bytes in memory order in the low 48 bits (as Device.mac). */
  mac: u64;
  /** State block of the device it lives behind. */
  peer: u32;
  _pad: u32;
}

// @ts-ignore: decorator
@inline const FWD_ENTRIES: usize = 64;

// @ts-ignore: decorator
@inline function table(st: usize): FwdTable { return changetype<FwdTable>(st + OFF_FWD); }
// @ts-ignore: decorator
@inline function srcSg(st: usize): Sg { return changetype<Sg>(st + OFF_FWD + FWD_SRC); }
// @ts-ignore: decorator
@inline function dstSg(st: usize): Sg { return changetype<Sg>(st + OFF_FWD + FWD_DST); }
// @ts-ignore: decorator
@inline function entry(st: usize, i: u32): FwdEntry { return changetype<FwdEntry>(st + OFF_FWD + FWD_ENTRIES + <usize>i * 16); }

/** Whether `peer` is a state block of this layout, wholly inside the memory and apart from `st`. */
function peerValid(st: usize, peer: usize): bool {
  if (peer == 0 || (peer & 15) != 0 || peer == st) return false;
  if (<u64>peer + STATE_SIZE > <u64>memory.size() << 16) return false;
  if (peer < st + STATE_SIZE && st < peer + STATE_SIZE) return false;
  const d = device(peer);
  return d.magic == MAGIC && d.layout == Layout.VERSION && d.backend == BackendKind.VNET_HDR;
}

/** Sets entry `i`: frames for `mac` go to the device whose state block is `peer` (or `st` itself). */
export function forwardSet(st: usize, i: u32, mac: u64, peer: u32): i32 {
  if (i >= <u32>Forward.TABLE_MAX) return Code.INVALID;
  if (<usize>peer != st && !peerValid(st, peer)) return Code.INVALID;
  const e = entry(st, i);
  e.mac = mac & 0xffffffffffff;
  e.peer = peer;
  return Code.OK;
}

/** Uses the first `n` entries (0 turns forwarding off). */
export function forwardSetCount(st: usize, n: u32): i32 {
  if (n > <u32>Forward.TABLE_MAX) return Code.INVALID;
  table(st).n = n;
  return Code.OK;
}

/** Takes (and clears) the bitmask of entries whose device received frames. */
export function forwardTouched(st: usize): u32 {
  const t = table(st);
  const m = t.touched;
  t.touched = 0;
  return m;
}

/** Index of the entry for `mac`, or -1. */
function lookup(st: usize, mac: u64): i32 {
  const n = table(st).n;
  for (let i: u32 = 0; i < n; i++) if (entry(st, i).mac == mac) return <i32>i;
  return -1;
}

/** The 6 bytes at `off` of `sg` in the low 48 bits. */
function macOf(st: usize, sg: Sg, off: u32): u64 {
  // Usually the whole Ethernet header is in the first piece: read it in place.
  if (sg.n != 0 && iovLen(sg, 0) >= off + 6) {
    const p = iovBase(sg, 0) + off;
    return <u64>load<u32>(p) | (<u64>load<u16>(p, 4) << 32);
  }
  const t = table(st);
  t.mac = 0;
  sgRead(sg, off, changetype<usize>(t) + offsetof<FwdTable>("mac"), 6);
  return t.mac;
}

/** Whether `peer` takes a large segment of `gsoType` whole (its core would not segment it). */
function takesWhole(peer: usize, gsoType: u32): bool {
  const f = device(peer).rxFeatures;
  return has(f, Feature.GUEST_CSUM) && gsoAllowed(f, gsoType, false, false) && gsoAllowed(f, gsoType, false, true);
}

/**
 * Moves the pending TX frame of `st` (txNext() returned `n` iovecs: the backend's virtio_net_hdr,
 * then the frame, which `table.src` describes) to `peer`. Returns false, with nothing changed, if the peer has no room now.
 */
function deliver(st: usize, peer: usize, idx: u32): bool {
  const d = device(st);
  const t = table(st);
  const hdr = <usize>(iovecAt(st + d.txIovStart).base - d.nativeBase);
  const src = srcSg(st);
  let frameLen: u32 = 0;
  for (let i: u32 = 0; i < src.n; i++) frameLen += <u32>iovecAt(src.iov, i).len;
  const gsoType = <u32>load<u8>(hdr, 1);
  if (gsoType != NetHdr.GSO_NONE && !takesWhole(peer, gsoType)) return false;
  const pd = device(peer);
  const total = pd.hdrLen + frameLen;
  const m = rxNext(peer, total);
  if (m <= 0) return false;
  if (total <= pd.rxCap) {
    const dst = dstSg(st);
    dst.iov = <u32>(peer + pd.rxIovStart);
    dst.n = <u32>m;
    dst.nb = pd.nativeBase;
    // virtio_net_hdr: the first 10 bytes are common to both sizes; num_buffers is the receiver's.
    sgWrite(dst, 0, hdr, NetHdr.SIZE_LEGACY);
    if (pd.hdrLen > <u32>NetHdr.SIZE_LEGACY) {
      t.mac = 0;
      sgWrite(dst, NetHdr.SIZE_LEGACY, changetype<usize>(t) + offsetof<FwdTable>("mac"), pd.hdrLen - NetHdr.SIZE_LEGACY);
    }
    let off = pd.hdrLen;
    for (let i: u32 = 0; i < src.n; i++) {
      const v = iovecAt(src.iov, i);
      const len = <u32>v.len;
      sgWrite(dst, off, <usize>(v.base - src.nb), len);
      off += len;
    }
  }
  // Too big for the receiver's buffers: its rxCommit() counts the drop and keeps them.
  rxCommit(peer, total);
  t.touched |= <u32>1 << idx;
  txDone(st, <i32>frameLen);
  return true;
}

/**
 * Forwards up to `budget` frames from the TX ring of `st` to the devices in its table. Returns
 * the count | (Forward.* reason << Forward.SHIFT). Publish with txFlush(st), and rxFlush() each
 * device forwardTouched() names.
 */
export function txForward(st: usize, budget: u32): i32 {
  const t = table(st);
  if (t.n == 0 || device(st).backend != BackendKind.VNET_HDR) return <i32>(<u32>Forward.HOST << Forward.SHIFT);
  let done: u32 = 0;
  while (done < budget) {
    const n = txNext(st);
    if (n == 0) return <i32>(done | (<u32>Forward.EMPTY << Forward.SHIFT));
    if (n < 0) return <i32>(done | (<u32>Forward.ERROR << Forward.SHIFT));
    let ok = false;
    const src = srcSg(st);
    src.iov = <u32>(st + device(st).txIovStart + IOV_SIZE);
    src.n = <u32>n - 1;
    src.nb = device(st).nativeBase;
    // Unicast to a learned address, from the address learned on this very device.
    const dstMac = macOf(st, src, 0);
    if (n >= 2 && (dstMac & 1) == 0) {
      const di = lookup(st, dstMac);
      const si = lookup(st, macOf(st, src, 6));
      if (di >= 0 && si >= 0 && <usize>entry(st, <u32>si).peer == st) {
        const peer = <usize>entry(st, <u32>di).peer;
        if (peer != st && peerValid(st, peer)) ok = deliver(st, peer, <u32>di);
      }
    }
    if (!ok) {
      // Back on the ring, whole, for the host's path.
      txDone(st, Code.RETRY);
      return <i32>(done | (<u32>Forward.HOST << Forward.SHIFT));
    }
    done++;
  }
  return <i32>(done | (<u32>Forward.BUDGET << Forward.SHIFT));
}
