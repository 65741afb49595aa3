/** `npm run bench`: every suite, one process, contenders interleaved; the tap suite again under Bun and Deno. */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { browserBench } from "./browser.js";
import { checksumBench } from "./checksum.js";
import { deviceBench } from "./device.js";
import { dpdkBench } from "./dpdk.js";
import { dirtyLogBench, migrationBench } from "./migration.js";
import { qemuBench, rateLimitBench } from "./qemu.js";
import { segmentBench } from "./segment.js";
import { tapBench } from "./tap.js";
import { translateBench } from "./translate.js";
import { uplinkBench } from "./uplink.js";
import { v86Bench } from "./v86.js";

/** Runtimes for the cross-runtime tap run, fetched from npm on first use. */
const OTHER_RUNTIMES: [string, string[]][] = [
  ["bun@1.4.5", []],
  ["deno@2.9.6", ["run", "--allow-all"]],
];

console.log(`virtio-net-wasm benchmarks — node ${process.version}, ${cpus()[0]?.model ?? "cpu?"} x${cpus().length}`);
console.log("Numbers are medians of interleaved rounds on a shared machine: read the ratios, not the absolutes.");
deviceBench();
checksumBench();
translateBench();
segmentBench();
dirtyLogBench();
await tapBench();
await qemuBench();
await rateLimitBench();
await migrationBench();
await uplinkBench();
await v86Bench();
await browserBench();
await dpdkBench();
if (!process.argv.includes("--node-only") && process.getuid?.() === 0) {
  const tapJs = fileURLToPath(new URL("./tap.js", import.meta.url));
  for (const [pkg, args] of OTHER_RUNTIMES) {
    const r = spawnSync("npx", ["-y", pkg, ...args, tapJs], { stdio: "inherit", timeout: 600_000 });
    if (r.status !== 0) console.log(`\nTap throughput (${pkg}): not run (npx ${pkg} exited ${r.status ?? r.signal}); pass --node-only to skip`);
  }
}
