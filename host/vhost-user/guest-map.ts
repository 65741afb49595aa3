/**
 * Guest RAM from a vhost-user front-end, mapped into the Wasm memory so the core works on it
 * in place: each region's fd is mmap'ed with MAP_FIXED over a range of the memory's backing
 * store that the WasmSpace hands out (grown first so Wasm's bounds cover it), and registered
 * with the core as guest-physical [gpa, gpa + size) at that Wasm address. Removing a region
 * maps fresh anonymous memory over the range (releasing the front-end's memory), gives the
 * range back and closes its fd.
 *
 * The fd's page size decides the alignment: a hugetlbfs fd (DPDK with 2 MiB pages) must be
 * mapped at a native address that is a multiple of its page size, whatever the runtime's
 * memory base (Node's happens to be 2 MiB aligned, Bun's only 4 KiB).
 */
import type { GuestRegion } from "../memory/layout.js";
import type { WasmSpace } from "../memory/wasm-space.js";
import * as libc from "../runtime/libc.js";
import type { MemRegion } from "./protocol.js";

const WASM_PAGE = 65536;

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

/** Where mapped regions are registered: a device, or every queue pair's device. */
export interface RegionSink {
  addRegion(r: GuestRegion): void;
  removeRegion(gpa: bigint): boolean;
}

export class MappedGuestMemory {
  private readonly mapped: Mapped[] = [];
  private readonly base: bigint;

  constructor(readonly space: WasmSpace, readonly dev: RegionSink) {
    this.base = libc.memoryAddress(space.memory);
    if (this.base % 4096n !== 0n) throw new GuestMapError("memory backing store is not page aligned");
  }

  get regions(): readonly MemRegion[] { return this.mapped.map((m) => m.region); }

  /** Maps `region` from `fd` (taking ownership of the fd). */
  add(region: MemRegion, fd: number): void {
    try {
      const what = `region gpa 0x${region.gpa.toString(16)}`;
      const fs = libc.fstatfs(fd);
      const page = fs.type === libc.HUGETLBFS_MAGIC ? fs.blockSize : 4096;
      if (region.size === 0n || region.size % BigInt(page) !== 0n || region.mmapOffset % BigInt(page) !== 0n) {
        throw new GuestMapError(`${what}: size 0x${region.size.toString(16)} and mmap offset 0x${region.mmapOffset.toString(16)} must be multiples of the fd's page size (${page} bytes${page > 4096 ? ", huge pages" : ""})`);
      }
      // Pages past the end of the file would fault (SIGBUS) on the first ring access.
      const fileSize = libc.fstatSize(fd);
      if (region.mmapOffset + region.size > BigInt(fileSize)) {
        throw new GuestMapError(`${what}: mmap offset 0x${region.mmapOffset.toString(16)} + size 0x${region.size.toString(16)} runs past the end of its fd (${fileSize} bytes)`);
      }
      if (this.mapped.some((m) => m.region.gpa === region.gpa)) throw new GuestMapError(`${what} already mapped`);
      const size = Number(region.size);
      const wasm = this.space.alloc(size, Math.max(page, WASM_PAGE), this.base, false);
      try {
        libc.mmap(this.base + BigInt(wasm), size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, fd, Number(region.mmapOffset));
      } catch (e) {
        this.space.free(wasm);
        throw new GuestMapError(`${what}: mmap of ${size} bytes at offset 0x${region.mmapOffset.toString(16)} (page size ${page}): ${(e as Error).message}`);
      }
      try {
        this.dev.addRegion({ gpa: region.gpa, size, wasm });
      } catch (e) {
        libc.mmapAnonymousFixed(this.base + BigInt(wasm), size);
        this.space.free(wasm);
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
    this.space.free(m.wasm);
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
}
