import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Feature } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { onesSum } from "../../host/driver/frames.js";
import { fixture, type Fixture } from "../helpers/setup.js";

/** The core sums in little-endian word order; the reference in network order. */
const swap16 = (v: number) => ((v & 0xff) << 8) | (v >> 8);

function withBytes(f: Fixture, bytes: Uint8Array, at: bigint): void {
  f.drv.write(at, bytes);
}

/** Writes `pieces` at scattered guest addresses and a {gpa,len} list describing them. */
function scatter(f: Fixture, pieces: Uint8Array[]): bigint {
  const list = f.drv.alloc(16 * pieces.length, 8);
  const dv = new DataView(new ArrayBuffer(16 * pieces.length));
  pieces.forEach((p, i) => {
    const gpa = f.drv.alloc(p.length + 1, 1) + BigInt(i & 1); // odd addresses too
    f.drv.write(gpa, p);
    dv.setBigUint64(16 * i, gpa, true);
    dv.setBigUint64(16 * i + 8, BigInt(p.length), true);
  });
  f.drv.write(list, new Uint8Array(dv.buffer));
  return list;
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [0, ...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < points.length; i++) if (points[i + 1] > points[i]) out.push(bytes.subarray(points[i], points[i + 1]));
  return out.length ? out : [bytes];
}

describe("RFC 1071 checksum", () => {
  const f = fixture({ guestSize: 8 << 20 });
  f.drv.negotiate(featureMask(Feature.VERSION_1));
  const st = f.dev.state;

  it("matches known vectors (RFC 1071 section 3 example and edge cases)", () => {
    const cases: [number[], number][] = [
      [[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0xddf2], // RFC 1071, 3: sum 0x2ddf0 folds to 0xddf2
      [[], 0],
      [[0xff], 0xff00],
      [[0xff, 0xff], 0xffff],
      [[0xff, 0xff, 0x00, 0x01], 0x0001],
    ];
    for (const [bytes, expected] of cases) {
      const at = 0x10000n;
      withBytes(f, Uint8Array.from(bytes), at);
      for (const simd of [1, 0]) {
        expect(swap16(f.dev.core.checksumGuest(st, at, bytes.length, simd, 1))).toBe(expected);
      }
    }
  });

  it("SIMD and scalar loops equal the reference for any bytes, length and alignment", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), fc.nat(63), (bytes, misalign) => {
      const at = 0x20000n + BigInt(misalign);
      withBytes(f, bytes, at);
      const ref = onesSum(bytes);
      expect(swap16(f.dev.core.checksumGuest(st, at, bytes.length, 1, 1))).toBe(ref);
      expect(swap16(f.dev.core.checksumGuest(st, at, bytes.length, 0, 1))).toBe(ref);
    }), { numRuns: 300 });
  });

  it("is right for a buffer large enough to need lane widening (1 MiB of 0xff)", () => {
    const big = new Uint8Array(1 << 20).fill(0xff);
    withBytes(f, big, 0x100000n);
    expect(swap16(f.dev.core.checksumGuest(st, 0x100000n, big.length, 1, 1))).toBe(onesSum(big));
  });

  it("sums scatter-gather lists split anywhere (odd lengths, odd offsets) like the contiguous bytes", () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.array(fc.nat(3000), { maxLength: 7 }),
      fc.nat(100), fc.nat(3000),
      (bytes, cuts, from, span) => {
        const list = scatter(f, split(bytes, cuts));
        const n = split(bytes, cuts).length;
        const off = Math.min(from, bytes.length);
        const len = Math.min(span, bytes.length - off);
        const ref = onesSum(bytes.subarray(off, off + len));
        expect(swap16(f.dev.core.checksumGuestList(st, list, n, off, len))).toBe(ref);
      }), { numRuns: 300 });
  });

  it("refuses ranges outside guest RAM", () => {
    expect(f.dev.core.checksumGuest(st, BigInt(8 << 20) - 10n, 20, 1, 1)).toBe(-1);
    expect(f.dev.core.checksumGuestList(st, 0xffff_ffffn, 1, 0, 1)).toBe(-1);
  });
});
