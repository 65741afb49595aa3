/**
 * Checksum throughput: the core's v128 loop and scalar loop (both looping inside Wasm), a
 * plain JavaScript byte loop (the tests' reference onesSum, written the way JS emulators write
 * it), and JS copyWithin (memmove) over the same bytes as the floor.
 */
import { compare, table } from "./harness.js";
import { frameOfSize } from "./device.js";
import { ringBench } from "./ring-loop.js";
import { onesSum } from "../host/driver/frames.js";

export function checksumBench(): void {
  const { dev, u8, guestBase } = ringBench({ frame: frameOfSize(64) });
  const gpa = 0x800000;
  const at = guestBase + gpa;
  const rows = [["bytes", "SIMD GB/s", "scalar GB/s", "JS loop GB/s", "copyWithin GB/s", "SIMD/scalar", "SIMD/JS", "SIMD/copy"]];
  for (const len of [1500, 65536]) {
    for (let i = 0; i < len; i++) u8[at + i] = (i * 7) & 0xff;
    let sink = 0;
    const res = compare({
      simd: (n) => { sink ^= dev.core.checksumGuest(dev.state, BigInt(gpa), len, 1, n); },
      scalar: (n) => { sink ^= dev.core.checksumGuest(dev.state, BigInt(gpa), len, 0, n); },
      js: (n) => { for (let i = 0; i < n; i++) sink ^= onesSum(u8.subarray(at, at + len)); },
      copy: (n) => { for (let i = 0; i < n; i++) u8.copyWithin(at + (1 << 20), at, at + len); },
    });
    if (sink === -1) console.log("unreachable");
    const gb = (r: number) => ((r * len) / 1e9).toFixed(1);
    rows.push([`${len}`, gb(res.simd.rate), gb(res.scalar.rate), gb(res.js.rate), gb(res.copy.rate),
      res.scalar.ratio === 0 ? "-" : (1 / res.scalar.ratio).toFixed(2), (1 / res.js.ratio).toFixed(1), (1 / res.copy.ratio).toFixed(2)]);
  }
  console.log("\nInternet checksum (RFC 1071) over guest RAM (ratios: median of interleaved rounds)");
  table(rows);
}
