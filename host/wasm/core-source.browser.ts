/**
 * The browser's stand-in for core-source.ts: there is no file to read, so the core must have
 * been handed over first (`loadCore()` in host/browser.ts fetches and compiles it).
 */
export function corePath(_shared: boolean): string {
  throw new Error("no core file in a browser: use loadCore(url) from virtio-net-wasm's browser build");
}

export function readCoreModule(shared: boolean): Uint8Array<ArrayBuffer> {
  throw new Error(`the core module (${shared ? "core.shared.wasm" : "core.wasm"}) is not loaded: await loadCore(url) first`);
}
