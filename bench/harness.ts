/**
 * Timing helpers. The machine is shared and noisy, so every comparison runs its contenders
 * interleaved (A B A B ...) in one process and reports the median of per-round ratios.
 */
import { readFileSync } from "node:fs";

export interface Rate {
  /** Operations per second (median over rounds). */
  perSecond: number;
}

/** Runs `fn(n)` (which performs n operations) for about `ms` milliseconds; returns ops/s. */
export function measure(fn: (n: number) => void, ms = 150): number {
  let n = 1;
  // Calibrate to batches of ~5 ms.
  for (;;) {
    const t0 = performance.now();
    fn(n);
    const dt = performance.now() - t0;
    if (dt > 5) break;
    n *= 2;
  }
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    fn(n);
    ops += n;
  }
  return ops / ((performance.now() - t0) / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Measures each contender `rounds` times, interleaved; returns median rates and ratios to the first. */
export function compare(contenders: Record<string, (n: number) => void>, rounds = 5, ms = 120): Record<string, { rate: number; ratio: number }> {
  const names = Object.keys(contenders);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const ratios: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const name of names) contenders[name](64); // warm up JITs
  for (let r = 0; r < rounds; r++) {
    const row: Record<string, number> = {};
    for (const name of names) {
      row[name] = measure(contenders[name], ms);
      rates[name].push(row[name]);
    }
    for (const name of names) ratios[name].push(row[name] / row[names[0]]);
  }
  return Object.fromEntries(names.map((n) => [n, { rate: median(rates[n]), ratio: median(ratios[n]) }]));
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function fmt(n: number, digits = 2): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(digits)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(digits)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(digits)} k`;
  return n.toFixed(digits);
}

/** Prints a table: rows of cells, first row the header. */
export function table(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}
