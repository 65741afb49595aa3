/**
 * Linux tap constants (include/uapi/linux/if_tun.h, x86_64 _IOC encoding) and the mapping from
 * the guest's negotiated features to the tap's offload flags.
 */
import { Feature } from "../../assembly/abi.js";
import { hasFeature } from "../device/features.js";

export const TUNSETIFF = 0x400454ca;
export const TUNGETFEATURES = 0x800454cf;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNGETVNETHDRSZ = 0x800454d7;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNSETVNETLE = 0x400454dc;
/** _IOW('T', 217, int): attach or detach one queue of a multi-queue tap (struct ifreq flags). */
export const TUNSETQUEUE = 0x400454d9;
/** _IOR('T', 224, int): the eBPF program (fd, -1 for none) that picks a multi-queue tap's queue. */
export const TUNSETSTEERINGEBPF = 0x800454e0;

export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_ATTACH_QUEUE = 0x0200;
export const IFF_DETACH_QUEUE = 0x0400;
export const IFF_VNET_HDR = 0x4000;

export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** struct ifreq is 40 bytes on x86_64: ifr_name[16] then the union (ifr_flags: short at 16). */
export const IFREQ_SIZE = 40;
export const IFNAMSIZ = 16;


/**
 * TUN_F_* flags for TUNSETOFFLOAD. They say what the reader (this device) accepts from the
 * kernel, so they follow the guest's GUEST_* features: the device passes partial checksums
 * and GSO frames from the tap to the guest only where the guest can take them (as Firecracker's
 * build_tap_offload_features and crosvm do). Large segments the guest cannot take are never
 * asked for, so the device never has to split what the kernel could have split itself.
 */
export function tapOffloadFlags(negotiated: bigint): number {
  if (!hasFeature(negotiated, Feature.GUEST_CSUM)) return 0;
  let f = TUN_F_CSUM;
  if (hasFeature(negotiated, Feature.GUEST_TSO4)) f |= TUN_F_TSO4;
  if (hasFeature(negotiated, Feature.GUEST_TSO6)) f |= TUN_F_TSO6;
  if (hasFeature(negotiated, Feature.GUEST_ECN) && (f & (TUN_F_TSO4 | TUN_F_TSO6))) f |= TUN_F_TSO_ECN;
  if (hasFeature(negotiated, Feature.GUEST_UFO)) f |= TUN_F_UFO;
  if (hasFeature(negotiated, Feature.GUEST_USO4)) f |= TUN_F_USO4;
  if (hasFeature(negotiated, Feature.GUEST_USO6)) f |= TUN_F_USO6;
  return f;
}
