/** `npm run bench`: every suite, one process, contenders interleaved. */
import { cpus } from "node:os";
import { checksumBench } from "./checksum.js";
import { deviceBench } from "./device.js";
import { translateBench } from "./translate.js";

const runtime = typeof process !== "undefined" ? `node ${process.version}` : "unknown runtime";
console.log(`virtio-net-wasm benchmarks — ${runtime}, ${cpus()[0]?.model ?? "cpu?"} x${cpus().length}`);
console.log("Numbers are medians of interleaved rounds on a shared machine: read the ratios, not the absolutes.");
deviceBench();
checksumBench();
translateBench();
