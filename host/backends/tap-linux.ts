/**
 * A Linux tap device opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: frames carry a
 * virtio_net_hdr, so the device passes partial checksums through in both directions.
 * Control (open, TUNSETOFFLOAD) and data (readv/writev of iovec arrays) are separate methods
 * so a host can keep the control side apart from the data path.
 */
import { Feature } from "../../assembly/abi.js";
import { hasFeature } from "../device/features.js";
import { encodeVirtioHdr, type VirtioNetHdr } from "../device/header.js";
import * as libc from "../runtime/libc.js";
import {
  IFF_ATTACH_QUEUE, IFF_DETACH_QUEUE, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IFNAMSIZ, IFREQ_SIZE, TUNGETFEATURES, TUNSETIFF,
  TUNSETOFFLOAD, TUNSETQUEUE, TUNSETSTEERINGEBPF, TUNSETVNETHDRSZ, TUN_F_CSUM, TUN_F_USO4, TUN_F_USO6, tapOffloadFlags,
} from "./tap-ioctl.js";

export type TapErrorKind = "no-tun" | "permission" | "busy" | "bad-name" | "unsupported" | "io";

/** Errors opening or configuring a tap, with a message that says what to do. */
export class TapError extends Error {
  constructor(readonly kind: TapErrorKind, message: string, cause?: libc.SysError) {
    super(message, { cause });
    this.name = "TapError";
  }
}

export interface TapOpenOptions {
  /** Open the fd non-blocking (the I/O loop waits with epoll). Default true. */
  nonBlocking?: boolean;
  /** Ask for IFF_VNET_HDR (offloads). Default true. */
  vnetHdr?: boolean;
  /** IFF_MULTI_QUEUE, to open one fd per queue pair. Default false. */
  multiQueue?: boolean;
}

export class LinuxTap {
  private closed = false;

  /** The virtio_net_hdr size the kernel reads and writes (TUNSETVNETHDRSZ; the kernel's default is 10). */
  private hdrSize = 10;

  private constructor(readonly fd: number, readonly name: string, readonly vnetHdr: boolean, readonly kernelFeatures: number) {}

  /**
   * Opens (or creates) tap `name` ("" or a pattern like "vnw%d" lets the kernel pick).
   * Throws TapError with a specific kind for a missing /dev/net/tun, no permission, a busy
   * interface or a bad name.
   */
  static open(name: string, opts: TapOpenOptions = {}): LinuxTap {
    if (Buffer.byteLength(name) >= IFNAMSIZ) throw new TapError("bad-name", `tap name "${name}" is longer than ${IFNAMSIZ - 1} bytes`);
    let fd: number;
    try {
      fd = libc.open("/dev/net/tun", libc.O_RDWR | (opts.nonBlocking === false ? 0 : libc.O_NONBLOCK));
    } catch (e) {
      const err = e as libc.SysError;
      if (err.code === "ENOENT" || err.code === "ENODEV" || err.code === "ENXIO") {
        throw new TapError("no-tun", "/dev/net/tun is missing: load the tun module (modprobe tun) or run where tap devices exist", err);
      }
      if (err.code === "EACCES" || err.code === "EPERM") {
        throw new TapError("permission", "no permission to open /dev/net/tun: run as root or grant CAP_NET_ADMIN", err);
      }
      throw new TapError("io", `cannot open /dev/net/tun: ${err.message}`, err);
    }
    try {
      const features = new Uint8Array(4);
      libc.ioctl(fd, TUNGETFEATURES, features, "TUNGETFEATURES");
      const kernelFeatures = new DataView(features.buffer).getUint32(0, true);
      const wantVnet = opts.vnetHdr !== false && (kernelFeatures & IFF_VNET_HDR) !== 0;
      const ifr = new Uint8Array(IFREQ_SIZE);
      ifr.set(Buffer.from(name));
      const flags = IFF_TAP | IFF_NO_PI | (wantVnet ? IFF_VNET_HDR : 0) | (opts.multiQueue ? IFF_MULTI_QUEUE : 0);
      new DataView(ifr.buffer).setUint16(16, flags, true);
      try {
        libc.ioctl(fd, TUNSETIFF, ifr, "TUNSETIFF");
      } catch (e) {
        const err = e as libc.SysError;
        if (err.code === "EBUSY") throw new TapError("busy", `tap "${name}" is busy: another process has it open (or it is a tun, or multi-queue differs)`, err);
        if (err.code === "EPERM" || err.code === "EACCES") throw new TapError("permission", `no permission to attach tap "${name}": it belongs to another user, or CAP_NET_ADMIN is missing`, err);
        if (err.code === "EINVAL") throw new TapError("bad-name", `tap "${name}" exists but is not a tap, or its flags differ`, err);
        throw new TapError("io", `TUNSETIFF "${name}": ${err.message}`, err);
      }
      const actual = Buffer.from(ifr.subarray(0, IFNAMSIZ)).toString().replace(/\0.*$/s, "");
      const tap = new LinuxTap(fd, actual, wantVnet, kernelFeatures);
      // Offloads off until a guest negotiates them: the kernel then hands us only complete frames.
      if (wantVnet) tap.setOffload(0);
      return tap;
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /**
   * Opens `n` queues of multi-queue tap `name` (IFF_MULTI_QUEUE; created if missing), one fd
   * each, as vhost-net and QEMU do for a device with `n` queue pairs. The kernel steers each
   * received flow to one attached queue.
   */
  static openQueues(name: string, n: number, opts: Omit<TapOpenOptions, "multiQueue"> = {}): LinuxTap[] {
    const queues: LinuxTap[] = [];
    try {
      for (let i = 0; i < n; i++) queues.push(LinuxTap.open(i === 0 ? name : queues[0].name, { ...opts, multiQueue: true }));
    } catch (e) {
      for (const q of queues) q.close();
      if (e instanceof TapError && (e.kind === "bad-name" || e.kind === "busy")) {
        throw new TapError(e.kind, `${e.message}; for ${n} queue pairs the tap must be multi-queue (ip tuntap add NAME mode tap multi_queue) or not exist yet`, e.cause as libc.SysError);
      }
      throw e;
    }
    return queues;
  }

  /**
   * TUNSETQUEUE: a multi-queue tap's queue takes part in the kernel's steering (attached) or
   * not (detached: nothing is queued for it while its queue pair is off). Control side only.
   */
  setQueueAttached(on: boolean): void {
    const ifr = new Uint8Array(IFREQ_SIZE);
    new DataView(ifr.buffer).setUint16(16, on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE, true);
    libc.ioctl(this.fd, TUNSETQUEUE, ifr, "TUNSETQUEUE");
  }

  /**
   * TUNSETSTEERINGEBPF: the eBPF program (fd; -1 removes it) whose result, modulo the attached
   * queues, picks the queue of each frame the tap receives; the tap keeps its own reference.
   * Control side only.
   */
  setSteeringProgram(progFd: number): void {
    const v = new Uint8Array(4);
    new DataView(v.buffer).setInt32(0, progFd, true);
    libc.ioctl(this.fd, TUNSETSTEERINGEBPF, v, "TUNSETSTEERINGEBPF");
  }

  /** Wraps an fd opened elsewhere (another thread's LinuxTap.open); closing stays with the opener. */
  static fromFd(fd: number, name: string, vnetHdr: boolean, kernelFeatures: number): LinuxTap {
    return new LinuxTap(fd, name, vnetHdr, kernelFeatures);
  }

  /** Sets the virtio_net_hdr size the kernel reads and writes (10 or 12; match the guest's). */
  setVnetHdrSize(bytes: number): void {
    this.hdrSize = bytes;
    const v = new Uint8Array(4);
    new DataView(v.buffer).setInt32(0, bytes, true);
    libc.ioctl(this.fd, TUNSETVNETHDRSZ, v, "TUNSETVNETHDRSZ");
  }

  /**
   * TUNSETOFFLOAD: which partial checksums / GSO frames the kernel may hand us. Control side
   * only: called after feature negotiation, never from the data path.
   */
  setOffload(tunFlags: number): void {
    libc.ioctlValue(this.fd, TUNSETOFFLOAD, tunFlags, "TUNSETOFFLOAD");
  }

  /**
   * Control side, after FEATURES_OK (as OpenBsdTap's TUNSCAP): the kernel's header size follows
   * the guest's (12 with VERSION_1 or MRG_RXBUF, else 10) and its offloads the guest's GUEST_*
   * features. Returns the TUN_F_* flags set (0 without IFF_VNET_HDR, which has no offloads).
   */
  applyNegotiated(features: bigint): number {
    if (!this.vnetHdr) return 0;
    const modern = hasFeature(features, Feature.VERSION_1) || hasFeature(features, Feature.MRG_RXBUF);
    const flags = tapOffloadFlags(features);
    this.setVnetHdrSize(modern ? 12 : 10);
    this.setOffload(flags);
    return flags;
  }

  /**
   * Whether this kernel knows UDP segmentation offload on taps (TUN_F_USO4/6, Linux 6.2), and
   * so also accepts GSO_UDP_L4 frames on write. Probes with TUNSETOFFLOAD and leaves the
   * offloads at `restore`. Control side only.
   */
  supportsUso(restore = 0): boolean {
    try {
      this.setOffload(TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6);
      return true;
    } catch {
      return false;
    } finally {
      this.setOffload(restore);
    }
  }

  /**
   * Writes one frame from the host's side (not the data path's iovecs): behind a
   * virtio_net_hdr of the tap's current size on a vnet_hdr tap (`hdr`, or all zero). A write is
   * one frame to the kernel, so this may run beside the data path's writes. Returns the bytes
   * written or -errno.
   */
  writeFrame(frame: Uint8Array, hdr: Partial<VirtioNetHdr> = {}): number {
    const h = this.vnetHdr ? this.hdrSize : 0;
    const buf = new Uint8Array(h + frame.length);
    if (h) encodeVirtioHdr(hdr, h as 10 | 12, buf);
    buf.set(frame, h);
    return libc.write(this.fd, buf);
  }

  /** writev of an iovec array at native address `iov`; bytes or -errno. */
  writev(iov: bigint | number, n: number): number { return libc.writev(this.fd, iov, n); }
  /** readv into an iovec array at native address `iov`; bytes, or -errno (-EAGAIN when empty). */
  readv(iov: bigint | number, n: number): number { return libc.readv(this.fd, iov, n); }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
