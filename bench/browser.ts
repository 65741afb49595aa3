/**
 * The engine in a browser: the same Debian i386 guest in v86 pinging its gateway back to back
 * (busybox ping -A, 1000-byte payloads), once in Chromium (the `web` page, headless, through
 * playwright-core) and once in Node (the same adapter on an embedded network), alternating; and
 * TCP from a page's guest through the WebSocket relay to a guest in this process (4 MiB).
 * Needs Debian's chromium, playwright-core and the i386 guest.
 */
import { existsSync } from "node:fs";
import { startRelay } from "../host/cli/relay.js";
import { startWeb } from "../host/cli/web.js";
import { bootV86Guest, v86GuestAvailable } from "../host/guests/v86.js";
import { Feature } from "../assembly/abi.js";
import { featureMask } from "../host/device/features.js";
import { embeddedNetwork } from "../host/net/embedded-network.js";
import { table } from "./harness.js";
import { pingScript, PINGS } from "./v86.js";

const CHROMIUM = "/usr/bin/chromium";
const PING = pingScript("10.215.0");
const MIB = 4;

type Page = { goto(u: string): Promise<unknown>; evaluate<T>(f: () => T): Promise<T> };

/** Seconds between two markers of the page's first guest (polled every 50 ms). */
async function pageSpan(page: Page, from: string, to: string): Promise<{ s: number; value: string }> {
  const markers = () => page.evaluate(() => (window as unknown as { vnw?: { guests: { markers: Record<string, string> }[] } }).vnw?.guests[0]?.markers ?? {});
  let t0 = 0;
  for (let i = 0; i < 6000; i++) {
    const m = await markers();
    if (!t0 && from in m) t0 = performance.now();
    if (to in m) return { s: (performance.now() - (t0 || performance.now())) / 1000, value: m[to] };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the page's guest never printed ${to}`);
}

export async function browserBench(): Promise<void> {
  const g = v86GuestAvailable();
  let playwright: typeof import("playwright-core") | null = null;
  try { playwright = await import("playwright-core"); } catch { playwright = null; }
  const why = !existsSync(CHROMIUM) ? `no ${CHROMIUM}` : !playwright ? "playwright-core is not installed" : !g.ok ? g.reason : "";
  if (why) {
    console.log(`\nBrowser (Chromium) vs Node: skipped (${why})`);
    return;
  }
  const fps: Record<"chromium" | "node", number[]> = { chromium: [], node: [] };
  const web = await startWeb(0, "127.0.0.1", { scripts: { a: PING } });
  const browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    for (let round = 0; round < 2; round++) {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${web.port}/?guests=1`);
      const { s, value } = await pageSpan(page, "start", "end");
      fps.chromium.push((2 * Number(value.split(" ")[0])) / s);
      await page.close();
      const net = embeddedNetwork({ subnet: "10.215.0.0" });
      const guest = await bootV86Guest({ script: PING, network: net.sw, mode: "engine" });
      await guest.waitFor(/VNW start/, 150_000);
      const t0 = performance.now();
      const m = await guest.waitFor(/VNW end (\d+) packets received/, 150_000);
      fps.node.push((2 * Number(m[1])) / ((performance.now() - t0) / 1000));
      guest.stop();
    }
    const tcp = { on: await relayTcp(browser, true), off: await relayTcp(browser, false) };
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`\nThe v86 guest on this engine: Chromium ${(await browser.version())} (headless) vs Node ${process.version}; ping -A x${PINGS} (1000 B) to the gateway, 2 alternating rounds`);
    table([
      ["where", "frames/s (guest)", "vs Node"],
      ["Chromium page", mean(fps.chromium).toFixed(0), (mean(fps.chromium) / mean(fps.node)).toFixed(2)],
      ["Node", mean(fps.node).toFixed(0), "1.00"],
    ]);
    console.log(`TCP ${MIB} MiB from a v86 guest in Chromium through the WebSocket relay to a v86 guest in Node: `
      + `offloads on ${tcp.on.toFixed(1)} Mbit/s, off ${tcp.off.toFixed(1)} Mbit/s (on/off ${(tcp.on / tcp.off).toFixed(2)})`);
  } finally {
    await browser.close();
    await web.close();
  }
}

/** Mbit/s of 4 MiB by TCP from a page's guest through the relay to a guest in this process, both with or without offloads. */
async function relayTcp(browser: { newPage(): Promise<Page & { close(): Promise<void> }> }, offloads: boolean): Promise<number> {
  const none = featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS, Feature.EVENT_IDX, Feature.INDIRECT_DESC);
  const relay = await startRelay("127.0.0.1", 0, embeddedNetwork({ subnet: "10.215.0.0" }));
  const host = await bootV86Guest({
    network: relay.network.sw, mode: "engine", features: offloads ? undefined : none,
    script: `ip addr flush dev eth0\nip addr add 10.215.0.220/24 dev eth0\nnc -l -p 5000 > /tmp/r\necho "VNW received $(wc -c < /tmp/r)"`,
  });
  const sender = await startWeb(0, "127.0.0.1", {
    scripts: {
      a: `ip addr flush dev eth0\nip addr add 10.215.0.51/24 dev eth0\ndd if=/dev/zero of=/tmp/d bs=65536 count=${16 * MIB} 2>/dev/null
for i in $(seq 1 60); do ping -c 1 -W 1 10.215.0.220 >/dev/null && break; done
echo "VNW start"\nnc 10.215.0.220 5000 < /tmp/d\necho "VNW end"\necho "VNW done"`,
    },
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${sender.port}/?guests=1${offloads ? "" : "&offloads=off"}&relay=${encodeURIComponent(`ws://127.0.0.1:${relay.port}/`)}`);
  const { s } = await pageSpan(page, "start", "end");
  await host.waitFor(/VNW received/, 60_000);
  await page.close();
  host.stop();
  await sender.close();
  await relay.close();
  return (MIB * 8 * 1.048576) / s;
}

if (process.argv[1]?.endsWith("browser.js")) await browserBench();
