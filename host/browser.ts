/**
 * virtio-net-wasm in a web page: everything that needs no native code. The core, the device,
 * the transports, the switch, the gateway, in-memory pcap capture and the v86 adapter; no
 * koffi, no Node built-ins (a test checks the bundle). There are no files to read, so load the
 * core first:
 *
 * ```ts
 * import { loadCore, localNetwork, V86VirtioNet } from "virtio-net-wasm"; // "browser" condition
 * await loadCore(new URL("virtio-net-wasm/core.wasm", import.meta.url));
 * const net = localNetwork({ subnet: "10.215.0.0" });
 * ```
 */
import { useCoreModule } from "./wasm/core.js";

/**
 * Fetches and compiles the core (`core.wasm`) and the build for shared memories
 * (`core.shared.wasm`, next to it unless `sharedUrl` says otherwise; a network's WasmSpace is
 * one shared memory; `shared: false` skips it), and uses them from now on.
 */
export async function loadCore(url: string | URL, opts: { shared?: boolean; sharedUrl?: string | URL } = {}): Promise<void> {
  const plain = WebAssembly.compileStreaming(fetch(url));
  const wantShared = opts.shared ?? true;
  const sharedUrl = opts.sharedUrl ?? new URL("core.shared.wasm", new URL(url, globalThis.location?.href));
  const shared = wantShared ? WebAssembly.compileStreaming(fetch(sharedUrl)) : null;
  useCoreModule(false, await plain);
  if (shared) useCoreModule(true, await shared);
}

export * from "./portable.js";
