/**
 * Where the core's bytes come from on a host with a file system (Node, Bun, Deno): the built
 * `build/core.wasm` / `build/core.shared.wasm`. The browser build replaces this module with
 * core-source.browser.ts (scripts/build-host.mjs), where the page hands the module over.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Path of a built core module: `core.wasm` for ordinary memories, `core.shared.wasm` for shared ones. */
export function corePath(shared: boolean): string {
  const name = shared ? "core.shared.wasm" : "core.wasm";
  // From source (host/wasm/) the package root is two levels up; from the bundle (dist/) one.
  for (const rel of [`../../build/${name}`, `../build/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`core module ${name} not found: run "npm run build:core"`);
}

/** The core's bytes for the memory kind. */
export function readCoreModule(shared: boolean): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(corePath(shared)));
}
