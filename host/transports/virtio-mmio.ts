/**
 * The virtio-mmio transport, version 2 (virtio 1.2, 4.2): the register block an emulator maps
 * at some physical address, with one interrupt line. Every register read and write the
 * guest makes is passed to `read()` / `write()` with its offset and width; the transport maps
 * them onto the device model and raises or lowers the line through `setIrq`.
 *
 *   const t = new VirtioMmioTransport(dev, { setIrq: (on) => pic.set(5, on), notify: (q) => port.kick(q) });
 *   // device hooks: interrupt: (q) => t.interrupt(q), configChanged: () => t.configChanged()
 */
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { high32, low32, QueueRegisters, queueSizeMax, withHigh32, withLow32 } from "./queue-registers.js";

/** Register offsets (virtio 1.2, 4.2.2, table "MMIO Device Register Layout"). */
export enum Mmio {
  MAGIC = 0x000,
  VERSION = 0x004,
  DEVICE_ID = 0x008,
  VENDOR_ID = 0x00c,
  DEVICE_FEATURES = 0x010,
  DEVICE_FEATURES_SEL = 0x014,
  DRIVER_FEATURES = 0x020,
  DRIVER_FEATURES_SEL = 0x024,
  QUEUE_SEL = 0x030,
  QUEUE_NUM_MAX = 0x034,
  QUEUE_NUM = 0x038,
  QUEUE_READY = 0x044,
  QUEUE_NOTIFY = 0x050,
  INTERRUPT_STATUS = 0x060,
  INTERRUPT_ACK = 0x064,
  STATUS = 0x070,
  QUEUE_DESC_LOW = 0x080,
  QUEUE_DESC_HIGH = 0x084,
  QUEUE_DRIVER_LOW = 0x090,
  QUEUE_DRIVER_HIGH = 0x094,
  QUEUE_DEVICE_LOW = 0x0a0,
  QUEUE_DEVICE_HIGH = 0x0a4,
  SHM_SEL = 0x0ac,
  SHM_LEN_LOW = 0x0b0,
  SHM_LEN_HIGH = 0x0b4,
  SHM_BASE_LOW = 0x0b8,
  SHM_BASE_HIGH = 0x0bc,
  QUEUE_RESET = 0x0c0,
  CONFIG_GENERATION = 0x0fc,
  CONFIG = 0x100,
}

/** "virt" little-endian. */
export const MMIO_MAGIC = 0x74726976;
/** Interrupt status bits (4.2.2). */
export const INT_VRING = 1;
export const INT_CONFIG = 2;
/** Size of the register block including 256 bytes of device config. */
export const MMIO_SIZE = 0x200;

export interface MmioHooks {
  /** Level of the device's interrupt line. */
  setIrq(level: boolean): void;
  /** The driver notified queue `q` (QueueNotify). */
  notify?(q: number): void;
}

export class VirtioMmioTransport {
  private readonly regs: QueueRegisters;
  private interruptStatus = 0;
  private generation = 0;
  private irqLevel = false;

  constructor(readonly dev: VirtioNetDevice, private readonly hooks: MmioHooks, readonly vendorId = 0x554d4551) {
    this.regs = new QueueRegisters(dev);
  }

  /**
   * A guest read of `size` bytes at `offset`. Registers below 0x100 are 32-bit only
   * (4.2.2.2: the driver MUST use 32-bit accesses); other widths read 0.
   */
  read(offset: number, size: 1 | 2 | 4): number {
    if (offset >= Mmio.CONFIG) {
      const o = offset - Mmio.CONFIG;
      return o + size <= 0x100 ? this.dev.readConfig(o, size) : 0;
    }
    if (size !== 4 || offset % 4 !== 0) return 0;
    const r = this.regs;
    const q = r.selected;
    switch (offset) {
      case Mmio.MAGIC: return MMIO_MAGIC;
      case Mmio.VERSION: return 2;
      case Mmio.DEVICE_ID: return 1; // network card (virtio 1.2, 5)
      case Mmio.VENDOR_ID: return this.vendorId;
      case Mmio.DEVICE_FEATURES: return r.deviceFeatureWord();
      case Mmio.QUEUE_NUM_MAX: return q ? queueSizeMax(r.queueSelect) : 0;
      case Mmio.QUEUE_READY: return q?.ready ? 1 : 0;
      case Mmio.INTERRUPT_STATUS: return this.interruptStatus;
      case Mmio.STATUS: return this.dev.status;
      case Mmio.QUEUE_DESC_LOW: return q ? low32(q.desc) : 0;
      case Mmio.QUEUE_DESC_HIGH: return q ? high32(q.desc) : 0;
      case Mmio.QUEUE_DRIVER_LOW: return q ? low32(q.driver) : 0;
      case Mmio.QUEUE_DRIVER_HIGH: return q ? high32(q.driver) : 0;
      case Mmio.QUEUE_DEVICE_LOW: return q ? low32(q.device) : 0;
      case Mmio.QUEUE_DEVICE_HIGH: return q ? high32(q.device) : 0;
      // No shared memory regions: length all ones (4.2.2).
      case Mmio.SHM_LEN_LOW: case Mmio.SHM_LEN_HIGH: return 0xffff_ffff;
      case Mmio.CONFIG_GENERATION: return this.generation;
      default: return 0;
    }
  }

  /** A guest write of `size` bytes at `offset`. Device config is read-only for virtio-net. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= Mmio.CONFIG || size !== 4 || offset % 4 !== 0) return;
    const r = this.regs;
    const q = r.selected;
    const v = value >>> 0;
    // 4.2.2.3: queue registers may change only while the queue is not ready.
    const editable = q !== undefined && !q.ready;
    switch (offset) {
      case Mmio.DEVICE_FEATURES_SEL: r.deviceFeatureSelect = v; break;
      case Mmio.DRIVER_FEATURES: r.writeDriverFeatureWord(v); break;
      case Mmio.DRIVER_FEATURES_SEL: r.driverFeatureSelect = v; break;
      case Mmio.QUEUE_SEL: r.queueSelect = v; break;
      case Mmio.QUEUE_NUM: if (editable) q.size = v; break;
      case Mmio.QUEUE_READY: if (v === 1) r.enableSelected(); break;
      case Mmio.QUEUE_NOTIFY: this.hooks.notify?.(v & 0xffff); break;
      case Mmio.INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        this.updateIrq();
        break;
      case Mmio.STATUS:
        r.writeStatus(v);
        if (v === 0) {
          this.interruptStatus = 0;
          this.updateIrq();
        }
        break;
      case Mmio.QUEUE_DESC_LOW: if (editable) q.desc = withLow32(q.desc, v); break;
      case Mmio.QUEUE_DESC_HIGH: if (editable) q.desc = withHigh32(q.desc, v); break;
      case Mmio.QUEUE_DRIVER_LOW: if (editable) q.driver = withLow32(q.driver, v); break;
      case Mmio.QUEUE_DRIVER_HIGH: if (editable) q.driver = withHigh32(q.driver, v); break;
      case Mmio.QUEUE_DEVICE_LOW: if (editable) q.device = withLow32(q.device, v); break;
      case Mmio.QUEUE_DEVICE_HIGH: if (editable) q.device = withHigh32(q.device, v); break;
      default: break;
    }
  }

  /** The device has used buffers on queue `q` (the device model's interrupt hook). */
  interrupt(_q: number): void {
    this.interruptStatus |= INT_VRING;
    this.updateIrq();
  }

  /** The device configuration changed (link, NEEDS_RESET): the driver re-reads it. */
  configChanged(): void {
    this.generation = (this.generation + 1) & 0xffff_ffff;
    this.interruptStatus |= INT_CONFIG;
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.hooks.setIrq(level);
    }
  }
}
