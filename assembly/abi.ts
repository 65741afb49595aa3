// The ABI between the Wasm core and its host: every number that crosses the boundary.
//
// This file is valid AssemblyScript and valid TypeScript at once (const enums with literal
// values and nothing else), so the core and the host import the same definitions and no
// constant is written twice. Keep it that way: no types, no functions, no strings.

/** Device status bits (virtio 1.2, 2.1). */
export const enum Status {
  ACKNOWLEDGE = 1,
  DRIVER = 2,
  DRIVER_OK = 4,
  FEATURES_OK = 8,
  NEEDS_RESET = 0x40,
  FAILED = 0x80,
}

/** Feature bit numbers (virtio 1.2, 5.1.3 and 6; Linux uapi virtio_net.h / virtio_config.h). */
export const enum Feature {
  CSUM = 0,
  GUEST_CSUM = 1,
  CTRL_GUEST_OFFLOADS = 2,
  MTU = 3,
  MAC = 5,
  GUEST_TSO4 = 7,
  GUEST_TSO6 = 8,
  GUEST_ECN = 9,
  GUEST_UFO = 10,
  HOST_TSO4 = 11,
  HOST_TSO6 = 12,
  HOST_ECN = 13,
  HOST_UFO = 14,
  MRG_RXBUF = 15,
  STATUS = 16,
  CTRL_VQ = 17,
  CTRL_RX = 18,
  CTRL_VLAN = 19,
  CTRL_RX_EXTRA = 20,
  GUEST_ANNOUNCE = 21,
  MQ = 22,
  CTRL_MAC_ADDR = 23,
  NOTIFY_ON_EMPTY = 24,
  ANY_LAYOUT = 27,
  INDIRECT_DESC = 28,
  EVENT_IDX = 29,
  VERSION_1 = 32,
  ACCESS_PLATFORM = 33,
  RING_PACKED = 34,
  IN_ORDER = 35,
  NOTF_COAL = 53,
  GUEST_USO4 = 54,
  GUEST_USO6 = 55,
  HOST_USO = 56,
  HASH_REPORT = 57,
  GUEST_HDRLEN = 59,
  RSS = 60,
  RSC_EXT = 61,
}

/** Queue indices of a device with one queue pair (virtio 1.2, 5.1.2). */
export const enum QueueIndex {
  RX = 0,
  TX = 1,
  /** The control queue, with VIRTIO_NET_F_CTRL_VQ (after the last pair's queues: 2N). */
  CTRL = 2,
}

/**
 * The control queue's commands (virtio 1.2, 5.1.6.5): class, command, and what they carry.
 * Each command is `u8 class, u8 command, data` (device-readable), then `u8 ack` (writable).
 */
export const enum Ctrl {
  OK = 0,
  ERR = 1,
  CLASS_RX = 0,
  RX_PROMISC = 0,
  RX_ALLMULTI = 1,
  RX_ALLUNI = 2,
  RX_NOMULTI = 3,
  RX_NOUNI = 4,
  RX_NOBCAST = 5,
  CLASS_MAC = 1,
  MAC_TABLE_SET = 0,
  MAC_ADDR_SET = 1,
  CLASS_VLAN = 2,
  VLAN_ADD = 0,
  VLAN_DEL = 1,
  CLASS_ANNOUNCE = 3,
  ANNOUNCE_ACK = 0,
  CLASS_MQ = 4,
  MQ_VQ_PAIRS_SET = 0,
  CLASS_GUEST_OFFLOADS = 5,
  GUEST_OFFLOADS_SET = 0,
  /** MAC filter entries kept (unicast and multicast together, as QEMU's MAC_TABLE_ENTRIES); beyond, that kind is all accepted. */
  MAC_TABLE_MAX = 64,
  /** VLAN ids 0..4095. */
  VLAN_IDS = 4096,
  /** Largest queue pair count a device may advertise (virtio 1.2, 5.1.4: VQ_PAIRS_MAX). */
  PAIRS_MAX = 0x8000,
}

/** The receive filter's mode bits (CTRL_RX commands), as rxMode() reports them. */
export const enum RxMode {
  PROMISC = 1,
  ALLMULTI = 2,
  ALLUNI = 4,
  NOMULTI = 8,
  NOUNI = 16,
  NOBCAST = 32,
  /** MAC_TABLE_SET had more unicast / multicast entries than the table holds: all of that kind pass. */
  UNI_OVERFLOW = 64,
  MULTI_OVERFLOW = 128,
}

/** What the backend on the far side of the device expects in front of each frame. */
export const enum BackendKind {
  /** No header: every frame leaves fully checksummed (pcap, a socket, a switch port without offloads). */
  PLAIN = 0,
  /** Linux tap with IFF_VNET_HDR: the header is virtio_net_hdr (10 or 12 bytes, same as the guest's). */
  VNET_HDR = 1,
  /** OpenBSD tap with TUNSCAP: the header is struct tun_hdr (8 bytes, host byte order). */
  TUN_HDR = 2,
}

/** What the device does when a guest sets NEEDS_CSUM without having negotiated CSUM. */
export const enum CsumPolicy {
  /** Finish the checksum in software and count it (default). */
  COMPLETE = 0,
  /** Drop the frame and count it. */
  DROP = 1,
  /** Hand the partial checksum on as if CSUM had been negotiated. */
  PASS = 2,
}

/** Options set with setOption(). */
export const enum DeviceOption {
  BACKEND = 0,
  CSUM_POLICY = 1,
  LOCKED_MAC = 2,
  MTU = 3,
  LINK_UP = 4,
  /**
   * GSO types the backend takes whole, as a mask of bits (1 << NetHdr.GSO_*), ECN as
   * 1 << 7 (GsoMask). Others are segmented in software before they reach it. PLAIN backends
   * take none whatever this says.
   */
  BACKEND_GSO = 5,
  /** max_virtqueue_pairs in config space (with MQ; default 1): VQ_PAIRS_SET accepts 1..this. */
  MAX_QUEUE_PAIRS = 6,
}

/** Bits of DeviceOption.BACKEND_GSO. */
export const enum GsoMask {
  TCPV4 = 2,
  TCPV6 = 16,
  UDP_L4 = 32,
  ECN = 128,
  /** What every Linux tap takes with IFF_VNET_HDR (USO needs Linux 6.2). */
  TAP_DEFAULT = 146,
  ALL = 178,
}

/** Event bits accumulated by the core and collected by the host with takeEvents(). */
export const enum DeviceEvent {
  /** FEATURES_OK was accepted: negotiatedFeatures() is valid; update the backend's capabilities. */
  NEGOTIATED = 1,
  /** Config space changed (link, NEEDS_RESET): the transport owes the driver a config-change notification. */
  CONFIG_CHANGED = 2,
  /** The device entered NEEDS_RESET. */
  NEEDS_RESET = 4,
  /** The device was reset by the driver (status 0). */
  RESET = 8,
  /** CTRL_GUEST_OFFLOADS changed the offloads the guest takes: guestOffloads(); the backend's follow. */
  OFFLOADS_CHANGED = 16,
  /** CTRL_MQ VQ_PAIRS_SET was accepted: queuePairs() pairs are in use. */
  QUEUE_PAIRS_CHANGED = 32,
  /** CTRL_MAC_ADDR_SET changed the device's MAC. */
  MAC_CHANGED = 64,
}

/** Return codes of the core's calls. Negative values are errors; zero and positive are results. */
export const enum Code {
  OK = 0,
  /** The queue is not ready (not enabled, not sized, device not DRIVER_OK). */
  NOT_READY = -1,
  /** The queue hit a malformed ring and stopped; the device is in NEEDS_RESET until reset. */
  BROKEN = -2,
  /** An argument was out of range (queue index, size, region). */
  INVALID = -3,
  /** A call came out of order (e.g. txNext while a frame is still pending). */
  SEQUENCE = -4,
  /** Features refused at FEATURES_OK (dependency or offer violated). */
  REFUSED = -5,
  /** txDone(): the backend cannot take the frame now (EAGAIN); keep it on the ring for later. */
  RETRY = -6,
}

/** Number of counters per queue. */
export const enum MetricCount {
  N = 45,
}

/**
 * Per-queue counters (u64 each), at metricsPtr(state, queue) + 8 * Metric.X.
 * Ring faults (RESET_*) put the device in NEEDS_RESET; frame faults (DROP_*) lose one frame.
 */
export const enum Metric {
  PACKETS = 0,
  BYTES = 1,
  NOTIFICATIONS = 2,
  INTERRUPTS = 3,
  INTERRUPTS_SUPPRESSED = 4,
  /** Partial checksums handed on (to the backend on TX, to the guest on RX) without computing them. */
  CSUM_OFFLOADED = 5,
  /** Checksums computed in software because the receiver could not take a partial one. */
  CSUM_SOFTWARE = 6,
  /** NEEDS_CSUM from a guest that did not negotiate CSUM (any policy). */
  CSUM_UNNEGOTIATED = 7,
  /** Frames whose header needed no checksum work. */
  CSUM_NONE = 8,
  /** RX: checksums handed to the guest as DATA_VALID. */
  CSUM_DATA_VALID = 9,
  /** RX: IPv4 header / ICMP checksums done in software for a tun_hdr backend. */
  CSUM_SOFTWARE_L3 = 10,
  /** RX: 802.1Q tags re-inserted in software. */
  VLAN_REINSERTED = 11,

  DROP_HDR_SHORT = 12,
  DROP_RUNT = 13,
  DROP_OVERSIZE = 14,
  DROP_BAD_CSUM_OFFSETS = 15,
  DROP_CSUM_POLICY = 16,
  DROP_GSO_UNSUPPORTED = 17,
  DROP_TOO_MANY_SEGMENTS = 18,
  DROP_LOCKED_MAC = 19,
  DROP_BACKEND = 20,
  DROP_NO_BUFFER = 21,
  DROP_BUFFER_TOO_SMALL = 22,
  DROP_BAD_BACKEND_HDR = 23,
  DROP_NOT_READY = 24,
  /** A GSO header that breaks the rules (no NEEDS_CSUM, gso_size 0, not TCP at csum_start). */
  DROP_BAD_GSO = 25,
  /** GSO frames handed on as GSO (to the backend on TX, to the guest on RX): nobody segmented them. */
  GSO_OFFLOADED = 26,
  /** RX: extra buffers used by packets that spanned several (MRG_RXBUF, num_buffers - 1). */
  BUFFERS_MERGED = 27,

  RESET_HEAD_INDEX = 28,
  RESET_DESC_INDEX = 29,
  RESET_DESC_ADDR = 30,
  RESET_CHAIN_LOOP = 31,
  RESET_AVAIL_JUMP = 32,
  RESET_NESTED_INDIRECT = 33,
  RESET_INDIRECT_LEN = 34,
  RESET_INDIRECT_UNNEGOTIATED = 35,
  RESET_ZERO_LENGTH = 36,
  RESET_DIRECTION = 37,
  RESET_RING_ADDR = 38,
  RESET_CHAIN_TOO_BIG = 39,
  /** Large segments split in software (TX: for the backend; RX: for the guest). */
  GSO_SEGMENTED = 40,
  /** Frames produced by software segmentation. */
  GSO_SEGMENTS = 41,
  /** Control queue: commands answered VIRTIO_NET_OK. */
  CTRL_OK = 42,
  /** Control queue: commands answered VIRTIO_NET_ERR (unknown, unnegotiated, malformed, out of range), or with no room for the answer. */
  CTRL_ERR = 43,
  /** RX: frames the guest's receive filter refused (CTRL_RX modes, MAC table, VLAN filter). */
  DROP_FILTERED = 44,
}

/** virtio_net_hdr flags and gso types (virtio 1.2, 5.1.6). */
export const enum NetHdr {
  F_NEEDS_CSUM = 1,
  F_DATA_VALID = 2,
  F_RSC_INFO = 4,
  GSO_NONE = 0,
  GSO_TCPV4 = 1,
  GSO_UDP = 3,
  GSO_TCPV6 = 4,
  GSO_UDP_L4 = 5,
  GSO_ECN = 0x80,
  /** Header size with VERSION_1 or MRG_RXBUF. */
  SIZE_V1 = 12,
  /** Legacy header size without MRG_RXBUF. */
  SIZE_LEGACY = 10,
}

/** OpenBSD struct tun_hdr flags (sys/net/if_tun.h). */
export const enum TunHdr {
  SIZE = 8,
  F_VTAG = 0x0010,
  F_TCP_MSS = 0x0020,
  F_IPV4_CSUM = 0x0100,
  F_TCP_CSUM = 0x0200,
  F_UDP_CSUM = 0x0400,
  F_ICMP_CSUM = 0x0800,
}

/** Parse result layout (u32 fields) written by parseGpa() for tests and tools. */
export const enum ParseField {
  /** 0 unknown, 4 IPv4, 6 IPv6. */
  L3_KIND = 0,
  L3_OFF = 1,
  /** IP protocol of the transport header, or 255 when unknown. */
  L4_PROTO = 2,
  L4_OFF = 3,
  /** 1 if this is a non-first fragment or a fragmented datagram (no L4 checksum possible). */
  FRAGMENT = 4,
  VLAN_TAGS = 5,
  /** End of the IP datagram within the frame (excludes Ethernet padding). */
  L3_END = 6,
  /**
   * Where the pseudo-header's destination address is: the IP header's, or a source route's
   * final destination (IPv4 LSRR/SSRR not yet exhausted; IPv6 routing header with segments left).
   */
  PSEUDO_DST_OFF = 7,
  COUNT = 8,
}

/** Layout version of the state block; bump when any offset moves. */
export const enum Layout {
  VERSION = 5,
  /** Maximum number of guest memory regions. */
  MAX_REGIONS = 32,
  /** Maximum iovecs per frame, as Linux IOV_MAX. */
  MAX_IOV = 1024,
  /** Largest queue the device accepts (virtio 1.2, 2.7). */
  MAX_QUEUE_SIZE = 32768,
}

/**
 * Why txForward() stopped; its result is (frames forwarded) | (reason << Forward.SHIFT).
 * Forwarding moves frames between devices in one memory (the embedded switch's fast path).
 */
export const enum Forward {
  SHIFT = 24,
  /** The TX ring is empty (notifications re-enabled unless polling). */
  EMPTY = 0,
  /** The budget ran out with frames left: call again before sleeping. */
  BUDGET = 1,
  /** The next frame is the host's: broadcast, unknown or unlearned address, no room at the
   * receiver, a large segment it cannot take. It is left on the ring for processTx(). */
  HOST = 2,
  /** The queue is not ready or broken. */
  ERROR = 3,
  /** Entries in a device's forwarding table. */
  TABLE_MAX = 32,
}

