/** Feature bits by name, and conversions between names, bit sets and lists. */
import { Feature } from "../../assembly/abi.js";

/** Lower-case names as QEMU's virtio-net-pci properties and Linux's ethtool speak of them. */
export const FEATURE_NAMES: ReadonlyArray<readonly [string, Feature]> = [
  ["csum", Feature.CSUM],
  ["guest_csum", Feature.GUEST_CSUM],
  ["ctrl_guest_offloads", Feature.CTRL_GUEST_OFFLOADS],
  ["mtu", Feature.MTU],
  ["mac", Feature.MAC],
  ["guest_tso4", Feature.GUEST_TSO4],
  ["guest_tso6", Feature.GUEST_TSO6],
  ["guest_ecn", Feature.GUEST_ECN],
  ["guest_ufo", Feature.GUEST_UFO],
  ["host_tso4", Feature.HOST_TSO4],
  ["host_tso6", Feature.HOST_TSO6],
  ["host_ecn", Feature.HOST_ECN],
  ["host_ufo", Feature.HOST_UFO],
  ["mrg_rxbuf", Feature.MRG_RXBUF],
  ["status", Feature.STATUS],
  ["ctrl_vq", Feature.CTRL_VQ],
  ["ctrl_rx", Feature.CTRL_RX],
  ["ctrl_vlan", Feature.CTRL_VLAN],
  ["ctrl_rx_extra", Feature.CTRL_RX_EXTRA],
  ["guest_announce", Feature.GUEST_ANNOUNCE],
  ["mq", Feature.MQ],
  ["ctrl_mac_addr", Feature.CTRL_MAC_ADDR],
  ["notify_on_empty", Feature.NOTIFY_ON_EMPTY],
  ["any_layout", Feature.ANY_LAYOUT],
  ["indirect_desc", Feature.INDIRECT_DESC],
  ["event_idx", Feature.EVENT_IDX],
  ["version_1", Feature.VERSION_1],
  ["access_platform", Feature.ACCESS_PLATFORM],
  ["ring_packed", Feature.RING_PACKED],
  ["in_order", Feature.IN_ORDER],
  ["notf_coal", Feature.NOTF_COAL],
  ["guest_uso4", Feature.GUEST_USO4],
  ["guest_uso6", Feature.GUEST_USO6],
  ["host_uso", Feature.HOST_USO],
  ["hash_report", Feature.HASH_REPORT],
  ["guest_hdrlen", Feature.GUEST_HDRLEN],
  ["rss", Feature.RSS],
  ["rsc_ext", Feature.RSC_EXT],
];

/** The mask of one feature bit. */
export function featureBit(f: Feature): bigint {
  return 1n << BigInt(f);
}

/** Whether feature `f` is in the set `mask`. */
export function hasFeature(mask: bigint, f: Feature): boolean {
  return (mask & featureBit(f)) !== 0n;
}

/** A set of features as a bit mask. */
export function featureMask(...fs: Feature[]): bigint {
  return fs.reduce((m, f) => m | featureBit(f), 0n);
}

/** Names of the bits set in `mask`, unknown bits as `bitN`. */
export function featureList(mask: bigint): string[] {
  const out: string[] = [];
  for (let b = 0n; b < 64n; b++) {
    if ((mask >> b) & 1n) {
      const known = FEATURE_NAMES.find(([, f]) => BigInt(f) === b);
      out.push(known ? known[0] : `bit${b}`);
    }
  }
  return out;
}

/** Parses a comma-separated list of feature names into a mask; throws on an unknown name. */
export function parseFeatureList(list: string): bigint {
  let mask = 0n;
  for (const raw of list.split(",")) {
    const name = raw.trim().toLowerCase();
    if (!name) continue;
    const known = FEATURE_NAMES.find(([n]) => n === name);
    if (!known) throw new Error(`unknown feature "${name}" (known: ${FEATURE_NAMES.map(([n]) => n).join(", ")})`);
    mask |= featureBit(known[1]);
  }
  return mask;
}

/**
 * Everything the core implements, offered by the vhost-user back-end, the CLI and the v86
 * adapter: the core's default offer (VERSION_1 MAC STATUS MTU CSUM GUEST_CSUM EVENT_IDX
 * INDIRECT_DESC) plus segmentation offloads both ways, mergeable RX buffers and packed rings
 * (the driver chooses the layout; QEMU passes RING_PACKED on only with packed=on). Whatever the
 * other side cannot take the core does in software (checksums finished, large segments
 * split), so the offer does not depend on the backend. (Under vhost-user QEMU answers MAC and
 * STATUS from its own config space and never acks them to the back-end; offering them is
 * harmless there and right for a front-end that passes them through.)
 */
export const FULL_OFFER_LIST = "version_1,mac,status,mtu,csum,guest_csum,event_idx,indirect_desc,mrg_rxbuf,"
  + "host_tso4,host_tso6,host_ecn,host_uso,guest_tso4,guest_tso6,guest_ecn,guest_uso4,guest_uso6,ring_packed,in_order";
export const FULL_OFFER: bigint = parseFeatureList(FULL_OFFER_LIST);

/**
 * The control queue and what it carries, for hosts that own the whole device (the PCI and
 * MMIO transports, the v86 adapter, embedders): receive filter modes, MAC table and address,
 * VLAN filter, announce, guest offloads (core: net/ctrl.ts). Not under vhost-user, where the
 * front-end keeps the control queue (the back-end never offers or adopts these).
 */
export const CTRL_OFFER_LIST = "ctrl_vq,ctrl_rx,ctrl_rx_extra,ctrl_vlan,ctrl_mac_addr,guest_announce,ctrl_guest_offloads";
export const CTRL_OFFER: bigint = parseFeatureList(CTRL_OFFER_LIST);
/** Every feature that needs the control queue (CTRL_OFFER, MQ, and the ones the core does not implement). */
export const NEEDS_CTRL_VQ: bigint = CTRL_OFFER | featureMask(Feature.MQ, Feature.RSS, Feature.NOTF_COAL, Feature.HASH_REPORT);
/** The offloads CTRL_GUEST_OFFLOADS may switch (virtio 1.2, 5.1.6.5.6.1). */
export const GUEST_OFFLOADS: bigint = featureMask(Feature.GUEST_CSUM, Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN,
  Feature.GUEST_UFO, Feature.GUEST_USO4, Feature.GUEST_USO6);
