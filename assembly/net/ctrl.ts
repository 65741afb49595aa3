// The control queue (virtio 1.2, 5.1.6.5): commands from the driver, each a chain of
// device-readable bytes `u8 class, u8 command, data` followed by a device-writable `u8 ack`.
// Every command is checked (negotiated, exact length, values in range) and answered OK or ERR;
// a malformed command is the command's problem and gets ERR, a malformed ring (addresses,
// loops, direction) is the ring's and puts the device in NEEDS_RESET, as on the data queues.
// What needs the host (the backend's offloads, queue pairs, the MAC) is raised as an event.

import { Code, Ctrl, DeviceEvent, Feature, Metric, QueueIndex, RxMode, Status } from "../abi";
import { queueAddUsed, POP_EMPTY } from "../virtq/queue";
import { IOV_SIZE } from "../virtq/layout";
import { walkChain, WALK_MIXED, WALK_TOO_MANY } from "../virtq/chain";
import {
  count, device, guestMem, queueAt, rxFilter, sgAt, walkState, CTRL_IOV_MAX, OFF_CTRL_IOV, OFF_MAC_TABLE,
  OFF_SCRATCH, OFF_SG_CTRL, OFF_SG_CTRL_ACK,
} from "../state";
import { fault, popHead, queueUsable, walkInto } from "./datapath";
import { filterUpdate, vlanSet } from "./filter";
import { has, GUEST_OFFLOADS } from "./features";
import { Sg, sgRead, sgWrite } from "./sg";

/** Scratch for command fields: 16 bytes of the state block's scratch area. */
// @ts-ignore: decorator
@inline function scratch(st: usize): usize { return st + OFF_SCRATCH; }

/** Reads `n` (≤ 8) bytes at `off` of the command's data as a little-endian number. */
function readLe(st: usize, sg: Sg, off: u32, n: u32): u64 {
  store<u64>(scratch(st), 0);
  sgRead(sg, off, scratch(st), n);
  return load<u64>(scratch(st));
}

/** A MAC (6 bytes at `off`) in the low 48 bits, memory order (as Device.mac). */
function readMac(st: usize, sg: Sg, off: u32): u64 {
  return readLe(st, sg, off, 6);
}

/** CTRL_RX: one mode bit on or off; data is one byte. */
function rxMode(st: usize, cmd: u32, sg: Sg, len: u32): u32 {
  const d = device(st);
  if (!has(d.negotiated, Feature.CTRL_RX) || cmd > <u32>Ctrl.RX_NOBCAST || len != 1) return Ctrl.ERR;
  if (cmd > <u32>Ctrl.RX_ALLMULTI && !has(d.negotiated, Feature.CTRL_RX_EXTRA)) return Ctrl.ERR;
  const on = readLe(st, sg, 2, 1);
  if (on > 1) return Ctrl.ERR;
  const f = rxFilter(st);
  const bit: u32 = 1 << cmd; // RxMode's bits are in command order
  f.mode = on != 0 ? f.mode | bit : f.mode & ~bit;
  filterUpdate(st);
  return Ctrl.OK;
}

/**
 * CTRL_MAC: TABLE_SET (two tables, `le32 entries; u8 macs[entries][6]`, unicast then
 * multicast, exactly filling the data) or ADDR_SET (6 bytes, with CTRL_MAC_ADDR).
 */
function macCommand(st: usize, cmd: u32, sg: Sg, len: u32): u32 {
  const d = device(st);
  if (cmd == Ctrl.MAC_ADDR_SET) {
    if (!has(d.negotiated, Feature.CTRL_MAC_ADDR) || len != 6) return Ctrl.ERR;
    const mac = readMac(st, sg, 2);
    // A multicast address cannot be a station's (and is refused as QEMU does).
    if ((mac & 1) != 0) return Ctrl.ERR;
    d.mac = mac;
    d.events |= DeviceEvent.MAC_CHANGED;
    return Ctrl.OK;
  }
  if (cmd != Ctrl.MAC_TABLE_SET || !has(d.negotiated, Feature.CTRL_RX) || len < 8) return Ctrl.ERR;
  const uni = <u32>readLe(st, sg, 2, 4);
  if (uni > (len - 8) / 6) return Ctrl.ERR;
  const multiAt = 4 + uni * 6;
  const multi = <u32>readLe(st, sg, 2 + multiAt, 4);
  if (multi > (len - 8) / 6 || multiAt + 4 + multi * 6 != len) return Ctrl.ERR;
  for (let i: u32 = 0; i < uni; i++) if ((readMac(st, sg, 2 + 4 + i * 6) & 1) != 0) return Ctrl.ERR;
  for (let i: u32 = 0; i < multi; i++) if ((readMac(st, sg, 2 + multiAt + 4 + i * 6) & 1) == 0) return Ctrl.ERR;
  const f = rxFilter(st);
  let mode = f.mode & ~(<u32>(RxMode.UNI_OVERFLOW | RxMode.MULTI_OVERFLOW));
  let n: u32 = 0;
  // More than the table holds: that kind passes whole (the driver asked for at least those).
  if (uni > <u32>Ctrl.MAC_TABLE_MAX) mode |= RxMode.UNI_OVERFLOW;
  else for (; n < uni; n++) store<u64>(st + OFF_MAC_TABLE + <usize>n * 8, readMac(st, sg, 2 + 4 + n * 6));
  const uniKept = n;
  if (multi > <u32>Ctrl.MAC_TABLE_MAX - uniKept) mode |= RxMode.MULTI_OVERFLOW;
  else for (let i: u32 = 0; i < multi; i++, n++) store<u64>(st + OFF_MAC_TABLE + <usize>n * 8, readMac(st, sg, 2 + multiAt + 4 + i * 6));
  f.uniCount = uniKept;
  f.multiCount = n - uniKept;
  f.mode = mode;
  filterUpdate(st);
  return Ctrl.OK;
}

/** CTRL_VLAN ADD / DEL: a le16 VLAN id below 4096. */
function vlanCommand(st: usize, cmd: u32, sg: Sg, len: u32): u32 {
  if (!has(device(st).negotiated, Feature.CTRL_VLAN) || cmd > <u32>Ctrl.VLAN_DEL || len != 2) return Ctrl.ERR;
  const vid = <u32>readLe(st, sg, 2, 2);
  if (vid >= <u32>Ctrl.VLAN_IDS) return Ctrl.ERR;
  vlanSet(st, vid, cmd == Ctrl.VLAN_ADD);
  return Ctrl.OK;
}

/** CTRL_ANNOUNCE ACK: the driver announced itself; VIRTIO_NET_S_ANNOUNCE clears. */
function announceAck(st: usize, cmd: u32, len: u32): u32 {
  const d = device(st);
  if (!has(d.negotiated, Feature.GUEST_ANNOUNCE) || cmd != Ctrl.ANNOUNCE_ACK || len != 0) return Ctrl.ERR;
  d.announce = 0;
  return Ctrl.OK;
}

/** CTRL_MQ VQ_PAIRS_SET: le16 pairs, 1..max_virtqueue_pairs (RSS and hash reporting are not offered). */
function mqCommand(st: usize, cmd: u32, sg: Sg, len: u32): u32 {
  const d = device(st);
  if (!has(d.negotiated, Feature.MQ) || cmd != Ctrl.MQ_VQ_PAIRS_SET || len != 2) return Ctrl.ERR;
  const pairs = <u32>readLe(st, sg, 2, 2);
  if (pairs < 1 || pairs > d.maxPairs) return Ctrl.ERR;
  if (pairs != d.pairs) d.events |= DeviceEvent.QUEUE_PAIRS_CHANGED;
  d.pairs = pairs;
  return Ctrl.OK;
}

/**
 * CTRL_GUEST_OFFLOADS SET: le64 offloads, only GUEST_* features that were negotiated, with
 * their own prerequisites (TSO/USO/ECN need GUEST_CSUM; ECN needs TSO).
 */
function offloadsCommand(st: usize, cmd: u32, sg: Sg, len: u32): u32 {
  const d = device(st);
  if (!has(d.negotiated, Feature.CTRL_GUEST_OFFLOADS) || cmd != Ctrl.GUEST_OFFLOADS_SET || len != 8) return Ctrl.ERR;
  const v = readLe(st, sg, 2, 8);
  if ((v & ~(d.negotiated & GUEST_OFFLOADS)) != 0) return Ctrl.ERR;
  if ((v & ~(<u64>1 << Feature.GUEST_CSUM)) != 0 && !has(v, Feature.GUEST_CSUM)) return Ctrl.ERR;
  if (has(v, Feature.GUEST_ECN) && !has(v, Feature.GUEST_TSO4) && !has(v, Feature.GUEST_TSO6)) return Ctrl.ERR;
  if (v != d.guestOffloads) d.events |= DeviceEvent.OFFLOADS_CHANGED;
  d.guestOffloads = v;
  d.rxFeatures = (d.negotiated & ~GUEST_OFFLOADS) | v;
  return Ctrl.OK;
}

/** Runs one command (`len` readable bytes in `sg`); returns the ack. */
function command(st: usize, sg: Sg, len: u32): u32 {
  if (len < 2) return Ctrl.ERR;
  const cls = <u32>readLe(st, sg, 0, 1);
  const cmd = <u32>readLe(st, sg, 1, 1);
  const data = len - 2;
  switch (cls) {
    case Ctrl.CLASS_RX: return rxMode(st, cmd, sg, data);
    case Ctrl.CLASS_MAC: return macCommand(st, cmd, sg, data);
    case Ctrl.CLASS_VLAN: return vlanCommand(st, cmd, sg, data);
    case Ctrl.CLASS_ANNOUNCE: return announceAck(st, cmd, data);
    case Ctrl.CLASS_MQ: return mqCommand(st, cmd, sg, data);
    case Ctrl.CLASS_GUEST_OFFLOADS: return offloadsCommand(st, cmd, sg, data);
  }
  return Ctrl.ERR;
}

/**
 * Answers up to `budget` commands on the control queue. Returns the number answered, or a
 * negative Code (NOT_READY, BROKEN). Publish with ctrlFlush().
 */
export function ctrlProcess(st: usize, budget: u32): i32 {
  const usable = queueUsable(st, QueueIndex.CTRL);
  if (usable != Code.OK) return usable;
  const d = device(st);
  const q = queueAt(st, QueueIndex.CTRL);
  const eventIdx = has(d.negotiated, Feature.EVENT_IDX);
  const w = walkState(st);
  let done: u32 = 0;
  while (done < budget) {
    const head = popHead(st, QueueIndex.CTRL, q, eventIdx);
    if (head == POP_EMPTY) break;
    if (head < 0) return Code.BROKEN;
    walkInto(st, st + OFF_CTRL_IOV, 0, true);
    w.writable = WALK_MIXED;
    w.cap = CTRL_IOV_MAX;
    const n = walkChain(q, guestMem(st), <u32>head, w);
    if (n < 0 && n != WALK_TOO_MANY) {
      fault(st, QueueIndex.CTRL, <u32>-n);
      return Code.BROKEN;
    }
    let written: u32 = 0;
    if (n == WALK_TOO_MANY || w.split >= <u32>n || w.readBytes > 0xffff) {
      // No room for an answer, or more pieces or bytes than any command has: not a command.
      count(st, QueueIndex.CTRL, Metric.CTRL_ERR);
      if (n != WALK_TOO_MANY && w.split < <u32>n) written = ackWrite(st, <u32>n, w.split, Ctrl.ERR);
    } else {
      const cmd = sgAt(st, OFF_SG_CTRL);
      cmd.iov = <u32>(st + OFF_CTRL_IOV);
      cmd.n = w.split;
      cmd.nb = d.nativeBase;
      const ack = command(st, cmd, <u32>w.readBytes);
      count(st, QueueIndex.CTRL, ack == Ctrl.OK ? Metric.CTRL_OK : Metric.CTRL_ERR);
      written = ackWrite(st, <u32>n, w.split, ack);
    }
    queueAddUsed(q, w.token, written);
    count(st, QueueIndex.CTRL, Metric.PACKETS);
    done++;
  }
  return <i32>done;
}

/** Writes the ack byte into the first writable iovec; returns the bytes written (1). */
function ackWrite(st: usize, n: u32, split: u32, ack: u32): u32 {
  const sg = sgAt(st, OFF_SG_CTRL_ACK);
  sg.iov = <u32>(st + OFF_CTRL_IOV + <usize>split * IOV_SIZE);
  sg.n = n - split;
  sg.nb = device(st).nativeBase;
  store<u8>(scratch(st), <u8>ack);
  return sgWrite(sg, 0, scratch(st), 1);
}

/**
 * The host asks the guest to announce itself (after a migration, a link change): sets
 * VIRTIO_NET_S_ANNOUNCE and raises a config change (virtio 1.2, 5.1.6.5.4). NOT_READY unless
 * GUEST_ANNOUNCE was negotiated and the driver is running.
 */
export function announce(st: usize): i32 {
  const d = device(st);
  if (!has(d.negotiated, Feature.GUEST_ANNOUNCE) || (d.status & Status.DRIVER_OK) == 0) return Code.NOT_READY;
  d.announce = 1;
  d.events |= DeviceEvent.CONFIG_CHANGED;
  return Code.OK;
}
