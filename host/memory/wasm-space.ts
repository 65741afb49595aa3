/**
 * One shared Wasm memory handed out in ranges: state blocks, host words (device locks) and
 * mapped guest RAM of several devices. Devices whose guests share a network share one space so
 * the core can move frames between them in place (assembly/net/forward.ts); a device on its own
 * gets a space of its own. The first 64 KiB are never handed out (address 0 stays invalid).
 */
const WASM_PAGE = 65536;
/** A Wasm32 memory addresses at most 4 GiB. */
const MAX_BYTES = 65536 * WASM_PAGE;

export class WasmSpaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WasmSpaceError";
  }
}

export class WasmSpace {
  readonly memory: WebAssembly.Memory;
  /** Ranges in use, sorted by address. */
  private readonly used: { at: number; size: number }[] = [];

  constructor() {
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  }

  /**
   * Reserves `size` bytes at an address that is a multiple of `align`, or, with `nativeBase`,
   * whose native address (nativeBase + at) is (what an mmap of a huge-page fd needs). The memory
   * grows to cover it. Fresh ranges read as zero; reused ones are zeroed (`zero`, default true)
   * unless the caller maps over them anyway.
   */
  alloc(size: number, align = 16, nativeBase = 0n, zero = true): number {
    if (!(size > 0) || !Number.isInteger(size)) throw new RangeError(`bad size ${size}`);
    if (align <= 0 || (align & (align - 1)) !== 0) throw new RangeError(`alignment ${align} is not a power of two`);
    const skew = Number(nativeBase % BigInt(align));
    const fit = (at: number) => at + ((align - ((at + skew) % align)) % align);
    let at = fit(WASM_PAGE);
    for (const u of this.used) {
      if (at + size <= u.at) break;
      at = fit(Math.max(at, u.at + u.size));
    }
    if (at + size > MAX_BYTES) throw new WasmSpaceError(`${size} bytes do not fit a 4 GiB Wasm memory (${this.inUse} in use)`);
    const have = this.memory.buffer.byteLength;
    if (at + size > have) this.memory.grow(Math.ceil((at + size - have) / WASM_PAGE));
    else if (zero) new Uint8Array(this.memory.buffer, at, size).fill(0);
    this.used.push({ at, size });
    this.used.sort((a, b) => a.at - b.at);
    return at;
  }

  /** Gives back the range that starts at `at`. */
  free(at: number): void {
    const i = this.used.findIndex((u) => u.at === at);
    if (i < 0) throw new WasmSpaceError(`no range at ${at}`);
    this.used.splice(i, 1);
  }

  /** Bytes handed out. */
  get inUse(): number {
    return this.used.reduce((a, u) => a + u.size, 0);
  }
}
