/**
 * Guest RAM from a vhost-user front-end, mapped into the Wasm memory so the core works on it
 * in place: each region's fd is mmap'ed with MAP_FIXED over a free, page-aligned range of the
 * memory's backing store (grown first so Wasm's bounds cover it), and registered with the core
 * as guest-physical [gpa, gpa + size) at that Wasm address. Removing a region maps fresh
 * anonymous memory over the range (releasing the front-end's memory) and closes its fd.
 */
import type { VirtioNetDevice } from "../device/virtio-net.js";
import * as libc from "../runtime/libc.js";
import type { MemRegion } from "./protocol.js";

const WASM_PAGE = 65536;
/** A Wasm32 memory addresses at most 4 GiB. */
const MAX_BYTES = 65536 * WASM_PAGE;

interface Mapped {
  region: MemRegion;
  fd: number;
  wasm: number;
  size: number;
}

export class GuestMapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GuestMapError";
  }
}

export class MappedGuestMemory {
  private readonly mapped: Mapped[] = [];
  private readonly base: bigint;

  /** `firstFree`: lowest Wasm address regions may use (above the state blocks). */
  constructor(readonly memory: WebAssembly.Memory, readonly dev: VirtioNetDevice, private readonly firstFree: number) {
    this.base = libc.memoryAddress(memory);
    if (this.base % 4096n !== 0n) throw new GuestMapError("memory backing store is not page aligned");
  }

  get regions(): readonly MemRegion[] { return this.mapped.map((m) => m.region); }

  /** Maps `region` from `fd` (taking ownership of the fd). */
  add(region: MemRegion, fd: number): void {
    try {
      if (region.size === 0n || region.size % 4096n !== 0n || region.mmapOffset % 4096n !== 0n) {
        throw new GuestMapError(`region gpa 0x${region.gpa.toString(16)}: size and mmap offset must be page multiples`);
      }
      if (this.mapped.some((m) => m.region.gpa === region.gpa)) throw new GuestMapError(`region gpa 0x${region.gpa.toString(16)} already mapped`);
      const size = Number(region.size);
      const wasm = this.place(size);
      const end = wasm + size;
      const have = this.memory.buffer.byteLength;
      if (end > have) this.memory.grow(Math.ceil((end - have) / WASM_PAGE));
      libc.mmap(this.base + BigInt(wasm), size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, fd, Number(region.mmapOffset));
      try {
        this.dev.addRegion({ gpa: region.gpa, size, wasm });
      } catch (e) {
        libc.mmapAnonymousFixed(this.base + BigInt(wasm), size);
        throw e;
      }
      this.mapped.push({ region, fd, wasm, size });
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /** Unmaps the region starting at `gpa` (the core stops using it first). */
  remove(gpa: bigint): boolean {
    const i = this.mapped.findIndex((m) => m.region.gpa === gpa);
    if (i < 0) return false;
    const [m] = this.mapped.splice(i, 1);
    this.dev.removeRegion(gpa);
    libc.mmapAnonymousFixed(this.base + BigInt(m.wasm), m.size);
    libc.close(m.fd);
    return true;
  }

  clear(): void {
    for (const m of [...this.mapped]) this.remove(m.region.gpa);
  }

  /** Front-end virtual address (ring addresses in SET_VRING_ADDR) to guest-physical. */
  qvaToGpa(qva: bigint): bigint | null {
    for (const { region: r } of this.mapped) {
      if (qva >= r.qva && qva - r.qva < r.size) return r.gpa + (qva - r.qva);
    }
    return null;
  }

  /** Lowest free 64 KiB-aligned Wasm range of `size` bytes at or above firstFree. */
  private place(size: number): number {
    const taken = [...this.mapped].sort((a, b) => a.wasm - b.wasm);
    let at = Math.ceil(this.firstFree / WASM_PAGE) * WASM_PAGE;
    for (const m of taken) {
      if (at + size <= m.wasm) break;
      at = Math.max(at, Math.ceil((m.wasm + m.size) / WASM_PAGE) * WASM_PAGE);
    }
    if (at + size > MAX_BYTES) throw new GuestMapError(`guest RAM does not fit a 4 GiB Wasm memory (needs ${at + size} bytes)`);
    return at;
  }
}
