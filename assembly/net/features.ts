// Feature bits and their dependencies (virtio 1.2, 5.1.3.1 and 2.2.1/2.2.2).

import { Feature, NetHdr } from "../abi";

// @ts-ignore: decorator
@inline export function bit(f: Feature): u64 { return <u64>1 << <u64>f; }

// @ts-ignore: decorator
@inline export function has(features: u64, f: Feature): bool { return (features & bit(f)) != 0; }

/** Features that need GUEST_CSUM. */
// @ts-ignore: decorator
@inline const NEEDS_GUEST_CSUM: u64 = (<u64>1 << Feature.GUEST_TSO4) | (<u64>1 << Feature.GUEST_TSO6) | (<u64>1 << Feature.GUEST_UFO)
  | (<u64>1 << Feature.GUEST_USO4) | (<u64>1 << Feature.GUEST_USO6);
/** Features that need CSUM. */
// @ts-ignore: decorator
@inline const NEEDS_CSUM: u64 = (<u64>1 << Feature.HOST_TSO4) | (<u64>1 << Feature.HOST_TSO6) | (<u64>1 << Feature.HOST_UFO)
  | (<u64>1 << Feature.HOST_USO);
/** Features that need CTRL_VQ. */
// @ts-ignore: decorator
@inline const NEEDS_CTRL_VQ: u64 = (<u64>1 << Feature.CTRL_RX) | (<u64>1 << Feature.CTRL_VLAN) | (<u64>1 << Feature.GUEST_ANNOUNCE)
  | (<u64>1 << Feature.MQ) | (<u64>1 << Feature.CTRL_MAC_ADDR) | (<u64>1 << Feature.CTRL_GUEST_OFFLOADS) | (<u64>1 << Feature.RSS)
  | (<u64>1 << Feature.NOTF_COAL);

/**
 * True if every feature in the set has its prerequisites in the set too
 * (virtio 1.2, 5.1.3.1; USO from 1.3). Used both for what the device offers (2.2.1: the
 * device MUST NOT offer a feature without its prerequisites) and for what the driver accepts.
 */
export function dependenciesMet(f: u64): bool {
  if ((f & NEEDS_GUEST_CSUM) != 0 && !has(f, Feature.GUEST_CSUM)) return false;
  if ((f & NEEDS_CSUM) != 0 && !has(f, Feature.CSUM)) return false;
  if ((f & NEEDS_CTRL_VQ) != 0 && !has(f, Feature.CTRL_VQ)) return false;
  if (has(f, Feature.GUEST_ECN) && !has(f, Feature.GUEST_TSO4) && !has(f, Feature.GUEST_TSO6)) return false;
  if (has(f, Feature.HOST_ECN) && !has(f, Feature.HOST_TSO4) && !has(f, Feature.HOST_TSO6)) return false;
  if (has(f, Feature.RSC_EXT) && !has(f, Feature.HOST_TSO4) && !has(f, Feature.HOST_TSO6)) return false;
  if (has(f, Feature.CTRL_RX_EXTRA) && !has(f, Feature.CTRL_RX)) return false;
  return true;
}

/**
 * `f` without the features whose prerequisites are missing from it (the same table as
 * dependenciesMet). For front-ends that have already agreed a set with the guest and only tell
 * us (vhost-user): QEMU passes e.g. GUEST_TSO4 without GUEST_CSUM when csum=off,guest_csum=off.
 */
export function withoutUnmet(f: u64): u64 {
  if (!has(f, Feature.GUEST_CSUM)) f &= ~NEEDS_GUEST_CSUM;
  if (!has(f, Feature.CSUM)) f &= ~NEEDS_CSUM;
  if (!has(f, Feature.CTRL_VQ)) f &= ~NEEDS_CTRL_VQ;
  if (!has(f, Feature.GUEST_TSO4) && !has(f, Feature.GUEST_TSO6)) f &= ~bit(Feature.GUEST_ECN);
  if (!has(f, Feature.HOST_TSO4) && !has(f, Feature.HOST_TSO6)) f &= ~(bit(Feature.HOST_ECN) | bit(Feature.RSC_EXT));
  if (!has(f, Feature.CTRL_RX)) f &= ~bit(Feature.CTRL_RX_EXTRA);
  return f;
}

/** The control queue and what it carries (net/ctrl.ts). MQ: the host runs one core per pair. */
// @ts-ignore: decorator
@inline export const CTRL_FEATURES: u64 = (<u64>1 << Feature.CTRL_VQ) | (<u64>1 << Feature.CTRL_RX) | (<u64>1 << Feature.CTRL_RX_EXTRA)
  | (<u64>1 << Feature.CTRL_VLAN) | (<u64>1 << Feature.CTRL_MAC_ADDR) | (<u64>1 << Feature.GUEST_ANNOUNCE)
  | (<u64>1 << Feature.CTRL_GUEST_OFFLOADS) | (<u64>1 << Feature.MQ);

/** The offloads CTRL_GUEST_OFFLOADS may turn on and off (virtio 1.2, 5.1.6.5.6.1). */
// @ts-ignore: decorator
@inline export const GUEST_OFFLOADS: u64 = (<u64>1 << Feature.GUEST_CSUM) | (<u64>1 << Feature.GUEST_TSO4) | (<u64>1 << Feature.GUEST_TSO6)
  | (<u64>1 << Feature.GUEST_ECN) | (<u64>1 << Feature.GUEST_UFO) | (<u64>1 << Feature.GUEST_USO4) | (<u64>1 << Feature.GUEST_USO6);

/**
 * Features this core implements. Anything else cannot be offered: a guest would rely on
 * behaviour the device does not have. (UFO is not offered: Linux stopped producing it in 4.14
 * and IP fragmentation is not segmentation.)
 */
// @ts-ignore: decorator
@inline export const IMPLEMENTED: u64 = (<u64>1 << Feature.CSUM) | (<u64>1 << Feature.GUEST_CSUM) | (<u64>1 << Feature.MTU)
  | (<u64>1 << Feature.MAC) | (<u64>1 << Feature.STATUS) | (<u64>1 << Feature.INDIRECT_DESC) | (<u64>1 << Feature.EVENT_IDX)
  | (<u64>1 << Feature.VERSION_1) | (<u64>1 << Feature.ANY_LAYOUT)
  | (<u64>1 << Feature.HOST_TSO4) | (<u64>1 << Feature.HOST_TSO6) | (<u64>1 << Feature.HOST_ECN)
  | (<u64>1 << Feature.GUEST_TSO4) | (<u64>1 << Feature.GUEST_TSO6) | (<u64>1 << Feature.GUEST_ECN)
  | (<u64>1 << Feature.HOST_USO) | (<u64>1 << Feature.GUEST_USO4) | (<u64>1 << Feature.GUEST_USO6)
  | (<u64>1 << Feature.MRG_RXBUF) | CTRL_FEATURES | (<u64>1 << Feature.RING_PACKED)
  // Every queue uses buffers in the order they were made available (virtio 1.2, 2.7.9 and
  // 2.8.20): chains are taken and completed one after another, a frame put back stays first.
  | (<u64>1 << Feature.IN_ORDER);

/**
 * Whether a GSO type (with its ECN bit) may be used in the direction given: HOST_* features
 * for what the guest sends, GUEST_* for what the device hands the guest (virtio 1.2, 5.1.6.2.1
 * and 5.1.6.4.1). `ipv6` says which GUEST_USO bit a UDP_L4 frame to the guest needs. UFO
 * (GSO_UDP) is never allowed: it is not offered.
 */
export function gsoAllowed(negotiated: u64, gsoType: u32, fromGuest: bool, ipv6: bool = false): bool {
  const t = gsoType & ~(<u32>NetHdr.GSO_ECN);
  let ok = false;
  if (t == NetHdr.GSO_TCPV4) ok = has(negotiated, fromGuest ? Feature.HOST_TSO4 : Feature.GUEST_TSO4);
  else if (t == NetHdr.GSO_TCPV6) ok = has(negotiated, fromGuest ? Feature.HOST_TSO6 : Feature.GUEST_TSO6);
  else if (t == NetHdr.GSO_UDP_L4) {
    ok = fromGuest ? has(negotiated, Feature.HOST_USO) : has(negotiated, ipv6 ? Feature.GUEST_USO6 : Feature.GUEST_USO4);
    // ECN applies to TCP only.
    if ((gsoType & NetHdr.GSO_ECN) != 0) ok = false;
  }
  if (ok && (gsoType & NetHdr.GSO_ECN) != 0) ok = has(negotiated, fromGuest ? Feature.HOST_ECN : Feature.GUEST_ECN);
  return ok;
}

/** The default offer: VERSION_1, MAC, STATUS, MTU, CSUM, GUEST_CSUM, EVENT_IDX, INDIRECT_DESC. */
// @ts-ignore: decorator
@inline export const DEFAULT_OFFER: u64 = (<u64>1 << Feature.VERSION_1) | (<u64>1 << Feature.MAC) | (<u64>1 << Feature.STATUS)
  | (<u64>1 << Feature.MTU) | (<u64>1 << Feature.CSUM) | (<u64>1 << Feature.GUEST_CSUM) | (<u64>1 << Feature.EVENT_IDX)
  | (<u64>1 << Feature.INDIRECT_DESC);
