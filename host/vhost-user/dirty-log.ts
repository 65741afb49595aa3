/**
 * The front-end's dirty-page log (vhost-user SET_LOG_BASE with LOG_SHMFD): QEMU's bitmap, one
 * bit per 4 KiB page of guest-physical memory, shared through a memfd. It is mapped into the
 * Wasm memory (MAP_SHARED over a range the WasmSpace hands out, as guest RAM is) so the core
 * marks pages in it directly with atomic ORs while QEMU reads and clears them.
 */
import type { WasmSpace } from "../memory/wasm-space.js";
import * as libc from "../runtime/libc.js";

const PAGE = 4096;
const WASM_PAGE = 65536;

export class MappedLog {
  private fd = -1;
  /** Wasm address and bytes of the log, or 0 when none is mapped. */
  wasm = 0;
  size = 0;
  private mapped = 0;
  private readonly base: bigint;

  constructor(private readonly space: WasmSpace) {
    this.base = libc.memoryAddress(space.memory);
  }

  /** Maps `size` bytes at `offset` of `fd` (taking the fd), replacing any log mapped before. */
  map(fd: number, size: bigint, offset: bigint): void {
    this.unmap();
    try {
      if (size === 0n || size > 1n << 30n) throw new Error(`log size ${size} out of range`);
      if (offset % BigInt(PAGE) !== 0n) throw new Error(`log offset 0x${offset.toString(16)} is not page aligned`);
      if (offset + size > BigInt(libc.fstatSize(fd))) throw new Error(`log of ${size} bytes at offset ${offset} runs past its fd`);
      const bytes = Number(size);
      const span = Math.ceil(bytes / PAGE) * PAGE;
      const wasm = this.space.alloc(span, WASM_PAGE, this.base, false);
      try {
        libc.mmap(this.base + BigInt(wasm), span, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, fd, Number(offset));
      } catch (e) {
        this.space.free(wasm);
        throw e;
      }
      this.fd = fd;
      this.wasm = wasm;
      this.size = bytes;
      this.mapped = span;
    } catch (e) {
      libc.closeQuietly(fd);
      throw e;
    }
  }

  /** Releases the mapping (fresh anonymous memory over the range) and the fd. */
  unmap(): void {
    if (this.wasm === 0) return;
    libc.mmapAnonymousFixed(this.base + BigInt(this.wasm), this.mapped);
    this.space.free(this.wasm);
    libc.closeQuietly(this.fd);
    this.fd = -1;
    this.wasm = 0;
    this.size = 0;
    this.mapped = 0;
  }
}
