/**
 * `virtio-net-wasm web`: serves the demo page on 127.0.0.1 — two v86 guests on this engine's
 * NIC, in the page (host/web/page.ts) — and what it loads: the browser build, the core, v86
 * from its npm package, Debian's SeaBIOS and the i386 guest (guest/build-guest.sh i386), whose
 * initramfs gets each guest's script appended.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, extname, join, normalize } from "node:path";
import { gzipSync } from "node:zlib";
import { cpioWithFile, PACKAGE_ROOT } from "../guests/image.js";
import { dhcpScript } from "../guests/shell.js";
import { I386_GUEST_DIR, v86GuestAvailable } from "../guests/v86.js";
import { INDEX_HTML } from "../web/index-html.js";
import { commandArgs } from "./command-args.js";

export const WEB_HELP = `usage: virtio-net-wasm web [--port N] [--host ADDR]

Serves a page that boots two Debian i386 guests in v86 with their virtio-net on this engine,
on a switch with a DHCP gateway, all in the browser; it shows negotiated features, leases,
pings, counters and frames/s. Open it with ?relay=ws://HOST:PORT/ to join a relay's network
(virtio-net-wasm relay) instead of running a gateway in the page; ?guests=1 boots only one;
?offloads=off offers the guests no checksum or segmentation offload. Needs the i386 guest (guest/build-guest.sh i386) and Debian's seabios.

options:
  --port N      port on ADDR (default 8088; 0 picks a free one)
  --host ADDR   address to listen on (default 127.0.0.1)`;

/** The guests' scripts: A pings the gateway and then B; B takes a fixed second address. */
export const WEB_GUEST_SCRIPTS: Record<"a" | "b", string> = {
  a: `${dhcpScript()}
ping -c 2 -W 3 10.215.0.1 >/dev/null && echo "VNW gwping ok"
for i in $(seq 1 60); do ping -c 1 -W 1 10.215.0.211 >/dev/null && echo "VNW peer ok (10.215.0.211)" && break; sleep 0.5; done
echo "VNW done"
while true; do ping -c 1 -W 1 10.215.0.211 >/dev/null; sleep 0.2; done`,
  b: `${dhcpScript()}
ip addr add 10.215.0.211/24 dev eth0 && echo "VNW alias 10.215.0.211"
ping -c 2 -W 3 10.215.0.1 >/dev/null && echo "VNW gwping ok"
echo "VNW done"
while true; do sleep 5; done`,
};


const TYPES: Record<string, string> = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".map": "application/json" };

export interface WebServer { port: number; server: Server; close(): Promise<void> }

/** Starts the page's server; throws if the guest, BIOS or v86 are missing (naming what to do). */
export async function startWeb(port = 8088, host = "127.0.0.1", opts: { scripts?: Partial<Record<"a" | "b", string>> } = {}): Promise<WebServer> {
  const scripts = { ...WEB_GUEST_SCRIPTS, ...opts.scripts };
  const ok = v86GuestAvailable();
  if (!ok.ok) throw new Error(ok.reason);
  const v86Dir = dirname(createRequire(import.meta.url).resolve("v86"));
  const dist = existsSync(join(PACKAGE_ROOT, "dist", "browser", "page.js")) ? join(PACKAGE_ROOT, "dist") : null;
  if (!dist) throw new Error("the browser build is missing: run npm run build");
  const files: Record<string, string> = {
    "/v86/libv86.mjs": join(v86Dir, "libv86.mjs"), "/v86/v86.wasm": join(v86Dir, "v86.wasm"),
    "/bios/bios.bin": "/usr/share/seabios/bios.bin", "/bios/vgabios-stdvga.bin": "/usr/share/seabios/vgabios-stdvga.bin",
    "/guest/vmlinuz": join(I386_GUEST_DIR, "vmlinuz"),
  };
  const initrd = (role: "a" | "b") => Buffer.concat([readFileSync(join(I386_GUEST_DIR, "base.cpio.gz")), gzipSync(cpioWithFile("test.sh", `#!/bin/sh\n${scripts[role]}\n`))]);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    // Cross-origin isolation: the page may use SharedArrayBuffer (all its resources are ours).
    const headers = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-store" };
    let body: Uint8Array | string | null = null;
    let type = "application/octet-stream";
    if (path === "/") { body = INDEX_HTML; type = "text/html; charset=utf-8"; }
    else if (path === "/guest/initrd-a" || path === "/guest/initrd-b") body = initrd(path.endsWith("a") ? "a" : "b");
    else {
      const file = files[path] ?? (/^\/(dist\/browser|build)\/[\w.-]+$/.test(path) ? normalize(join(PACKAGE_ROOT, path)) : null);
      if (file && existsSync(file)) { body = readFileSync(file); type = TYPES[extname(file)] ?? type; }
    }
    if (body === null) { res.writeHead(404, headers); res.end(); return; }
    res.writeHead(200, { ...headers, "content-type": type });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(port, host, () => resolve()); });
  return { port: (server.address() as AddressInfo).port, server, close: () => new Promise((r) => server.close(() => r())) };
}

export async function webMain(args: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = commandArgs("web", WEB_HELP, args, { port: { type: "string", default: "8088" }, host: { type: "string", default: "127.0.0.1" } }, out, err);
  if (typeof parsed === "number") return parsed;
  const { values, fail } = parsed;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return fail(`--port must be 0..65535, got "${values.port}"`);
  let web: WebServer;
  try {
    web = await startWeb(port, values.host);
  } catch (e) {
    err(`virtio-net-wasm web: ${(e as Error).message}`);
    return 1;
  }
  out(`virtio-net-wasm web: open http://${values.host}:${web.port}/ (Ctrl-C to stop)`);
  await new Promise<void>((r) => { process.once("SIGINT", () => r()); process.once("SIGTERM", () => r()); });
  await web.close();
  return 0;
}
