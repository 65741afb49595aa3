// The device's state beyond what replaying the negotiation restores (the host's
// VirtioNetDevice.saveState / restore replay features and rings with adopt()): the receive
// filter, the MAC, announce, queue pairs, the guest offloads in effect, the link, and the
// counters. Saved into the staging area (idle between frames) for the host to copy out, and
// restored from bytes the host put there, checked before anything changes.
//
//   0 magic u32 · 4 layout u32 · 8 mac u64 · 16 guest offloads u64 · 24 link u32 · 28 announce u32
//   32 pairs u32 · 36 reserved · 40 receive filter (RxFilter, MAC table, VLAN bits) · counters (u64 × N × queues)

import { Code, Ctrl, Feature, Layout, MetricCount } from "../abi";
import { device, rxFilter, OFF_FILTER, OFF_METRICS, OFF_STAGING, QUEUE_COUNT, STAGING_SIZE } from "../state";
import { filterUpdate } from "./filter";
import { has, GUEST_OFFLOADS } from "./features";

// @ts-ignore: decorator
@inline const SAVED_MAGIC: u32 = 0x62776e76; // "vnwb"
// @ts-ignore: decorator
@inline const FILTER_BYTES: u32 = 16 + <u32>Ctrl.MAC_TABLE_MAX * 8 + <u32>Ctrl.VLAN_IDS / 8;
// @ts-ignore: decorator
@inline const METRICS_BYTES: u32 = QUEUE_COUNT * 8 * <u32>MetricCount.N;
// @ts-ignore: decorator
@inline const AT_FILTER: u32 = 40;

/** Bytes of the saved record. */
export function savedSize(): u32 { return AT_FILTER + FILTER_BYTES + METRICS_BYTES; }

/** Writes the record into the staging area; returns its address (savedSize() bytes). */
export function saveExtras(st: usize): usize {
  const d = device(st);
  const p = st + OFF_STAGING;
  store<u32>(p, SAVED_MAGIC);
  store<u32>(p, Layout.VERSION, 4);
  store<u64>(p, d.mac, 8);
  store<u64>(p, d.guestOffloads, 16);
  store<u32>(p, d.linkUp, 24);
  store<u32>(p, d.announce, 28);
  store<u32>(p, d.pairs, 32);
  store<u32>(p, 0, 36);
  memory.copy(p + AT_FILTER, st + OFF_FILTER, FILTER_BYTES);
  memory.copy(p + AT_FILTER + FILTER_BYTES, st + OFF_METRICS, METRICS_BYTES);
  return p;
}

/**
 * Restores the record the host put in the staging area, on a device whose negotiation was
 * replayed already. INVALID (nothing changed) for another layout, a filter table that claims
 * more entries than it holds, queue pairs beyond the device's, or offloads not negotiated.
 */
export function restoreExtras(st: usize): i32 {
  if (savedSize() > STAGING_SIZE) return Code.INVALID;
  const d = device(st);
  const p = st + OFF_STAGING;
  if (load<u32>(p) != SAVED_MAGIC || load<u32>(p, 4) != Layout.VERSION) return Code.INVALID;
  const offloads = load<u64>(p, 16);
  const pairs = load<u32>(p, 32);
  const uni = load<u32>(p + AT_FILTER, 4);
  const multi = load<u32>(p + AT_FILTER, 8);
  if (uni + multi > <u32>Ctrl.MAC_TABLE_MAX || uni > <u32>Ctrl.MAC_TABLE_MAX) return Code.INVALID;
  if (pairs < 1 || pairs > d.maxPairs) return Code.INVALID;
  if ((offloads & ~(d.negotiated & GUEST_OFFLOADS)) != 0) return Code.INVALID;
  d.mac = load<u64>(p, 8) & 0xffffffffffff;
  d.guestOffloads = offloads;
  d.rxFeatures = (d.negotiated & ~GUEST_OFFLOADS) | offloads;
  d.linkUp = load<u32>(p, 24) != 0 ? 1 : 0;
  d.announce = load<u32>(p, 28) != 0 && has(d.negotiated, Feature.GUEST_ANNOUNCE) ? 1 : 0;
  d.pairs = pairs;
  memory.copy(st + OFF_FILTER, p + AT_FILTER, FILTER_BYTES);
  memory.copy(st + OFF_METRICS, p + AT_FILTER + FILTER_BYTES, METRICS_BYTES);
  rxFilter(st).mode &= 0xff;
  filterUpdate(st);
  return Code.OK;
}
