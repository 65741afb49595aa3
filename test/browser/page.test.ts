/**
 * The browser build in a real browser: Debian's Chromium, headless, driven by playwright-core
 * (no browser download). A page served from 127.0.0.1 imports dist/browser/virtio-net-wasm.js,
 * loads the core with loadCore(), and puts a virtio-net device with a guest driver (the
 * testing bundle) on a local network with the gateway: DHCP, a ping to the gateway, and an
 * in-memory pcap capture. The console must stay free of errors. The bundles themselves must not
 * reference koffi or any Node built-in.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumUnavailable, withPage } from "./chromium.js";
import { startRelay } from "../../host/cli/relay.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const why = chromiumUnavailable();

const BUNDLES = ["dist/browser/virtio-net-wasm.js", "dist/browser/testing.js"];

describe("browser bundles", () => {
  it.each(BUNDLES)("%s pulls in no koffi and no Node built-in", (bundle) => {
    const text = readFileSync(join(ROOT, bundle), "utf8");
    expect(text).not.toMatch(/from\s*["'](node:|koffi|fs|path|url|os|child_process|worker_threads)["']/);
    expect(text).not.toMatch(/\bkoffi\b|\brequire\(|process\.getuid|\bBuffer\.(from|alloc)/);
    expect(text).not.toMatch(/import\s*\(\s*["'](?!\.)/);
  });
});

/** Page-side helpers both pages share: a guest with a device on a switch, and a DHCP DISCOVER. */
const PAGE_HELPERS = `
function pageGuest({ VirtioNetDevice, DevicePort, GuestDriver, BackendKind, Feature, featureMask }, space, sw, mac, seed) {
  const size = 4 << 20;
  const regions = [{ gpa: 0n, size, wasm: space.alloc(size, 4096) }];
  const dev = new VirtioNetDevice({ memory: space.memory, stateAddress: space.alloc(VirtioNetDevice.stateSize(), 64), regions, backend: BackendKind.VNET_HDR, mac });
  const port = new DevicePort("page guest", dev, sw);
  const guest = new GuestDriver({ memory: space.memory, regions }, dev, seed);
  guest.bringUp(featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM), 64);
  guest.postRx(16);
  return { dev, port, guest, macBytes: Uint8Array.from(mac.split(":").map((h) => parseInt(h, 16))) };
}
// DHCP DISCOVER (RFC 2131), broadcast from an unconfigured client.
function discover(buildFrame, macBytes) {
  const bootp = new Uint8Array(244);
  bootp.set([1, 1, 6, 0, 0x12, 0x34, 0x56, 0x78]);
  bootp.set(macBytes, 28);
  bootp.set([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255], 236);
  return buildFrame({ ip: 4, l4: "udp", payload: bootp, srcMac: macBytes, dstMac: new Uint8Array(6).fill(255),
    src: [0, 0, 0, 0], dst: [255, 255, 255, 255], sport: 68, dport: 67 }).frame;
}
`;

const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>virtio-net-wasm</title><body><pre id="out"></pre>
<script type="module">
${PAGE_HELPERS}
import { loadCore, localNetwork, VirtioNetDevice, DevicePort, BackendKind, Feature, featureMask, QueueIndex, PcapCapture, NetHdr } from "/dist/browser/virtio-net-wasm.js";
import { GuestDriver, buildFrame, decodeFrame, payload } from "/dist/browser/testing.js";
const log = (s) => { document.getElementById("out").textContent += s + "\\n"; };
try {
  await loadCore("/build/core.wasm");
  const net = localNetwork({ subnet: "198.51.100.0" });
  const pcap = new PcapCapture(net.sw);
  const { dev, port, guest, macBytes } = pageGuest({ VirtioNetDevice, DevicePort, GuestDriver, BackendKind, Feature, featureMask }, net.space, net.sw, "52:54:00:00:0b:01", 3);
  guest.send(discover(buildFrame, macBytes));
  port.pumpTx(); port.pumpRx();
  const offer = guest.receiveAll().map((r) => decodeFrame(r.frame)).find((d) => d.ip?.sport === 67);
  const yiaddr = offer ? Array.from(offer.ip.payload.subarray(16, 20)).join(".") : null;
  // A ping to the gateway, with a partial checksum as Linux sends it.
  const ping = buildFrame({ ip: 4, l4: "icmp", payload: payload(56), srcMac: macBytes, dstMac: net.gateway.mac,
    src: [198, 51, 100, 150], dst: net.gateway.ip });
  guest.send(ping.frame);
  port.pumpTx(); port.pumpRx();
  const reply = guest.receiveAll().map((r) => decodeFrame(r.frame)).find((d) => d.ip?.icmpType === 0);
  const blob = pcap.blob();
  window.result = {
    offer: yiaddr, gatewayReplied: !!reply, txPackets: dev.metrics(QueueIndex.TX).packets, rxPackets: dev.metrics(QueueIndex.RX).packets,
    pcapFrames: pcap.frames, pcapBytes: blob.size, negotiated: String(dev.negotiatedFeatures),
  };
  log(JSON.stringify(window.result));
} catch (e) {
  window.result = { error: String(e && e.stack || e) };
  console.error(e);
}
</script>`;

/** A page whose guest has no gateway of its own: its switch joins the relay's network over a WebSocket. */
const LINKED_PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>linked</title><body>
<script type="module">
${PAGE_HELPERS}
import { loadCore, Switch, WasmSpace, VirtioNetDevice, DevicePort, WebSocketPort, BackendKind, Feature, featureMask, QueueIndex } from "/dist/browser/virtio-net-wasm.js";
import { GuestDriver, buildFrame, decodeFrame, payload } from "/dist/browser/testing.js";
try {
  await loadCore("/build/core.wasm");
  const sw = new Switch();
  const ws = new WebSocket(new URLSearchParams(location.search).get("relay"));
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  const link = new WebSocketPort("relay", sw, ws);
  const { port, guest, macBytes } = pageGuest({ VirtioNetDevice, DevicePort, GuestDriver, BackendKind, Feature, featureMask }, new WasmSpace(), sw, "52:54:00:00:0c:02", 5);
  guest.send(discover(buildFrame, macBytes));
  port.pumpTx();
  const got = [];
  for (let i = 0; i < 200 && !got.some((d) => d.ip?.sport === 67); i++) {
    await new Promise((r) => setTimeout(r, 10));
    port.pumpRx();
    got.push(...guest.receiveAll().map((r) => decodeFrame(r.frame)));
  }
  const offer = got.find((d) => d.ip?.sport === 67);
  window.result = { offer: offer ? Array.from(offer.ip.payload.subarray(16, 20)).join(".") : null, sent: link.counters.sent, received: link.counters.received };
} catch (e) {
  window.result = { error: String(e && e.stack || e) };
  console.error(e);
}
</script>`;

const TYPES: Record<string, string> = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".map": "application/json" };

describe.skipIf(why !== "")(`the engine in Chromium${why ? ` (skipped: ${why})` : ""}`, () => {
  let server: Server;
  let base = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path === "/" || path === "/linked") { res.writeHead(200, { "content-type": "text/html" }); res.end(path === "/" ? PAGE : LINKED_PAGE); return; }
      const file = normalize(join(ROOT, path));
      if (!file.startsWith(ROOT) || !/^\/(dist\/browser|build)\//.test(path) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => server?.close());

  it("loads the bundle, gets a DHCP offer and a ping reply from the gateway, captures to a Blob, logs no error", async () => {
    await withPage(async (page, errors) => {
      await page.goto(base);
      await page.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 20_000 });
      const result = await page.evaluate(() => (window as unknown as { result: Record<string, unknown> }).result);
      expect(result.error).toBeUndefined();
      expect(result.offer).toMatch(/^198\.51\.100\.1\d\d$/);
      expect(result.gatewayReplied).toBe(true);
      expect(result.txPackets).toBe(2);
      expect(result.rxPackets).toBe(2);
      expect(result.pcapFrames).toBe(4);
      expect(result.pcapBytes).toBeGreaterThan(24 + 4 * 16);
      expect(errors, errors.join("\n")).toEqual([]);
    });
  }, 60_000);

  it("a page guest joins the host process's network through the relay (WebSocket) and gets its DHCP offer", async () => {
    const relay = await startRelay("127.0.0.1", 0, embeddedNetwork({ subnet: "198.51.100.0" }));
    try {
      await withPage(async (page, errors) => {
        await page.goto(`${base}linked?relay=${encodeURIComponent(`ws://127.0.0.1:${relay.port}/`)}`);
        await page.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 20_000 });
        const result = await page.evaluate(() => (window as unknown as { result: Record<string, unknown> }).result);
        expect(result.error).toBeUndefined();
        expect(result.offer).toMatch(/^198\.51\.100\.1\d\d$/);
        expect(relay.network.gateway.counters.dhcpOffers).toBe(1);
        expect(errors, errors.join("\n")).toEqual([]);
      });
    } finally {
      await relay.close();
      await relay.network.close();
    }
  }, 60_000);
});
