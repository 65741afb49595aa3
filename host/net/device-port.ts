/**
 * A virtio-net device as a switch port. It takes partial checksums: the core's RX translation
 * finishes them for a guest that did not negotiate GUEST_CSUM and hands them on otherwise.
 * Frames for a guest with no RX buffer posted wait in a short backlog (as a NIC's FIFO) and
 * are retried on the guest's next RX notification; beyond it they are dropped and counted.
 */
import { BackendKind, QueueIndex } from "../../assembly/abi.js";
import { decodeVirtioHdr, encodeVirtioHdr } from "../device/header.js";
import type { VirtioNetDevice } from "../device/virtio-net.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

export class DevicePort implements SwitchPort {
  readonly acceptsPartial = true;
  /** The core hands GSO frames whole to a guest that negotiated them and segments them for one that did not. */
  readonly acceptsGso = true;
  private readonly backlog: NetFrame[] = [];
  /** Frames dropped because the guest had no buffer and the backlog was full. */
  backlogDrops = 0;

  constructor(readonly name: string, readonly dev: VirtioNetDevice, private readonly sw: Switch, private readonly backlogMax = 256) {
    if (dev.backendKind !== BackendKind.VNET_HDR) throw new Error(`${name}: a switch port device needs BackendKind.VNET_HDR`);
    sw.attach(this);
  }

  /** The guest queued frames (TX notification): into the switch. */
  pumpTx(): number {
    const out = this.dev.collectTx();
    for (const o of out) this.sw.input(this, { data: o.frame, hdr: decodeVirtioHdr(o.header) });
    return out.length;
  }

  /** The guest posted RX buffers (RX notification): retry what waited. */
  pumpRx(): void {
    while (this.backlog.length && this.tryDeliver(this.backlog[0])) this.backlog.shift();
    this.dev.flushRx();
  }

  deliver(frame: NetFrame): void {
    if (this.backlog.length === 0 && this.tryDeliver(frame)) {
      this.dev.flushRx();
      return;
    }
    if (this.backlog.length >= this.backlogMax) {
      this.backlogDrops++;
      return;
    }
    // The switch's buffer is not ours to keep.
    this.backlog.push({ data: frame.data.slice(), hdr: { ...frame.hdr } });
  }

  /** false if the guest has no buffer (try later); true if delivered or dropped by the device. */
  private tryDeliver(frame: NetFrame): boolean {
    const r = this.dev.receive(frame.data, encodeVirtioHdr({ ...frame.hdr, numBuffers: 0 }, this.dev.headerLength as 10 | 12));
    return r.kind !== "no-buffer";
  }

  metrics() {
    return { rx: this.dev.metrics(QueueIndex.RX), tx: this.dev.metrics(QueueIndex.TX), backlog: this.backlog.length, backlogDrops: this.backlogDrops };
  }
}
