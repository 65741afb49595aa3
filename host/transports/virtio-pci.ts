/**
 * The virtio-pci transport, modern interface (virtio 1.2, 4.1): PCI configuration space with
 * the vendor-specific capabilities that locate the common, notify, ISR and device
 * configuration structures in BAR 0, the PCI configuration access capability, and an MSI-X
 * capability whose table and PBA live in BAR 1. Interrupts go out as MSI-X messages when the
 * driver enabled MSI-X, else as INTx with the ISR status register.
 *
 * The emulator's PCI bus forwards configuration cycles to `configRead`/`configWrite` and BAR
 * accesses (after decoding the address with `barAt`) to `barRead`/`barWrite`. The generic PCI
 * function (pci-function.ts) and MSI-X (msix.ts) are apart; this file is what virtio adds.
 *
 *   BAR 0 (memory, 16 KiB): 0x0000 common cfg | 0x1000 ISR | 0x2000 device cfg | 0x3000 notify
 *   BAR 1 (memory, 4 KiB):  0x000 MSI-X table (3 vectors) | 0x800 PBA
 */
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { Msix } from "./msix.js";
import { PciFunction } from "./pci-function.js";
import { high32, low32, NUM_QUEUES, QueueRegisters, withHigh32, withLow32 } from "./queue-registers.js";

export const PCI_VENDOR_REDHAT_QUMRANET = 0x1af4;
/** 0x1040 + virtio device id 1 (network), the modern (non-transitional) id (4.1.2.1). */
export const PCI_DEVICE_VIRTIO_NET = 0x1041;

/** virtio_pci_cap cfg_type values (4.1.4). */
export enum PciCap {
  COMMON = 1,
  NOTIFY = 2,
  ISR = 3,
  DEVICE = 4,
  PCI_CFG = 5,
}

/** Offsets in the common configuration structure (4.1.4.3). */
export enum Common {
  DEVICE_FEATURE_SELECT = 0x00,
  DEVICE_FEATURE = 0x04,
  DRIVER_FEATURE_SELECT = 0x08,
  DRIVER_FEATURE = 0x0c,
  CONFIG_MSIX_VECTOR = 0x10,
  NUM_QUEUES = 0x12,
  DEVICE_STATUS = 0x14,
  CONFIG_GENERATION = 0x15,
  QUEUE_SELECT = 0x16,
  QUEUE_SIZE = 0x18,
  QUEUE_MSIX_VECTOR = 0x1a,
  QUEUE_ENABLE = 0x1c,
  QUEUE_NOTIFY_OFF = 0x1e,
  QUEUE_DESC = 0x20,
  QUEUE_DRIVER = 0x28,
  QUEUE_DEVICE = 0x30,
  QUEUE_NOTIFY_DATA = 0x38,
  QUEUE_RESET = 0x3a,
  SIZE = 0x3c,
}

export const BAR0_SIZE = 0x4000;
export const BAR1_SIZE = 0x1000;
export const COMMON_OFF = 0x0000;
export const ISR_OFF = 0x1000;
export const DEVICE_OFF = 0x2000;
export const NOTIFY_OFF = 0x3000;
export const NOTIFY_MULTIPLIER = 4;
export const MSIX_TABLE_OFF = 0x000;
export const MSIX_PBA_OFF = 0x800;
/** One vector for configuration changes and one per queue. */
export const MSIX_VECTORS = 1 + NUM_QUEUES;
export const NO_VECTOR = 0xffff;

/** Where the capabilities sit in configuration space. */
export const CAP_COMMON = 0x40;
export const CAP_NOTIFY = 0x50;
export const CAP_ISR = 0x64;
export const CAP_DEVICE = 0x74;
export const CAP_PCI_CFG = 0x84;
export const CAP_MSIX = 0x98;

export interface PciHooks {
  /** INTx line level (used while MSI-X is disabled). */
  setIntx(level: boolean): void;
  /** Delivers an MSI-X message (a 32-bit write of `data` to `address`). */
  msi?(address: bigint, data: number): void;
  /** The driver notified queue `q`. */
  notify?(q: number): void;
}

const PCI_CAP_ID_VNDR = 0x09;
/** Network controller, Ethernet (PCI class 02, subclass 00). */
const CLASS_ETHERNET = 0x020000;
const VIRTIO_ID_NET = 1;
/** ISR status bits (4.1.4.5). */
const ISR_QUEUE = 1;
const ISR_CONFIG = 2;
/** The PCI_CFG capability's window: bar (+4), offset (+8), length (+12), data (+16). */
const PCI_CFG_BAR = CAP_PCI_CFG + 4;
const PCI_CFG_OFFSET = CAP_PCI_CFG + 8;
const PCI_CFG_LENGTH = CAP_PCI_CFG + 12;
const PCI_CFG_DATA = CAP_PCI_CFG + 16;

export class VirtioPciTransport {
  private readonly regs: QueueRegisters;
  private readonly fn = new PciFunction({
    vendor: PCI_VENDOR_REDHAT_QUMRANET, device: PCI_DEVICE_VIRTIO_NET, revision: 1, // modern device (4.1.2.1)
    classCode: CLASS_ETHERNET, subsystemVendor: PCI_VENDOR_REDHAT_QUMRANET, subsystemId: VIRTIO_ID_NET, interruptPin: 1,
  }, [BAR0_SIZE, BAR1_SIZE, 0, 0, 0, 0]);
  private readonly msix: Msix;
  private configVector = NO_VECTOR;
  private isr = 0;
  private intx = false;
  private generation = 0;

  constructor(readonly dev: VirtioNetDevice, private readonly hooks: PciHooks) {
    this.regs = new QueueRegisters(dev);
    this.fn.firstCapability = CAP_COMMON;
    this.vendorCap(CAP_COMMON, CAP_NOTIFY, 16, PciCap.COMMON, 0, COMMON_OFF, Common.SIZE);
    this.vendorCap(CAP_NOTIFY, CAP_ISR, 20, PciCap.NOTIFY, 0, NOTIFY_OFF, NOTIFY_MULTIPLIER * NUM_QUEUES);
    this.fn.view.setUint32(CAP_NOTIFY + 16, NOTIFY_MULTIPLIER, true);
    this.vendorCap(CAP_ISR, CAP_DEVICE, 16, PciCap.ISR, 0, ISR_OFF, 1);
    this.vendorCap(CAP_DEVICE, CAP_PCI_CFG, 16, PciCap.DEVICE, 0, DEVICE_OFF, 0x100);
    this.vendorCap(CAP_PCI_CFG, CAP_MSIX, 20, PciCap.PCI_CFG, 0, 0, 0);
    this.msix = new Msix(this.fn, { capAt: CAP_MSIX, vectors: MSIX_VECTORS, bar: 1, tableOffset: MSIX_TABLE_OFF, pbaOffset: MSIX_PBA_OFF }, 0,
      (address, data) => this.hooks.msi?.(address, data));
  }

  /** A virtio_pci_cap (4.1.4) locating a structure in a BAR. */
  private vendorCap(at: number, next: number, len: number, type: PciCap, bar: number, offset: number, length: number): void {
    this.fn.capability(at, PCI_CAP_ID_VNDR, next);
    this.fn.cfg[at + 2] = len;
    this.fn.cfg[at + 3] = type;
    this.fn.cfg[at + 4] = bar;
    this.fn.view.setUint32(at + 8, offset, true);
    this.fn.view.setUint32(at + 12, length, true);
  }

  // ──────────────────────────── configuration space ────────────────────────────

  /** A configuration read of `size` bytes at `offset` (little-endian). */
  configRead(offset: number, size: 1 | 2 | 4): number {
    // VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9): pci_cfg_data reads through the BAR.
    if (offset >= PCI_CFG_DATA && offset < PCI_CFG_DATA + 4) return this.pciCfgWindow(offset, size);
    return this.fn.read(offset, size);
  }

  /** A configuration write. Only the writable bits change: command, BARs, interrupt line, MSI-X control, the PCI_CFG window. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > 256) return;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (this.fn.writeHeaderByte(at, byte)) {
        if (at === 0x05) this.updateIntx(); // the command register's INTx disable
      } else if (at === this.msix.controlByteAt) {
        if (this.msix.writeControl(byte)) this.updateIntx();
      } else if (at >= PCI_CFG_BAR && at < PCI_CFG_DATA && at !== PCI_CFG_BAR + 1) {
        this.fn.cfg[at] = byte;
      }
    }
    if (offset >= PCI_CFG_DATA && offset < PCI_CFG_DATA + 4) this.pciCfgWindow(offset, size, value);
  }

  /** The guest-physical address BAR `i` is programmed to (0 if unset). */
  barAddress(i: number): number {
    return this.fn.barAddress(i);
  }

  /** Decodes a guest-physical address to (bar, offset) if it falls inside a programmed BAR. */
  barAt(addr: number): { bar: number; offset: number } | undefined {
    return this.fn.barAt(addr);
  }

  private pciCfgWindow(offset: number, size: number, value?: number): number {
    const c = this.fn.view;
    const bar = this.fn.cfg[PCI_CFG_BAR];
    const off = c.getUint32(PCI_CFG_OFFSET, true);
    const len = c.getUint32(PCI_CFG_LENGTH, true);
    // 4.1.4.9.1: length 1, 2 or 4, offset aligned to it; the access uses that width.
    if ((len !== 1 && len !== 2 && len !== 4) || off % len !== 0 || offset !== PCI_CFG_DATA || size < len) return 0;
    if (value === undefined) return this.barRead(bar, off, len);
    this.barWrite(bar, off, len, value & (len === 4 ? 0xffff_ffff : (1 << (8 * len)) - 1));
    return 0;
  }

  // ──────────────────────────────── BARs ─────────────────────────────────

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar === 1) return this.msix.read(offset, size);
    if (bar !== 0) return 0;
    if (offset >= COMMON_OFF && offset < COMMON_OFF + Common.SIZE) return this.commonRead(offset - COMMON_OFF, size);
    if (offset === ISR_OFF) return this.isrRead();
    if (offset >= DEVICE_OFF && offset < DEVICE_OFF + 0x100) return this.dev.readConfig(offset - DEVICE_OFF, size);
    return 0;
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (bar === 1) { this.msix.write(offset, size, value); return; }
    if (bar !== 0) return;
    if (offset >= COMMON_OFF && offset < COMMON_OFF + Common.SIZE) this.commonWrite(offset - COMMON_OFF, size, value >>> 0);
    else if (offset >= NOTIFY_OFF && offset < NOTIFY_OFF + NOTIFY_MULTIPLIER * NUM_QUEUES) {
      this.hooks.notify?.(Math.floor((offset - NOTIFY_OFF) / NOTIFY_MULTIPLIER));
    }
  }

  private commonRead(off: number, size: number): number {
    const r = this.regs;
    const q = r.selected;
    // Values per field; 64-bit fields read in 32-bit halves (4.1.3.1).
    let v: number;
    switch (off) {
      case Common.DEVICE_FEATURE_SELECT: v = r.deviceFeatureSelect; break;
      case Common.DEVICE_FEATURE: v = r.deviceFeatureWord(); break;
      case Common.DRIVER_FEATURE_SELECT: v = r.driverFeatureSelect; break;
      case Common.DRIVER_FEATURE: v = r.driverFeatureWord(); break;
      case Common.CONFIG_MSIX_VECTOR: v = this.configVector; break;
      case Common.NUM_QUEUES: v = NUM_QUEUES; break;
      case Common.DEVICE_STATUS: v = this.dev.status; break;
      case Common.CONFIG_GENERATION: v = this.generation & 0xff; break;
      case Common.QUEUE_SELECT: v = r.queueSelect; break;
      case Common.QUEUE_SIZE: v = q ? q.size : 0; break;
      case Common.QUEUE_MSIX_VECTOR: v = q ? q.vector : NO_VECTOR; break;
      case Common.QUEUE_ENABLE: v = q?.ready ? 1 : 0; break;
      case Common.QUEUE_NOTIFY_OFF: v = q ? r.queueSelect : 0; break;
      case Common.QUEUE_DESC: v = q ? low32(q.desc) : 0; break;
      case Common.QUEUE_DESC + 4: v = q ? high32(q.desc) : 0; break;
      case Common.QUEUE_DRIVER: v = q ? low32(q.driver) : 0; break;
      case Common.QUEUE_DRIVER + 4: v = q ? high32(q.driver) : 0; break;
      case Common.QUEUE_DEVICE: v = q ? low32(q.device) : 0; break;
      case Common.QUEUE_DEVICE + 4: v = q ? high32(q.device) : 0; break;
      case Common.QUEUE_NOTIFY_DATA: v = q ? r.queueSelect : 0; break;
      default: v = 0;
    }
    return size === 4 ? v >>> 0 : v & ((1 << (8 * size)) - 1);
  }

  private commonWrite(off: number, _size: number, v: number): void {
    const r = this.regs;
    const q = r.selected;
    const editable = q !== undefined && !q.ready;
    switch (off) {
      case Common.DEVICE_FEATURE_SELECT: r.deviceFeatureSelect = v; break;
      case Common.DRIVER_FEATURE_SELECT: r.driverFeatureSelect = v; break;
      case Common.DRIVER_FEATURE: r.writeDriverFeatureWord(v); break;
      case Common.CONFIG_MSIX_VECTOR: this.configVector = this.vectorOrNone(v & 0xffff); break;
      case Common.DEVICE_STATUS:
        r.writeStatus(v & 0xff);
        if ((v & 0xff) === 0) {
          this.configVector = NO_VECTOR;
          this.isr = 0;
          this.msix.clearPending();
          this.updateIntx();
        }
        break;
      case Common.QUEUE_SELECT: r.queueSelect = v & 0xffff; break;
      // 4.1.4.3.2: the driver writes a size no larger than offered, a power of 2 (the device
      // model checks it when the queue is enabled).
      case Common.QUEUE_SIZE: if (editable) q.size = v & 0xffff; break;
      case Common.QUEUE_MSIX_VECTOR: if (q) q.vector = this.vectorOrNone(v & 0xffff); break;
      // 4.1.4.3.2: the driver MUST NOT write 0 to queue_enable.
      case Common.QUEUE_ENABLE: if ((v & 0xffff) === 1) r.enableSelected(); break;
      case Common.QUEUE_DESC: if (editable) q.desc = withLow32(q.desc, v); break;
      case Common.QUEUE_DESC + 4: if (editable) q.desc = withHigh32(q.desc, v); break;
      case Common.QUEUE_DRIVER: if (editable) q.driver = withLow32(q.driver, v); break;
      case Common.QUEUE_DRIVER + 4: if (editable) q.driver = withHigh32(q.driver, v); break;
      case Common.QUEUE_DEVICE: if (editable) q.device = withLow32(q.device, v); break;
      case Common.QUEUE_DEVICE + 4: if (editable) q.device = withHigh32(q.device, v); break;
      default: break;
    }
  }

  /** A vector the table has, else NO_VECTOR (4.1.5.1.2: the device reports it could not map it). */
  private vectorOrNone(v: number): number {
    return v < MSIX_VECTORS ? v : NO_VECTOR;
  }

  /** ISR status (4.1.4.5): reading returns and clears it, and deasserts INTx. */
  private isrRead(): number {
    const v = this.isr;
    this.isr = 0;
    this.updateIntx();
    return v;
  }

  // ─────────────────────────── device → driver ───────────────────────────

  /** The device used buffers on queue `q` (the device model's interrupt hook). */
  interrupt(q: number): void {
    if (this.msix.enabled) {
      this.msix.signal(this.regs.queues[q]?.vector ?? NO_VECTOR);
      return;
    }
    this.isr |= ISR_QUEUE;
    this.updateIntx();
  }

  /** The device configuration changed: generation bumps, and the driver is told. */
  configChanged(): void {
    this.generation++;
    if (this.msix.enabled) {
      this.msix.signal(this.configVector);
      return;
    }
    this.isr |= ISR_CONFIG;
    this.updateIntx();
  }

  private updateIntx(): void {
    // INTx is asserted while ISR has bits, MSI-X is off and the command register allows it.
    const level = this.isr !== 0 && !this.msix.enabled && !this.fn.intxDisabled;
    if (level !== this.intx) {
      this.intx = level;
      this.hooks.setIntx(level);
    }
  }
}
