// Feature bits and their dependencies (virtio 1.2, 5.1.3.1 and 2.2.1/2.2.2).

import { Feature } from "../abi";

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
 * Features this core implements. Anything else cannot be offered: a guest would rely on
 * behaviour the device does not have. (Control queue, MQ, GSO and MRG_RXBUF come later.)
 */
// @ts-ignore: decorator
@inline export const IMPLEMENTED: u64 = (<u64>1 << Feature.CSUM) | (<u64>1 << Feature.GUEST_CSUM) | (<u64>1 << Feature.MTU)
  | (<u64>1 << Feature.MAC) | (<u64>1 << Feature.STATUS) | (<u64>1 << Feature.INDIRECT_DESC) | (<u64>1 << Feature.EVENT_IDX)
  | (<u64>1 << Feature.VERSION_1) | (<u64>1 << Feature.ANY_LAYOUT);

/** The default offer: VERSION_1, MAC, STATUS, MTU, CSUM, GUEST_CSUM, EVENT_IDX, INDIRECT_DESC. */
// @ts-ignore: decorator
@inline export const DEFAULT_OFFER: u64 = (<u64>1 << Feature.VERSION_1) | (<u64>1 << Feature.MAC) | (<u64>1 << Feature.STATUS)
  | (<u64>1 << Feature.MTU) | (<u64>1 << Feature.CSUM) | (<u64>1 << Feature.GUEST_CSUM) | (<u64>1 << Feature.EVENT_IDX)
  | (<u64>1 << Feature.INDIRECT_DESC);
