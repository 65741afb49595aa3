// Bundles the TypeScript host (library entry, CLI and benchmarks) with esbuild and emits the
// public type declarations with tsc. Run by `npm run build` (and so by `npm install`).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const entries = {
  index: "host/index.ts",
  "bench/main": "bench/main.ts",
  "bench/tap": "bench/tap.ts",
  "bench/qemu": "bench/qemu.ts",
  "bench/segment": "bench/segment.ts",
  "bench/v86": "bench/v86.ts",
  "bench/dpdk": "bench/dpdk.ts",
  "cli/main": "host/cli/main.ts",
  "io/tap-worker-entry": "host/io/tap-worker-entry.ts",
};
const entryPoints = Object.fromEntries(Object.entries(entries).filter(([, src]) => existsSync(src)));

await build({
  entryPoints,
  outdir: "dist",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  packages: "external",
  logLevel: "warning",
});

execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
