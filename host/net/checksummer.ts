/**
 * The engine's checksum code (the core's v128 RFC 1071 loop) for host-side packet work: the
 * switch finishing a partial checksum for a port that cannot, the gateway's IPv4 header
 * checksums. One small private memory whose scratch buffer is registered as the core's
 * "guest RAM", so the same Wasm function that checksums guest frames does this too.
 */
import { instantiateCore, type CoreExports } from "../wasm/core.js";

const STATE = 65536;
const SCRATCH = 1 << 20;
/** Largest frame handled (64 KiB IP datagram + headers). */
export const MAX_FRAME = 65536 + 64;

export class Checksummer {
  private readonly core: CoreExports;
  private readonly memory: WebAssembly.Memory;
  private readonly u8: Uint8Array;

  constructor() {
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((SCRATCH + MAX_FRAME) / 65536) });
    this.core = instantiateCore(this.memory);
    this.core.init(STATE);
    if (this.core.memAddRegion(STATE, 0n, BigInt(MAX_FRAME), BigInt(SCRATCH)) !== 0) throw new Error("checksummer: region refused");
    this.u8 = new Uint8Array(this.memory.buffer);
  }

  /** Folded ones' complement sum of `bytes[off, off + len)` in network byte order (0..0xffff). */
  sum(bytes: Uint8Array, off = 0, len = bytes.length - off): number {
    if (len > MAX_FRAME) throw new RangeError(`checksum of ${len} bytes`);
    this.u8.set(bytes.subarray(off, off + len), SCRATCH);
    const le = this.core.checksumGuest(STATE, 0n, len, 1, 1);
    return ((le & 0xff) << 8) | (le >> 8);
  }

  /** The value to store in a checksum field covering `bytes[off, off + len)` plus `initial`. */
  checksum(bytes: Uint8Array, off: number, len: number, initial = 0): number {
    let s = this.sum(bytes, off, len) + initial;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    return c === 0 ? 0xffff : c;
  }

  /** Finishes a partial checksum in place: sum from `start` to the end, store at `start + off`. */
  complete(frame: Uint8Array, start: number, off: number): void {
    const v = this.checksum(frame, start, frame.length - start);
    frame[start + off] = v >> 8;
    frame[start + off + 1] = v & 0xff;
  }
}
