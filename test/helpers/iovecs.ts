/**
 * Reading and filling the core's iovec arrays ({u64 base, u64 len}) in a Wasm memory, for
 * stand-ins of a backend that do in TypeScript what writev/readv do (nativeBase 0: the bases
 * are Wasm addresses).
 */

/** The `n` iovecs at `iov`. */
export function iovecs(memory: WebAssembly.Memory, iov: bigint | number, n: number): { base: number; len: number }[] {
  const dv = new DataView(memory.buffer);
  return Array.from({ length: n }, (_, i) => ({
    base: Number(dv.getBigUint64(Number(iov) + 16 * i, true)), len: Number(dv.getBigUint64(Number(iov) + 16 * i + 8, true)),
  }));
}

/** What writev would send: the iovecs' bytes, in order. */
export function gather(memory: WebAssembly.Memory, iov: bigint | number, n: number): Uint8Array {
  const u8 = new Uint8Array(memory.buffer);
  const parts = iovecs(memory, iov, n).map((v) => u8.subarray(v.base, v.base + v.len));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** What readv would do with `bytes`: fills the iovecs in order; returns the bytes placed. */
export function scatter(memory: WebAssembly.Memory, iov: bigint | number, n: number, bytes: Uint8Array): number {
  const u8 = new Uint8Array(memory.buffer);
  let at = 0;
  for (const v of iovecs(memory, iov, n)) {
    const take = Math.min(v.len, bytes.length - at);
    u8.set(bytes.subarray(at, at + take), v.base);
    at += take;
  }
  return at;
}
