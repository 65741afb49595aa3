// The receive filter (virtio 1.2, 5.1.6.5.1-3): which frames reach the guest. The guest sets
// it through the control queue (net/ctrl.ts): promiscuous and the other CTRL_RX modes, a MAC
// table, a VLAN filter; the host may lock the device to its MAC (vmd's locked lladdr). Until
// the guest says otherwise the device is promiscuous (as QEMU's), and with CTRL_VLAN not
// negotiated every VLAN passes.
//
// Order (as QEMU's receive_filter): promiscuous takes everything; then a tagged frame's VLAN
// must be in the filter; then broadcast unless NOBCAST, multicast by ALLMULTI / NOMULTI / the
// table, unicast by ALLUNI / NOUNI / the device's MAC / the table.

import { Ctrl, Feature, RxMode } from "../abi";
import { device, rxFilter, OFF_MAC_TABLE, OFF_SCRATCH_RX, OFF_VLAN_BITS } from "../state";
import { macAt } from "./datapath";
import { has } from "./features";
import { Sg, sgRead16be } from "./sg";

// @ts-ignore: decorator
@inline const BROADCAST: u64 = 0xffffffffffff;
// @ts-ignore: decorator
@inline const ETHERTYPE_VLAN: u32 = 0x8100;

/** Filter state after reset: promiscuous, an empty table, every VLAN allowed. */
export function filterReset(st: usize): void {
  const f = rxFilter(st);
  f.mode = RxMode.PROMISC;
  f.uniCount = 0;
  f.multiCount = 0;
  memory.fill(st + OFF_VLAN_BITS, 0xff, <usize>Ctrl.VLAN_IDS / 8);
  filterUpdate(st);
}

/** At FEATURES_OK: with CTRL_VLAN the guest adds the VLANs it wants, so none passes until then (as QEMU). */
export function filterNegotiated(st: usize): void {
  if (has(device(st).negotiated, Feature.CTRL_VLAN)) memory.fill(st + OFF_VLAN_BITS, 0, <usize>Ctrl.VLAN_IDS / 8);
  filterUpdate(st);
}

/** Whether RX frames must be looked at: a locked MAC, or a guest filter that is not promiscuous. */
export function filterUpdate(st: usize): void {
  const d = device(st);
  const guest = has(d.negotiated, Feature.CTRL_VQ) && (rxFilter(st).mode & RxMode.PROMISC) == 0;
  d.filtering = d.lockedMac != 0 || guest ? 1 : 0;
}

/** VLAN `vid` (0..4095) in or out of the filter. */
export function vlanSet(st: usize, vid: u32, on: bool): void {
  const p = st + OFF_VLAN_BITS + <usize>(vid >> 3);
  const b = <u32>load<u8>(p);
  store<u8>(p, <u8>(on ? b | (1 << (vid & 7)) : b & ~(1 << (vid & 7))));
}

function vlanAllowed(st: usize, vid: u32): bool {
  return (<u32>load<u8>(st + OFF_VLAN_BITS + <usize>(vid >> 3)) & (1 << (vid & 7))) != 0;
}

/** Whether `mac` is in table entries [from, from + n). */
function inTable(st: usize, from: u32, n: u32, mac: u64): bool {
  for (let i: u32 = 0; i < n; i++) if (load<u64>(st + OFF_MAC_TABLE + <usize>(from + i) * 8) == mac) return true;
  return false;
}

/** Whether the frame of `len` bytes at logical offset `off` of `sg` passes the filter (call only while d.filtering). */
export function filterAccepts(st: usize, sg: Sg, off: u32, len: u32): bool {
  const d = device(st);
  const dst = macAt(st, sg, off);
  const multicast = (dst & 1) != 0;
  // vmd's locked lladdr: only frames for our MAC, broadcast or multicast.
  if (d.lockedMac != 0 && !multicast && dst != d.mac) return false;
  if (!has(d.negotiated, Feature.CTRL_VQ)) return true;
  const f = rxFilter(st);
  const mode = f.mode;
  if ((mode & RxMode.PROMISC) != 0) return true;
  if (has(d.negotiated, Feature.CTRL_VLAN) && len >= 18 && sgRead16be(sg, off + 12, st + OFF_SCRATCH_RX) == ETHERTYPE_VLAN) {
    if (!vlanAllowed(st, sgRead16be(sg, off + 14, st + OFF_SCRATCH_RX) & 0xfff)) return false;
  }
  if (dst == BROADCAST) return (mode & RxMode.NOBCAST) == 0;
  if (multicast) {
    if ((mode & RxMode.NOMULTI) != 0) return false;
    if ((mode & (RxMode.ALLMULTI | RxMode.MULTI_OVERFLOW)) != 0) return true;
    return inTable(st, f.uniCount, f.multiCount, dst);
  }
  if ((mode & RxMode.NOUNI) != 0) return false;
  if ((mode & (RxMode.ALLUNI | RxMode.UNI_OVERFLOW)) != 0) return true;
  return dst == d.mac || inTable(st, 0, f.uniCount, dst);
}
