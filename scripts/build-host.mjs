// Bundles the TypeScript host (library entry, CLI and benchmarks, and the browser build) with
// esbuild and emits the public type declarations with tsc. Run by `npm run build` (and so by `npm install`).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const entries = {
  index: "host/index.ts",
  testing: "host/driver/index.ts",
  "bench/main": "bench/main.ts",
  "bench/tap": "bench/tap.ts",
  "bench/qemu": "bench/qemu.ts",
  "bench/segment": "bench/segment.ts",
  "bench/v86": "bench/v86.ts",
  "bench/dpdk": "bench/dpdk.ts",
  "bench/uplink": "bench/uplink.ts",
  "bench/browser": "bench/browser.ts",
  "bench/migration": "bench/migration.ts",
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

// The browser build: what needs no native code, one self-contained ESM file per entry (the
// page imports it directly), with the file-reading core source swapped for the browser's.
const browserSwaps = {
  name: "browser-swaps",
  setup(b) {
    b.onResolve({ filter: /\/core-source\.js$/ }, (args) => ({ path: join(args.resolveDir, "core-source.browser.ts") }));
  },
};
await build({
  entryPoints: { "browser/virtio-net-wasm": "host/browser.ts", "browser/testing": "host/driver/index.ts", "browser/page": "host/web/page.ts" },
  outdir: "dist",
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  sourcemap: true,
  logLevel: "warning",
  plugins: [browserSwaps],
});

execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
publishEnumsAsRuntimeEnums("dist/types");

/**
 * The enums are `const enum` in the source because assembly/abi.ts is shared with the
 * AssemblyScript core, where only const enums fold to immediates. A consumer compiling with
 * `isolatedModules` (esbuild, Vite, Deno, ts-node) cannot use an ambient const enum (TS2748),
 * so the published declarations say `enum`; that is true, because the bundle exports each enum
 * as an object (esbuild emits const enums like regular ones).
 */
function publishEnumsAsRuntimeEnums(dir) {
  for (const entry of readdirSync(dir, { recursive: true })) {
    const file = join(dir, String(entry));
    if (!file.endsWith(".d.ts")) continue;
    const text = readFileSync(file, "utf8");
    const published = text.replace(/\bdeclare const enum\b/g, "declare enum");
    if (published !== text) writeFileSync(file, published);
  }
}
