/**
 * MSI-X (PCI 3.0, 6.8.2): the capability's enable and function-mask bits, a vector table with
 * per-vector masks, and the pending bit array. A message for a masked vector is held pending
 * and delivered when the vector is unmasked.
 */
import type { PciFunction } from "./pci-function.js";

export const PCI_CAP_ID_MSIX = 0x11;
/** Table entry: message address (low, high), data, vector control (bit 0: masked). */
const ENTRY_SIZE = 16;
const ENTRY_CONTROL = 12;
const CONTROL_ENABLE = 0x80;
const CONTROL_FUNCTION_MASK = 0x40;

export interface MsixLayout {
  /** Where the capability is in configuration space. */
  capAt: number;
  vectors: number;
  /** BAR holding the table and the PBA, and their offsets in it. */
  bar: number;
  tableOffset: number;
  pbaOffset: number;
}

export class Msix {
  private readonly table: Uint8Array;
  private readonly tableView: DataView;
  private pending = 0;

  /** Writes the capability into `fn` (pointing on to `next`); `send` delivers a message. */
  constructor(private readonly fn: PciFunction, readonly layout: MsixLayout, next: number, private readonly send: (address: bigint, data: number) => void) {
    const { capAt, vectors, bar, tableOffset, pbaOffset } = layout;
    fn.capability(capAt, PCI_CAP_ID_MSIX, next);
    fn.view.setUint16(capAt + 2, vectors - 1, true); // table size, N - 1
    fn.view.setUint32(capAt + 4, tableOffset | bar, true);
    fn.view.setUint32(capAt + 8, pbaOffset | bar, true);
    this.table = new Uint8Array(ENTRY_SIZE * vectors);
    this.tableView = new DataView(this.table.buffer);
    for (let v = 0; v < vectors; v++) this.table[ENTRY_SIZE * v + ENTRY_CONTROL] = 1; // masked at reset
  }

  /** The message control byte that holds enable and function mask (the capability's byte 3). */
  get controlByteAt(): number { return this.layout.capAt + 3; }
  get enabled(): boolean { return (this.fn.cfg[this.controlByteAt] & CONTROL_ENABLE) !== 0; }
  private get functionMasked(): boolean { return (this.fn.cfg[this.controlByteAt] & CONTROL_FUNCTION_MASK) !== 0; }

  /** The driver wrote the control byte; returns whether MSI-X was turned on or off. */
  writeControl(byte: number): boolean {
    const was = this.enabled;
    this.fn.cfg[this.controlByteAt] = byte & (CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
    this.deliverPending();
    return this.enabled !== was;
  }

  /** A read of the table or the PBA at `off` in the MSI-X BAR. */
  read(off: number, size: number): number {
    const t = off - this.layout.tableOffset;
    if (t >= 0 && t + size <= this.table.length) {
      const dv = this.tableView;
      return size === 1 ? dv.getUint8(t) : size === 2 ? dv.getUint16(t, true) : dv.getUint32(t, true);
    }
    if (off === this.layout.pbaOffset) return this.pending;
    return 0;
  }

  /** A write to the table (the PBA is read-only). */
  write(off: number, size: number, value: number): void {
    const t = off - this.layout.tableOffset;
    if (t < 0 || t + size > this.table.length) return;
    for (let i = 0; i < size; i++) {
      const at = t + i;
      const byte = (value >>> (8 * i)) & 0xff;
      // Vector control: only the mask bit is writable.
      const field = at % ENTRY_SIZE;
      this.table[at] = field === ENTRY_CONTROL ? byte & 1 : field > ENTRY_CONTROL ? 0 : byte;
    }
    this.deliverPending();
  }

  /** Signals vector `v`: sent now, or held pending while masked. */
  signal(v: number): void {
    if (v >= this.layout.vectors) return;
    if (this.masked(v)) {
      this.pending |= 1 << v;
      return;
    }
    const dv = this.tableView;
    const at = ENTRY_SIZE * v;
    this.send(BigInt(dv.getUint32(at, true)) | (BigInt(dv.getUint32(at + 4, true)) << 32n), dv.getUint32(at + 8, true));
  }

  /** Drops every pending message (device reset). */
  clearPending(): void {
    this.pending = 0;
  }

  private masked(v: number): boolean {
    return this.functionMasked || (this.table[ENTRY_SIZE * v + ENTRY_CONTROL] & 1) !== 0;
  }

  private deliverPending(): void {
    if (!this.enabled) return;
    for (let v = 0; v < this.layout.vectors; v++) {
      if ((this.pending & (1 << v)) !== 0 && !this.masked(v)) {
        this.pending &= ~(1 << v);
        this.signal(v);
      }
    }
  }
}
