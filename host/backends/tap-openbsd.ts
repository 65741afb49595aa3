/**
 * An OpenBSD tap(4) with struct tun_hdr enabled by TUNSCAP: the engine translates between the
 * guest's virtio_net_hdr and tun_hdr (BackendKind.TUN_HDR). This file is the control side and
 * the fd wrapper; it talks to the kernel only through the `TapSyscalls` it is given, so the
 * logic runs (and is tested) anywhere, while real OpenBSD supplies real syscalls.
 *
 * Untested on real OpenBSD: the ioctl numbers (computed from if_tun.h's _IOW/_IOR encoding),
 * opening /dev/tapN, and the kernel's handling of the headers this writes (see README).
 */
import { Feature } from "../../assembly/abi.js";
import { hasFeature } from "../device/features.js";

/** _IOW('t', 196, struct tun_capabilities) and friends (sys/net/if_tun.h, OpenBSD _IOC). */
export const TUNSCAP = 0x800474c4;
export const TUNGCAP = 0x400474c4;
export const TUNDCAP = 0x200074c4;

/** sys/net/if.h */
export const IFCAP_CSUM_IPv4 = 0x00000001;
export const IFCAP_CSUM_TCPv4 = 0x00000002;
export const IFCAP_CSUM_UDPv4 = 0x00000004;
export const IFCAP_CSUM_TCPv6 = 0x00000080;
export const IFCAP_CSUM_UDPv6 = 0x00000100;
export const IFCAP_TSOv4 = 0x00001000;
export const IFCAP_TSOv6 = 0x00002000;
/** Capabilities TUNSCAP accepts (if_tun.c TUN_IF_CAPS); anything else is EINVAL. */
export const TUN_IF_CAPS = 0x71f7;


/**
 * IFCAP_* for TUNSCAP from the guest's negotiated features, as vmd's vionet_update_offload:
 * the interface may hand us TCP/UDP packets with unfinished checksums only if the guest can
 * finish them (GUEST_CSUM). IFCAP_CSUM_IPv4 is never set: virtio cannot carry "IPv4 header
 * checksum pending" to a guest (the engine would compute it, but asking for it buys nothing).
 * TSO caps follow GUEST_TSO4/6 (IFCAP_TSOv4/v6: the kernel may then hand over large TCP
 * segments, which only a guest that negotiated them can take).
 */
export function tunCapabilities(negotiated: bigint): number {
  let caps = 0;
  if (hasFeature(negotiated, Feature.GUEST_CSUM)) caps |= IFCAP_CSUM_TCPv4 | IFCAP_CSUM_UDPv4 | IFCAP_CSUM_TCPv6 | IFCAP_CSUM_UDPv6;
  if (hasFeature(negotiated, Feature.GUEST_CSUM) && hasFeature(negotiated, Feature.GUEST_TSO4)) caps |= IFCAP_TSOv4;
  if (hasFeature(negotiated, Feature.GUEST_CSUM) && hasFeature(negotiated, Feature.GUEST_TSO6)) caps |= IFCAP_TSOv6;
  return caps;
}

/** The syscalls the OpenBSD tap needs; returns follow libc (-1 and errno become exceptions). */
export interface TapSyscalls {
  open(path: string): number;
  /** ioctl with a 4-byte struct tun_capabilities argument (read or written by the kernel). */
  ioctl(fd: number, request: number, arg: Uint8Array): void;
  readv(fd: number, iov: bigint | number, n: number): number;
  writev(fd: number, iov: bigint | number, n: number): number;
  close(fd: number): void;
}

export class OpenBsdTap {
  /** Both directions carry an 8-byte tun_hdr once TUNSCAP has been called. */
  readonly header = "tun_hdr" as const;
  private caps = 0;

  private constructor(private readonly sys: TapSyscalls, readonly fd: number, readonly path: string) {}

  /**
   * Opens `/dev/tapN` and turns the header on with zero capabilities (the kernel then hands us
   * only complete packets until a guest negotiates offloads). In vmd's privilege split the
   * parent does this before the device process drops privileges; so can a host here.
   */
  static open(sys: TapSyscalls, path: string): OpenBsdTap {
    const fd = sys.open(path);
    const tap = new OpenBsdTap(sys, fd, path);
    try {
      tap.setCapabilities(0);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return tap;
  }

  /** TUNSCAP; control side only. */
  setCapabilities(caps: number): void {
    if ((caps & ~TUN_IF_CAPS) !== 0) throw new RangeError(`capabilities 0x${caps.toString(16)} outside TUN_IF_CAPS`);
    const arg = new Uint8Array(4);
    new DataView(arg.buffer).setUint32(0, caps, true);
    this.sys.ioctl(this.fd, TUNSCAP, arg);
    this.caps = caps;
  }

  /** The capabilities last set. */
  get capabilities(): number { return this.caps; }

  /** Control side, after FEATURES_OK (the seed's VIODEV_MSG_TUNSCAP handler). */
  applyNegotiated(features: bigint): number {
    const caps = tunCapabilities(features);
    this.setCapabilities(caps);
    return caps;
  }

  writev(iov: bigint | number, n: number): number { return this.sys.writev(this.fd, iov, n); }
  readv(iov: bigint | number, n: number): number { return this.sys.readv(this.fd, iov, n); }
  close(): void { this.sys.close(this.fd); }
}
