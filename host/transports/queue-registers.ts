/**
 * Transport-side state both virtio transports keep per device (virtio 1.2, 4.1.4.3 and
 * 4.2.2): the feature select windows, the driver's feature words, the selected queue and each
 * queue's size / addresses / ready bit as the driver writes them, before they reach the
 * device model on enable. Reset returns everything to its initial value (virtio 1.2, 2.4).
 */
import { QueueIndex } from "../../assembly/abi.js";
import type { VirtioNetDevice } from "../device/virtio-net.js";

/** The largest ring the device accepts per data queue (QueueNumMax / the initial queue_size). */
export const QUEUE_SIZE_MAX = 1024;
/** The largest control queue (as QEMU's; a command at a time is the norm). */
export const CTRL_QUEUE_SIZE_MAX = 64;
/**
 * virtio-net with one queue pair and the control queue: RX, TX, control (virtio 1.2, 5.1.2).
 * A driver that did not negotiate CTRL_VQ leaves the third queue alone.
 */
export const NUM_QUEUES = 3;

/** The largest ring queue `q` takes. */
export const queueSizeMax = (q: number): number => (q === QueueIndex.CTRL ? CTRL_QUEUE_SIZE_MAX : QUEUE_SIZE_MAX);

/** The low / high 32 bits of a 64-bit register (64-bit fields are accessed in halves, 4.1.3.1, 4.2.2). */
export const low32 = (v: bigint): number => Number(v & 0xffff_ffffn);
export const high32 = (v: bigint): number => Number(v >> 32n);
/** `cur` with its low / high 32 bits replaced by `v`. */
export const withLow32 = (cur: bigint, v: number): bigint => (cur & ~0xffff_ffffn) | BigInt(v >>> 0);
export const withHigh32 = (cur: bigint, v: number): bigint => (cur & 0xffff_ffffn) | (BigInt(v >>> 0) << 32n);

export interface QueueState {
  size: number;
  desc: bigint;
  driver: bigint;
  device: bigint;
  ready: boolean;
  /** MSI-X vector (PCI only); 0xffff = VIRTIO_MSI_NO_VECTOR. */
  vector: number;
}

export class QueueRegisters {
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  driverFeatures = 0n;
  queueSelect = 0;
  readonly queues: QueueState[] = [];

  constructor(readonly dev: VirtioNetDevice) {
    this.reset();
  }

  reset(): void {
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatures = 0n;
    this.queueSelect = 0;
    this.queues.length = 0;
    for (let i = 0; i < NUM_QUEUES; i++) {
      this.queues.push({ size: queueSizeMax(i), desc: 0n, driver: 0n, device: 0n, ready: false, vector: 0xffff });
    }
  }

  /** The selected queue, or undefined if the driver selected one that does not exist. */
  get selected(): QueueState | undefined {
    return this.queues[this.queueSelect];
  }

  /** 32 bits of the offered features through the select window. */
  deviceFeatureWord(): number {
    if (this.deviceFeatureSelect > 1) return 0;
    const f = this.dev.offeredFeatures;
    return this.deviceFeatureSelect === 0 ? low32(f) : high32(f);
  }

  /** 32 bits of the driver's features through its select window (what it wrote). */
  driverFeatureWord(): number {
    if (this.driverFeatureSelect > 1) return 0;
    return this.driverFeatureSelect === 0 ? low32(this.driverFeatures) : high32(this.driverFeatures);
  }

  /** The driver writes 32 bits of its features through the select window. */
  writeDriverFeatureWord(v: number): void {
    if (this.driverFeatureSelect > 1) return;
    const f = this.driverFeatures;
    this.driverFeatures = this.driverFeatureSelect === 0 ? withLow32(f, v) : withHigh32(f, v);
    this.dev.setDriverFeatures(this.driverFeatures);
  }

  /**
   * The driver enables the selected queue: the addresses and size it wrote go to the device
   * model, which checks them (a ring outside guest RAM puts the device in NEEDS_RESET).
   */
  enableSelected(): void {
    const q = this.selected;
    if (!q || q.ready) return;
    const qi = this.queueSelect as QueueIndex;
    if (this.dev.configureQueue(qi, q.size, q.desc, q.driver, q.device) !== 0) return;
    q.ready = this.dev.enableQueue(qi, true) === 0;
  }

  /** Writes the status register; 0 resets the device and this transport state. */
  writeStatus(v: number): void {
    this.dev.setStatus(v & 0xff);
    if ((v & 0xff) === 0) this.reset();
  }
}
