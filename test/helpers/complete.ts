/** Comparing frames around the bytes a device is allowed to change. */

/** Bytes of `a` and `b` that differ, outside the listed [offset, length] ranges. */
export function diffOutside(a: Uint8Array, b: Uint8Array, skip: [number, number][]): number[] {
  const out: number[] = [];
  if (a.length !== b.length) return [-1];
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !skip.some(([o, l]) => i >= o && i < o + l)) out.push(i);
  }
  return out;
}
