/**
 * A PCI function's type 0 configuration space (PCI Local Bus 3.0, 6.1): identity, the command
 * register's writable bits, 32-bit memory BARs with sizing, the interrupt line and pin, and
 * the capability list. What a device adds (its capabilities' writable bytes) it handles itself.
 */

/** Header registers (PCI 3.0, 6.1). */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITIES = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_CONFIG_SIZE = 256;
/** Command register bits a memory-only device implements: memory space, bus master, INTx disable. */
export const COMMAND_MEMORY = 0x0002;
export const COMMAND_MASTER = 0x0004;
export const COMMAND_INTX_DISABLE = 0x0400;
/** Status register: the function has a capability list. */
const STATUS_CAP_LIST = 0x0010;
const BAR_COUNT = 6;

export interface PciIdentity {
  vendor: number;
  device: number;
  revision: number;
  /** Base class, subclass and programming interface (24 bits). */
  classCode: number;
  subsystemVendor: number;
  subsystemId: number;
  /** 1 = INTA#, 0 = no INTx. */
  interruptPin: number;
}

export class PciFunction {
  readonly cfg = new Uint8Array(PCI_CONFIG_SIZE);
  readonly view = new DataView(this.cfg.buffer);

  /** `barSizes`: the size of each memory BAR (a power of two), 0 for none. */
  constructor(id: PciIdentity, readonly barSizes: readonly number[]) {
    const c = this.view;
    c.setUint16(PCI_VENDOR_ID, id.vendor, true);
    c.setUint16(PCI_DEVICE_ID, id.device, true);
    this.cfg[PCI_REVISION] = id.revision;
    this.cfg[PCI_CLASS_PROG] = id.classCode & 0xff;
    c.setUint16(PCI_CLASS_PROG + 1, id.classCode >> 8, true);
    c.setUint16(PCI_SUBSYSTEM_VENDOR, id.subsystemVendor, true);
    c.setUint16(PCI_SUBSYSTEM_ID, id.subsystemId, true);
    this.cfg[PCI_INTERRUPT_PIN] = id.interruptPin;
  }

  /** Starts the capability list at `first`. */
  set firstCapability(first: number) {
    this.cfg[PCI_CAPABILITIES] = first;
    this.view.setUint16(PCI_STATUS, this.view.getUint16(PCI_STATUS, true) | STATUS_CAP_LIST, true);
  }

  /** Writes a capability header (id, pointer to the next) at `at`. */
  capability(at: number, id: number, next: number): void {
    this.cfg[at] = id;
    this.cfg[at + 1] = next;
  }

  /** A configuration read of `size` bytes at `offset` (little-endian); all ones outside the space. */
  read(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > PCI_CONFIG_SIZE) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    const c = this.view;
    return size === 1 ? c.getUint8(offset) : size === 2 ? c.getUint16(offset, true) : c.getUint32(offset, true);
  }

  /**
   * Writes one byte of the header if it is writable there (command, BARs, interrupt line) and
   * returns true; false for anything else (read-only, or the device's own capabilities).
   */
  writeHeaderByte(at: number, byte: number): boolean {
    const implemented = COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE;
    if (at === PCI_COMMAND || at === PCI_COMMAND + 1) {
      this.cfg[at] = byte & (at === PCI_COMMAND ? implemented & 0xff : implemented >> 8);
      return true;
    }
    if (at >= PCI_BAR0 && at < PCI_BAR0 + 4 * BAR_COUNT) {
      this.writeBarByte(at, byte);
      return true;
    }
    if (at === PCI_INTERRUPT_LINE) {
      this.cfg[at] = byte;
      return true;
    }
    return at < 0x40; // the rest of the header is read-only
  }

  /** The command register forbids INTx. */
  get intxDisabled(): boolean { return (this.view.getUint16(PCI_COMMAND, true) & COMMAND_INTX_DISABLE) !== 0; }

  /** BARs: the base bits are writable, the size bits read back as zero (PCI sizing). */
  private writeBarByte(at: number, byte: number): void {
    const bar = (at - PCI_BAR0) >> 2;
    const size = this.barSizes[bar] ?? 0;
    const reg = PCI_BAR0 + 4 * bar;
    const mask = size ? ~(size - 1) >>> 0 : 0;
    const cur = this.view.getUint32(reg, true);
    const shift = 8 * (at - reg);
    const next = (cur & ~(0xff << shift)) | (byte << shift);
    this.view.setUint32(reg, (next & mask) >>> 0, true); // memory BAR, 32-bit, not prefetchable: flag bits 0
  }

  /** The guest-physical address BAR `i` is programmed to (0 if unset). */
  barAddress(i: number): number {
    return this.view.getUint32(PCI_BAR0 + 4 * i, true);
  }

  /** Decodes a guest-physical address to (bar, offset) if it falls inside a programmed BAR. */
  barAt(addr: number): { bar: number; offset: number } | undefined {
    for (let i = 0; i < this.barSizes.length; i++) {
      const base = this.barAddress(i);
      const size = this.barSizes[i];
      if (size && base !== 0 && addr >= base && addr < base + size) return { bar: i, offset: addr - base };
    }
    return undefined;
  }
}
