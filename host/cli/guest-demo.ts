/**
 * The main demo: two real Linux guests under QEMU on the embedded network, served by this
 * engine over vhost-user in this process. Sets up first if needed with the project's one
 * set-up script (scripts/install-deps.sh demo: as root on Debian it installs QEMU and what
 * builds the guest image, saying which and why, then builds the image). Shows the negotiated
 * features, the guests' DHCP leases, a ping to the gateway, a TCP transfer between the guests
 * checked by sha256, a page fetched from an HTTP server on the host's loopback through the
 * uplink (libslirp, at the gateway's address), and the switch's counters: how many checksums
 * nobody had to compute.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { boot, GUEST_DIR, guestAvailable, PACKAGE_ROOT, type Guest } from "../guests/qemu.js";
import { dhcpScript } from "../guests/shell.js";
import { embeddedNetwork, VhostUserNetBackend } from "../vhost-user/backend.js";
import { QueueIndex } from "../../assembly/abi.js";
import { VhostUserServer } from "../vhost-user/server.js";

const SUBNET = "10.215.0";
const GUESTS = [
  { name: "A", mac: "52:54:00:00:00:0a", host: 10 },
  { name: "B", mac: "52:54:00:00:00:0b", host: 11 },
];

function run(cmd: string, args: string[], log: (s: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    // The set-up script's own lines ("demo set-up: ...", "[guest] ..."), not apt's or dpkg's.
    const lines = (d: Buffer) => String(d).split("\n").filter((l) => /^(\[guest\]|demo set-up)/.test(l)).forEach((l) => log(`      ${l}`));
    c.stdout.on("data", lines);
    c.stderr.on("data", () => {});
    c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}`))));
  });
}

/** Makes sure QEMU and a guest image are there (the shared set-up script); returns why not if they cannot be had. */
async function ensureGuest(log: (s: string) => void): Promise<string | null> {
  if (guestAvailable().ok) return null;
  const setup = join(PACKAGE_ROOT, "scripts", "install-deps.sh");
  if (existsSync(setup)) {
    log(`      setting up: ${setup} demo`);
    await run("bash", [setup, "demo"], log).catch((e: Error) => log(`      ${e.message}`));
  }
  const g = guestAvailable();
  return g.ok ? null : g.reason;
}

/** The guest's /test.sh: DHCP, then either listen for the transfer (peer null) or ping and send. */
function script(peer: number | null, httpPort: number): string {
  const udhcpc = dhcpScript(["router"]);
  if (peer === null) {
    return `${udhcpc}
wget -q -O /tmp/page http://${SUBNET}.1:${httpPort}/ && echo "VNW page $(sha256sum /tmp/page | cut -d' ' -f1) $(wc -c < /tmp/page)"
nc -l -p 5000 > /tmp/r
echo "VNW received $(sha256sum /tmp/r | cut -d' ' -f1) $(wc -c < /tmp/r)"`;
  }
  return `${udhcpc}
ping -c 3 -W 3 ${SUBNET}.1 >/dev/null && echo "VNW gwping ok"
dd if=/dev/urandom of=/tmp/d bs=65536 count=64 2>/dev/null
echo "VNW sent $(sha256sum /tmp/d | cut -d' ' -f1) $(wc -c < /tmp/d)"
for i in $(seq 1 40); do nc ${SUBNET}.${peer} 5000 < /tmp/d 2>/dev/null && break; sleep 0.5; done
echo "VNW sentdone"`;
}

/**
 * Runs the demo. Resolves true (all checks passed) or false, or with a reason string when
 * real guests cannot be booted here (the caller falls back to the in-process demo).
 */
export async function runGuestDemo(log: (s: string) => void): Promise<boolean | string> {
  log("virtio-net-wasm: two real Linux guests under QEMU on the embedded network, served by this engine");
  log("[1/4] guest image");
  const why = await ensureGuest(log);
  if (why) return why;
  log(`      ready: ${GUEST_DIR}`);

  log(`[2/4] vhost-user back-end in this process: two sockets on one embedded network ${SUBNET}.0/24`);
  // A page on the host's loopback, for a guest to fetch through the uplink.
  const page = Buffer.from(`<html><body>virtio-net-wasm demo page, served on the host's 127.0.0.1 at ${new Date().toISOString()}</body></html>\n`);
  const http = createServer((_req, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end(page); });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  const httpPort = (http.address() as AddressInfo).port;
  const network = embeddedNetwork({
    subnet: `${SUBNET}.0`, reservations: Object.fromEntries(GUESTS.map((g) => [g.mac, g.host])), uplink: {},
  });
  const sockets = GUESTS.map((g) => `/tmp/vnw-demo-${process.pid}-${g.name}.sock`);
  const negotiated: string[] = [];
  const backends = GUESTS.map((g, i) => new VhostUserNetBackend({
    network, portName: `guest ${g.name}`,
    log: (level, m) => {
      if (m.startsWith("negotiated")) negotiated[i] = m.replace(/^negotiated /, "");
      if (level === "error") log(`      guest ${g.name}: ${m}`);
    },
  }));
  const servers = backends.map((b, i) => new VhostUserServer(b, { socketPath: sockets[i] }));
  const serving = servers.map((s) => s.run());
  log(`      gateway ${network.gateway.ip.join(".")}, DHCP for ${GUESTS.map((g) => `${g.mac} → .${g.host}`).join(", ")}`);
  log(network.uplink
    ? `      uplink: libslirp; the host's loopback is at ${network.gateway.ip.join(".")} (an HTTP server on 127.0.0.1:${httpPort})`
    : `      no uplink (${network.uplinkError}); the guests reach each other and the gateway only`);

  log("[3/4] booting the guests (Debian 6.1 kernel under QEMU TCG; a few seconds)");
  let ok = true;
  const guests: Guest[] = [];
  try {
    for (let i = 0; i < 100 && !sockets.every(existsSync); i++) await new Promise((r) => setTimeout(r, 50));
    guests.push(boot({ socket: sockets[1], script: script(null, httpPort), mac: GUESTS[1].mac }));
    guests.push(boot({ socket: sockets[0], script: script(GUESTS[1].host, httpPort), mac: GUESTS[0].mac }));
    const [b, a] = guests;
    const leaseA = await a.waitFor(/VNW lease (.*)$/, 90_000);
    const leaseB = await b.waitFor(/VNW lease (.*)$/, 90_000);
    GUESTS.forEach((g, i) => log(`      guest ${g.name} negotiated: ${negotiated[i] ?? "?"}`));
    log(`      guest A: DHCP lease ${leaseA[1]}`);
    log(`      guest B: DHCP lease ${leaseB[1]}`);
    await a.waitFor(/VNW sentdone/, 90_000);
    const received = (await b.waitFor(/VNW received (.*)$/, 30_000))[1];
    const sent = a.markers().get("sent");
    const pinged = a.markers().has("gwping");
    log(`      guest A: ping ${SUBNET}.1 ${pinged ? "ok" : "FAILED"}`);
    log(`      guest A → guest B: ${Number(sent?.split(" ")[1] ?? 0) / 2 ** 20} MiB over TCP, sha256 ${sent && sent === received ? "matches on both ends" : `DIFFERS (sent ${sent}, received ${received})`}`);
    const fetched = b.markers().get("page");
    const want = `${createHash("sha256").update(page).digest("hex")} ${page.length}`;
    if (network.uplink) log(`      guest B → host's 127.0.0.1:${httpPort} through the gateway: ${fetched === want ? `fetched the page (${page.length} bytes, sha256 matches)` : `FAILED (${fetched ?? "no page"})`}`);
    ok = pinged && !!sent && sent === received && !/failed/.test(leaseA[1] + leaseB[1]) && (!network.uplink || fetched === want);
    await Promise.all(guests.map((g) => g.exited));
  } catch (e) {
    log(`      ${(e as Error).message}`);
    ok = false;
  } finally {
    for (const g of guests) g.child.kill("SIGKILL");
    for (const s of servers) s.stop();
    await Promise.all(serving);
    for (const b of backends) await b.close();
    await network.close();
    http.close();
  }
  const c = network.sw.counters;
  const gw = network.gateway.counters;
  // What the receiving devices saw covers both ways frames travel between the guests: the
  // core's own forwarding (fast path) and the switch's JS path.
  const rx = backends.map((b) => b.dev.metrics(QueueIndex.RX));
  const sum = (k: "csumOffloaded" | "gsoOffloaded" | "csumSoftware") => rx.reduce((a, m) => a + m[k], 0);
  const fast = backends.reduce((a, b) => a + (b.network?.port.fastForwarded ?? 0), 0);
  log("[4/4] what the network did");
  log(`      switch: ${fast} frames moved guest to guest by the core itself, ${c.forwarded} forwarded and ${c.flooded} flooded by the switch`);
  log(`      partial checksums handed between the guests untouched (computed by nobody): ${sum("csumOffloaded")}`);
  log(`      partial checksums finished for a port that could not take them: ${c.partialCompleted + sum("csumSoftware")}`);
  log(`      64 KiB TCP segments (TSO) carried whole between the guests, never split: ${sum("gsoOffloaded")}`);
  log(`      gateway: ${gw.dhcpAcks} DHCP leases, ${gw.arpReplies} ARP replies, ${gw.echoReplies} echo replies, ${gw.uplinked} frames to the uplink`);
  if (network.uplink) log(`      uplink: ${network.uplink.counters.toHost} frames to the host, ${network.uplink.counters.fromHost} back`);
  log(ok ? "done: everything checked out." : "done, with failures (see above).");
  return ok;
}

