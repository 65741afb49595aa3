/**
 * The demo page (`virtio-net-wasm web`): two Debian i386 guests in v86, in this page, their
 * eth0 on this engine (V86VirtioNet) on a local network with the gateway, also in the page.
 * Shows what a user wants to see, live: negotiated features, DHCP leases, pings, the switch's
 * and gateway's counters, and frames/s over time. With `?relay=ws://...` the page's switch
 * also joins a relay's network (virtio-net-wasm relay) over a WebSocket.
 *
 * State for tests and tools is on `window.vnw`.
 */
import {
  captureV86Exports, Feature, featureList, featureMask, loadCore, localNetwork, QueueIndex, Switch, V86VirtioNet, WebSocketPort,
  type Gateway, type V86Like, type V86WasmExports,
} from "../browser.js";

/** What the device offers with ?offloads=off: a modern device with no checksum or segmentation offload. */
const NO_OFFLOADS = featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS, Feature.EVENT_IDX, Feature.INDIRECT_DESC);

/** The page's network: its own switch and gateway, or (linked to a relay) a switch whose gateway is the relay's. */
interface PageNetwork { sw: Switch; gateway: Gateway | null }

interface GuestView { name: string; lines: string[]; markers: Record<string, string>; features: string[]; net: V86VirtioNet | null }
interface PageState { guests: GuestView[]; done: boolean; error: string | null; samples: number[] }

const state: PageState = { guests: [], done: false, error: null, samples: [] };
(globalThis as unknown as { vnw: PageState }).vnw = state;
const $ = (id: string) => document.getElementById(id)!;

type V86Ctor = new (o: Record<string, unknown>) => V86Like & {
  add_listener(ev: string, fn: (...a: never[]) => void): void;
  run(): void;
};

async function boot(V86: V86Ctor, wasm: ArrayBuffer, role: "a" | "b", net: PageNetwork): Promise<GuestView> {
  const view: GuestView = { name: role.toUpperCase(), lines: [], markers: {}, features: [], net: null };
  const hook = captureV86Exports(wasm);
  const emulator = new V86({
    bios: { url: "/bios/bios.bin" }, vga_bios: { url: "/bios/vgabios-stdvga.bin" },
    bzimage: { url: "/guest/vmlinuz" }, initrd: { url: `/guest/initrd-${role}` },
    cmdline: "console=ttyS0 cryptomgr.notests noisapnp pnpbios=off quiet panic=-1",
    memory_size: 128 << 20, autostart: false, disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    net_device: { type: "virtio", relay_url: "" }, wasm_fn: hook.wasm_fn,
  });
  await new Promise<void>((r) => emulator.add_listener("emulator-loaded", () => r()));
  const exports: V86WasmExports = await hook.exports;
  // ?offloads=off: the device offers no checksum or segmentation offload (for comparisons).
  const features = new URLSearchParams(location.search).get("offloads") === "off" ? NO_OFFLOADS : undefined;
  view.net = new V86VirtioNet(emulator, exports, { network: net.sw, name: `v86 guest ${view.name}`, features });
  let partial = "";
  emulator.add_listener("serial0-output-byte", (b: number) => {
    const c = String.fromCharCode(b);
    if (c !== "\n") { partial += c; return; }
    const line = partial.replace(/\r$/, "");
    partial = "";
    view.lines.push(line);
    const m = line.match(/VNW (\S+)\s*(.*)$/);
    if (m) view.markers[m[1]] = m[2];
  });
  emulator.run();
  return view;
}

function render(net: PageNetwork, link: WebSocketPort | null): void {
  const rows = state.guests.map((g) => {
    g.features = g.net && g.net.dev.negotiatedFeatures ? featureList(g.net.dev.negotiatedFeatures) : [];
    const m = g.markers;
    return `<tr><td>${g.name}</td><td>${m.lease ?? "…"}</td><td>${m.gwping ?? "…"}</td><td>${m.peer ?? m.alias ?? "…"}</td><td class="f">${g.features.join(" ")}</td></tr>`;
  });
  $("guests").innerHTML = `<tr><th>guest</th><th>DHCP lease</th><th>ping gateway</th><th>peer</th><th>negotiated features</th></tr>${rows.join("")}`;
  const c: Record<string, number> = { ...net.sw.counters, ...Object.fromEntries(Object.entries(net.gateway?.counters ?? {}).map(([k, v]) => [`gateway.${k}`, v])) };
  if (link) Object.assign(c, Object.fromEntries(Object.entries(link.counters).map(([k, v]) => [`relay.${k}`, v])));
  $("counters").textContent = Object.entries(c).map(([k, v]) => `${k} ${v}`).join("   ");
  const canvas = $("chart") as HTMLCanvasElement;
  const g = canvas.getContext("2d")!;
  g.clearRect(0, 0, canvas.width, canvas.height);
  const max = Math.max(10, ...state.samples);
  g.beginPath();
  state.samples.forEach((v, i) => {
    const x = (i / 119) * canvas.width;
    const y = canvas.height - (v / max) * (canvas.height - 4);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  $("rate").textContent = `${state.samples.at(-1) ?? 0} frames/s (max ${max})`;
}

async function main(): Promise<void> {
  await loadCore("/build/core.wasm");
  const params = new URLSearchParams(location.search);
  const relayUrl = params.get("relay");
  // Linked to a relay, the relay's gateway serves this page's guests too: one DHCP server.
  const net: PageNetwork = relayUrl ? { sw: new Switch(), gateway: null } : localNetwork({ subnet: "10.215.0.0" });
  let link: WebSocketPort | null = null;
  if (relayUrl) {
    const ws = new WebSocket(relayUrl);
    await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error(`cannot reach the relay at ${relayUrl}`)); });
    link = new WebSocketPort("relay", net.sw, ws);
  }
  // v86 from its npm package, served as is.
  const v86Module = "/v86/libv86.mjs";
  const { V86 } = await import(v86Module) as { V86: V86Ctor };
  const wasm = await (await fetch("/v86/v86.wasm")).arrayBuffer();
  state.guests.push(await boot(V86, wasm, "a", net));
  if (params.get("guests") !== "1") state.guests.push(await boot(V86, wasm, "b", net));
  let last = 0;
  setInterval(() => {
    const total = state.guests.reduce((a, g) => a + (g.net ? g.net.dev.metrics(QueueIndex.RX).packets + g.net.dev.metrics(QueueIndex.TX).packets : 0), 0);
    state.samples.push((total - last) * 2);
    if (state.samples.length > 120) state.samples.shift();
    last = total;
    state.done = state.guests.every((g) => "done" in g.markers);
    render(net, link);
  }, 500);
}

main().catch((e: Error) => {
  state.error = String(e.stack ?? e);
  $("error").textContent = state.error;
  console.error(e);
});
