/**
 * The virtio-pci transport, modern interface (virtio 1.2, 4.1): PCI configuration space with
 * the vendor-specific capabilities that locate the common, notify, ISR and device
 * configuration structures in BAR 0, the PCI configuration access capability, and an MSI-X
 * capability whose table and PBA live in BAR 1. Interrupts go out as MSI-X messages when the
 * driver enabled MSI-X, else as INTx with the ISR status register.
 *
 * The emulator's PCI bus forwards configuration cycles to `configRead`/`configWrite` and BAR
 * accesses (after decoding the address with `barAt`) to `barRead`/`barWrite`.
 *
 *   BAR 0 (memory, 16 KiB): 0x0000 common cfg | 0x1000 ISR | 0x2000 device cfg | 0x3000 notify
 *   BAR 1 (memory, 4 KiB):  0x000 MSI-X table (3 vectors) | 0x800 PBA
 */
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { high32, low32, NUM_QUEUES, QueueRegisters, withHigh32, withLow32 } from "./queue-registers.js";

export const PCI_VENDOR_REDHAT_QUMRANET = 0x1af4;
/** 0x1040 + virtio device id 1 (network), the modern (non-transitional) id (4.1.2.1). */
export const PCI_DEVICE_VIRTIO_NET = 0x1041;

/** virtio_pci_cap cfg_type values (4.1.4). */
export const enum PciCap {
  COMMON = 1,
  NOTIFY = 2,
  ISR = 3,
  DEVICE = 4,
  PCI_CFG = 5,
}

/** Offsets in the common configuration structure (4.1.4.3). */
export const enum Common {
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

const BAR_SIZES = [BAR0_SIZE, BAR1_SIZE, 0, 0, 0, 0];

export class VirtioPciTransport {
  private readonly regs: QueueRegisters;
  private readonly cfg = new Uint8Array(256);
  private readonly cfgView = new DataView(this.cfg.buffer);
  private readonly msixTable = new Uint8Array(16 * MSIX_VECTORS);
  private msixPending = 0;
  private configVector = NO_VECTOR;
  private isr = 0;
  private intx = false;
  private generation = 0;

  constructor(readonly dev: VirtioNetDevice, private readonly hooks: PciHooks) {
    this.regs = new QueueRegisters(dev);
    const c = this.cfgView;
    c.setUint16(0x00, PCI_VENDOR_REDHAT_QUMRANET, true);
    c.setUint16(0x02, PCI_DEVICE_VIRTIO_NET, true);
    c.setUint16(0x06, 0x0010, true); // status: capabilities list
    this.cfg[0x08] = 1; // revision 1: modern device (4.1.2.1)
    this.cfg[0x0b] = 0x02; // class: network controller, subclass 0 (Ethernet)
    c.setUint16(0x2c, PCI_VENDOR_REDHAT_QUMRANET, true);
    c.setUint16(0x2e, 1, true); // subsystem id: virtio device id
    this.cfg[0x34] = CAP_COMMON;
    this.cfg[0x3d] = 1; // INTA#
    this.vendorCap(CAP_COMMON, CAP_NOTIFY, 16, PciCap.COMMON, 0, COMMON_OFF, Common.SIZE);
    this.vendorCap(CAP_NOTIFY, CAP_ISR, 20, PciCap.NOTIFY, 0, NOTIFY_OFF, NOTIFY_MULTIPLIER * NUM_QUEUES);
    c.setUint32(CAP_NOTIFY + 16, NOTIFY_MULTIPLIER, true);
    this.vendorCap(CAP_ISR, CAP_DEVICE, 16, PciCap.ISR, 0, ISR_OFF, 1);
    this.vendorCap(CAP_DEVICE, CAP_PCI_CFG, 16, PciCap.DEVICE, 0, DEVICE_OFF, 0x100);
    this.vendorCap(CAP_PCI_CFG, CAP_MSIX, 20, PciCap.PCI_CFG, 0, 0, 0);
    this.cfg[CAP_MSIX] = 0x11;
    this.cfg[CAP_MSIX + 1] = 0;
    c.setUint16(CAP_MSIX + 2, MSIX_VECTORS - 1, true);
    c.setUint32(CAP_MSIX + 4, MSIX_TABLE_OFF | 1, true); // BIR 1
    c.setUint32(CAP_MSIX + 8, MSIX_PBA_OFF | 1, true);
    for (let v = 0; v < MSIX_VECTORS; v++) this.msixTable[16 * v + 12] = 1; // masked at reset
  }

  private vendorCap(at: number, next: number, len: number, type: PciCap, bar: number, offset: number, length: number): void {
    this.cfg[at] = 0x09; // PCI_CAP_ID_VNDR
    this.cfg[at + 1] = next;
    this.cfg[at + 2] = len;
    this.cfg[at + 3] = type;
    this.cfg[at + 4] = bar;
    this.cfgView.setUint32(at + 8, offset, true);
    this.cfgView.setUint32(at + 12, length, true);
  }

  // ──────────────────────────── configuration space ────────────────────────────

  /** A configuration read of `size` bytes at `offset` (little-endian). */
  configRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > 256) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    // VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9): pci_cfg_data reads through the BAR.
    if (offset >= CAP_PCI_CFG + 16 && offset < CAP_PCI_CFG + 20) return this.pciCfgWindow(offset, size);
    return this.readCfg(offset, size);
  }

  private readCfg(offset: number, size: number): number {
    const c = this.cfgView;
    return size === 1 ? c.getUint8(offset) : size === 2 ? c.getUint16(offset, true) : c.getUint32(offset, true);
  }

  /** A configuration write. Only the writable bits change: command, BARs, interrupt line, MSI-X control, the PCI_CFG window. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > 256) return;
    const c = this.cfgView;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (at >= 0x04 && at < 0x06) this.cfg[at] = byte & (at === 0x04 ? 0x06 : 0x04); // memory space, bus master, INTx disable
      else if (at >= 0x10 && at < 0x28) this.writeBarByte(at, byte);
      else if (at === 0x3c) this.cfg[at] = byte;
      else if (at === CAP_MSIX + 3) {
        const was = this.msixEnabled;
        this.cfg[at] = byte & 0xc0; // MSI-X enable, function mask
        if (this.msixEnabled !== was) this.updateIntx();
        this.deliverPending();
      } else if (at >= CAP_PCI_CFG + 4 && at < CAP_PCI_CFG + 16 && at !== CAP_PCI_CFG + 5) this.cfg[at] = byte;
    }
    if (offset >= CAP_PCI_CFG + 16 && offset < CAP_PCI_CFG + 20) this.pciCfgWindow(offset, size, value);
    void c;
  }

  /** BARs: the base bits are writable, the size bits read back as zero (PCI sizing). */
  private writeBarByte(at: number, byte: number): void {
    const bar = (at - 0x10) >> 2;
    const size = BAR_SIZES[bar] ?? 0;
    const reg = 0x10 + 4 * bar;
    const mask = size ? ~(size - 1) >>> 0 : 0;
    const cur = this.cfgView.getUint32(reg, true);
    const shift = 8 * (at - reg);
    let next = (cur & ~(0xff << shift)) | (byte << shift);
    next = (next & mask) >>> 0; // memory BAR, 32-bit, not prefetchable: low flag bits 0
    this.cfgView.setUint32(reg, next, true);
  }

  /** The guest-physical address BAR `i` is programmed to (0 if unset). */
  barAddress(i: number): number {
    return this.cfgView.getUint32(0x10 + 4 * i, true);
  }

  /** Decodes a guest-physical address to (bar, offset) if it falls inside a programmed BAR. */
  barAt(addr: number): { bar: number; offset: number } | undefined {
    for (let i = 0; i < 2; i++) {
      const base = this.barAddress(i);
      if (base !== 0 && addr >= base && addr < base + BAR_SIZES[i]) return { bar: i, offset: addr - base };
    }
    return undefined;
  }

  private pciCfgWindow(offset: number, size: number, value?: number): number {
    const c = this.cfgView;
    const bar = this.cfg[CAP_PCI_CFG + 4];
    const off = c.getUint32(CAP_PCI_CFG + 8, true);
    const len = c.getUint32(CAP_PCI_CFG + 12, true);
    // 4.1.4.9.1: length 1, 2 or 4, offset aligned to it; the access uses that width.
    if ((len !== 1 && len !== 2 && len !== 4) || off % len !== 0 || offset !== CAP_PCI_CFG + 16 || size < len) return 0;
    if (value === undefined) return this.barRead(bar, off, len);
    this.barWrite(bar, off, len, value & (len === 4 ? 0xffff_ffff : (1 << (8 * len)) - 1));
    return 0;
  }

  // ──────────────────────────────── BARs ─────────────────────────────────

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar === 1) return this.msixRead(offset, size);
    if (bar !== 0) return 0;
    if (offset >= COMMON_OFF && offset < COMMON_OFF + Common.SIZE) return this.commonRead(offset - COMMON_OFF, size);
    if (offset === ISR_OFF) return this.isrRead();
    if (offset >= DEVICE_OFF && offset < DEVICE_OFF + 0x100) return this.dev.readConfig(offset - DEVICE_OFF, size);
    return 0;
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (bar === 1) { this.msixWrite(offset, size, value); return; }
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
          this.msixPending = 0;
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

  // ──────────────────────────────── MSI-X ────────────────────────────────

  private get msixEnabled(): boolean { return (this.cfg[CAP_MSIX + 3] & 0x80) !== 0; }
  private get msixFunctionMasked(): boolean { return (this.cfg[CAP_MSIX + 3] & 0x40) !== 0; }

  private msixRead(off: number, size: number): number {
    if (off >= MSIX_TABLE_OFF && off + size <= MSIX_TABLE_OFF + this.msixTable.length) {
      const dv = new DataView(this.msixTable.buffer);
      const o = off - MSIX_TABLE_OFF;
      return size === 1 ? dv.getUint8(o) : size === 2 ? dv.getUint16(o, true) : dv.getUint32(o, true);
    }
    if (off === MSIX_PBA_OFF) return this.msixPending;
    return 0;
  }

  private msixWrite(off: number, size: number, value: number): void {
    if (off < MSIX_TABLE_OFF || off + size > MSIX_TABLE_OFF + this.msixTable.length) return;
    const o = off - MSIX_TABLE_OFF;
    for (let i = 0; i < size; i++) {
      const at = o + i;
      // Vector control: only the mask bit is writable.
      this.msixTable[at] = (at % 16 === 12 ? (value >>> (8 * i)) & 1 : at % 16 > 12 ? 0 : (value >>> (8 * i)) & 0xff);
    }
    this.deliverPending();
  }

  private msixMasked(v: number): boolean {
    return this.msixFunctionMasked || (this.msixTable[16 * v + 12] & 1) !== 0;
  }

  private sendMsi(v: number): void {
    if (v === NO_VECTOR) return;
    if (this.msixMasked(v)) {
      this.msixPending |= 1 << v;
      return;
    }
    const dv = new DataView(this.msixTable.buffer);
    const addr = BigInt(dv.getUint32(16 * v, true)) | (BigInt(dv.getUint32(16 * v + 4, true)) << 32n);
    this.hooks.msi?.(addr, dv.getUint32(16 * v + 8, true));
  }

  private deliverPending(): void {
    if (!this.msixEnabled) return;
    for (let v = 0; v < MSIX_VECTORS; v++) {
      if ((this.msixPending & (1 << v)) !== 0 && !this.msixMasked(v)) {
        this.msixPending &= ~(1 << v);
        this.sendMsi(v);
      }
    }
  }

  // ─────────────────────────── device → driver ───────────────────────────

  /** The device used buffers on queue `q` (the device model's interrupt hook). */
  interrupt(q: number): void {
    if (this.msixEnabled) {
      this.sendMsi(this.regs.queues[q]?.vector ?? NO_VECTOR);
      return;
    }
    this.isr |= 1;
    this.updateIntx();
  }

  /** The device configuration changed: generation bumps, and the driver is told. */
  configChanged(): void {
    this.generation++;
    if (this.msixEnabled) {
      this.sendMsi(this.configVector);
      return;
    }
    this.isr |= 2;
    this.updateIntx();
  }

  private updateIntx(): void {
    // INTx is asserted while ISR has bits, MSI-X is off and the command register allows it.
    const level = this.isr !== 0 && !this.msixEnabled && (this.cfg[0x05] & 0x04) === 0;
    if (level !== this.intx) {
      this.intx = level;
      this.hooks.setIntx(level);
    }
  }
}
