/**
 * A Linux tap as a switch port, bridging the embedded network to the host's kernel. With
 * IFF_VNET_HDR every frame carries a virtio_net_hdr both ways, so partial checksums cross in
 * either direction untouched (TUNSETOFFLOAD TUN_F_CSUM lets the kernel hand us its own);
 * without it the port takes only complete frames and the switch finishes them on the way.
 * Reads wait in epoll_wait on a thread-pool thread; this is a control-plane-speed bridge
 * (one copy each way), not the zero-copy tap path of a single guest (TapPort).
 */
import { Feature, NetHdr } from "../../assembly/abi.js";
import { tapOffloadFlags } from "../backends/tap-ioctl.js";
import type { LinuxTap } from "../backends/tap-linux.js";
import { featureMask } from "../device/features.js";
import { decodeVirtioHdr } from "../device/header.js";
import { EpollLoop } from "../runtime/epoll-loop.js";
import * as libc from "../runtime/libc.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

const HDR = 12;
const TOKEN_TAP = 1;

export class TapSwitchPort implements SwitchPort {
  readonly name: string;
  readonly acceptsPartial: boolean;
  /** With IFF_VNET_HDR the kernel takes GSO frames (and segments them only if they leave the machine). */
  readonly acceptsGso: boolean;
  /** Frames the kernel would not take (write failed) or that could not be read whole. */
  errors = 0;
  private readonly buf = new Uint8Array(HDR + 65536 + 64);
  private readonly loop = new EpollLoop(() => this.readAll());

  constructor(private readonly sw: Switch, readonly tap: LinuxTap) {
    this.name = `tap:${tap.name}`;
    this.acceptsPartial = tap.vnetHdr;
    this.acceptsGso = tap.vnetHdr;
    if (tap.vnetHdr) {
      tap.setVnetHdrSize(HDR);
      // The switch takes what a guest with every GUEST_* offload would: the kernel may hand
      // us partial checksums and GSO frames, which every device port takes (its core segments
      // for a guest without GUEST_TSO). USO needs Linux 6.2: without it, TSO only.
      const uso = tap.supportsUso() ? [Feature.GUEST_USO4, Feature.GUEST_USO6] : [];
      tap.setOffload(tapOffloadFlags(featureMask(Feature.GUEST_CSUM, Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN, ...uso)));
    }
    this.loop.poll.add(tap.fd, libc.EPOLLIN, TOKEN_TAP);
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    // (frame.hdr carries no num_buffers: it is written as 0.)
    if (this.tap.writeFrame(frame.data, frame.hdr) < 0) this.errors++;
  }

  /** Starts reading the tap into the switch. */
  start(): void {
    this.loop.start();
  }

  /** Reads the tap dry into the switch. */
  private readAll(): void {
    for (;;) {
      const n = libc.read(this.tap.fd, this.buf);
      if (n < 0) break;
      const off = this.tap.vnetHdr ? HDR : 0;
      if (n < off + 14) { this.errors++; continue; }
      const h = this.tap.vnetHdr ? decodeVirtioHdr(this.buf.subarray(0, HDR)) : { flags: 0, gsoType: 0, csumStart: 0, csumOffset: 0 };
      const gso = "gsoSize" in h ? { gsoType: h.gsoType, gsoSize: h.gsoSize } : {};
      this.sw.input(this, { data: this.buf.slice(off, n), hdr: { flags: h.flags & NetHdr.F_NEEDS_CSUM, csumStart: h.csumStart, csumOffset: h.csumOffset, ...gso } });
    }
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    this.sw.detach(this);
  }
}
