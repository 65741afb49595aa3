// The Internet checksum (RFC 1071) with v128 SIMD.
//
// Sums are accumulated over little-endian 16-bit words and converted to network order only at
// the end: the ones' complement sum is byte-order independent (RFC 1071, 2.B), so summing in
// the machine's order and swapping the folded result gives the network-order checksum. A
// trailing odd byte is the low byte of a final word padded with zero. A block that starts at
// an odd offset of the logical stream contributes its folded sum byte-swapped (RFC 1071, 2.C).

/** Folds a 64-bit accumulation of 16-bit words into 16 bits (end-around carry). */
export function fold(sum: u64): u32 {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  let s = <u32>sum;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return s;
}

/** Swaps the bytes of a 16-bit value. */
// @ts-ignore: decorator
@inline export function swap16(v: u32): u32 { return ((v & 0xff) << 8) | ((v >> 8) & 0xff); }

/** Plain loop over 32-bit words; the reference the SIMD loop is measured against. */
export function sumScalar(p: usize, len: usize): u64 {
  let acc: u64 = 0;
  let i: usize = 0;
  for (; i + 8 <= len; i += 8) {
    const w = load<u64>(p + i);
    acc += (w & 0xffffffff) + (w >> 32);
  }
  for (; i + 2 <= len; i += 2) acc += <u64>load<u16>(p + i);
  if (i < len) acc += <u64>load<u8>(p + i);
  return acc;
}

/** Bytes summed in 32-bit lanes before widening, so no lane can overflow (64 KiB of 16-bit words per lane pair). */
// @ts-ignore: decorator
@inline const SIMD_CHUNK: usize = 1 << 18;

/** v128 loop: pairs of 16-bit words widen into four 32-bit lanes, widened to 64 bits per chunk. */
export function sumSimd(p: usize, len: usize): u64 {
  let total = i64x2.splat(0);
  let i: usize = 0;
  while (len - i >= 64) {
    let end = i + SIMD_CHUNK;
    if (end > len) end = len;
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    // Each lane gains at most 2 * 0xffff per 64-byte block; SIMD_CHUNK/64 blocks fit in 32 bits.
    for (; i + 64 <= end; i += 64) {
      a0 = i32x4.add(a0, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 0)));
      a1 = i32x4.add(a1, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 16)));
      a2 = i32x4.add(a2, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 32)));
      a3 = i32x4.add(a3, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 48)));
    }
    const s01 = i64x2.add(
      i64x2.add(i64x2.extend_low_i32x4_u(a0), i64x2.extend_high_i32x4_u(a0)),
      i64x2.add(i64x2.extend_low_i32x4_u(a1), i64x2.extend_high_i32x4_u(a1)),
    );
    const s23 = i64x2.add(
      i64x2.add(i64x2.extend_low_i32x4_u(a2), i64x2.extend_high_i32x4_u(a2)),
      i64x2.add(i64x2.extend_low_i32x4_u(a3), i64x2.extend_high_i32x4_u(a3)),
    );
    total = i64x2.add(total, i64x2.add(s01, s23));
  }
  const acc = <u64>i64x2.extract_lane(total, 0) + <u64>i64x2.extract_lane(total, 1);
  return acc + sumScalar(p + i, len - i);
}

/**
 * Sum of a block that starts at logical offset `at` of the checksummed stream, folded to 16
 * bits in little-endian word order and already byte-swapped if `at` is odd.
 */
export function sumBlock(p: usize, len: usize, at: u32): u32 {
  const s = fold(sumSimd(p, len));
  return (at & 1) != 0 ? swap16(s) : s;
}

/** Adds two folded 16-bit sums (ones' complement). */
// @ts-ignore: decorator
@inline export function add16(a: u32, b: u32): u32 {
  const s = a + b;
  return (s & 0xffff) + (s >> 16);
}

/**
 * The value to store (little-endian u16 store) in a checksum field, given the folded
 * little-endian-order sum of everything it covers: the complement, with 0 sent as 0xffff
 * (both are zero in ones' complement; UDP reserves 0 for "no checksum", RFC 768).
 * Complementing commutes with the byte swap, so no swap is needed here.
 */
export function finish(leSum: u32): u16 {
  const c = ~leSum & 0xffff;
  return <u16>(c == 0 ? 0xffff : c);
}

/** A network-order 16-bit quantity (e.g. a length) as a little-endian-order word for sums. */
// @ts-ignore: decorator
@inline export function beWord(v: u32): u32 { return swap16(v & 0xffff); }
