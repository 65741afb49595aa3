/**
 * `virtio-net-wasm relay`: the host end of the WebSocket link. An embedded network (gateway,
 * and the uplink unless --no-uplink) that browser pages join over WebSockets, each connection a
 * switch port (WebSocketPort), and that QEMU guests join over vhost-user (--socket), so a page's
 * guest reaches the host process's guests, the host and, through the uplink, the world.
 */
import { WebSocketServer, type WebSocket } from "ws";
import { embeddedNetwork, type EmbeddedNetwork } from "../net/embedded-network.js";
import { WebSocketPort, type WebSocketLike } from "../net/websocket-port.js";
import { VhostUserNetBackend } from "../vhost-user/backend.js";
import { VhostUserServer } from "../vhost-user/server.js";
import { commandArgs } from "./command-args.js";
import { consoleLog, parseLogLevel } from "./logging.js";
import { parseNetworkFlags } from "./network-flags.js";

export const RELAY_HELP = `usage: virtio-net-wasm relay --listen ADDR:PORT [options]

Serves an embedded network over WebSockets: each connection is a switch port carrying frames
with their virtio_net_hdr (one binary message per frame, a 2-byte versioned header; see
host/net/websocket-port.ts). A page's switch (the browser build's WebSocketPort) joins it.

options:
  --listen ADDR:PORT   where to accept WebSocket connections (e.g. 127.0.0.1:8089)
  --net SUBNET         the network's /24 (default 10.215.0.0): gateway .1, DHCP .100-.199
  --no-uplink          no way out to the host and the world (libslirp)
  --forward SPEC       as for vhost-user: [tcp|udp]:[HOSTADDR:]HOSTPORT:GUESTADDR:GUESTPORT
  --socket PATH        also serve a QEMU guest on this vhost-user socket (repeatable)
  --log-level L        error, warn, info (default), debug`;

export interface Relay {
  network: EmbeddedNetwork;
  /** The port it listens on (useful with port 0). */
  port: number;
  links: Set<WebSocketPort>;
  /** Links closed because the far side sent something malformed. */
  readonly refused: number;
  close(): Promise<void>;
}

/** Starts a relay: a WebSocket server on `host:port` in front of `network`. */
export async function startRelay(host: string, port: number, network: EmbeddedNetwork, log: (s: string) => void = () => {}): Promise<Relay> {
  const wss = new WebSocketServer({ host, port, maxPayload: 70_000 });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", () => resolve());
    wss.once("error", reject);
  });
  const links = new Set<WebSocketPort>();
  let refused = 0;
  wss.on("connection", (ws: WebSocket, req) => {
    const name = `ws:${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const link = new WebSocketPort(name, network.sw, ws as unknown as WebSocketLike);
    links.add(link);
    log(`${name} joined`);
    ws.on("close", (code) => {
      links.delete(link);
      if (link.closedFor) refused++;
      log(`${name} left (${code}${link.closedFor ? `: refused ${link.closedFor}` : ""})`);
    });
    ws.on("error", () => {});
  });
  return {
    network, links, port: (wss.address() as { port: number }).port,
    get refused() { return refused; },
    close: async () => {
      for (const l of links) l.close();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

/** Runs the command; resolves with the exit code. */
export async function relayMain(args: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = commandArgs("relay", RELAY_HELP, args, {
    listen: { type: "string" }, net: { type: "string", default: "10.215.0.0" }, "no-uplink": { type: "boolean", default: false },
    forward: { type: "string", multiple: true }, socket: { type: "string", multiple: true },
    "log-level": { type: "string", default: "info" },
  }, out, err);
  if (typeof parsed === "number") return parsed;
  const { values, fail } = parsed;
  const m = values.listen?.match(/^(.+):(\d{1,5})$/);
  if (!m || Number(m[2]) > 65535) return fail(`--listen ADDR:PORT is required (e.g. 127.0.0.1:8089), got "${values.listen ?? ""}"`);
  let network: EmbeddedNetwork;
  let logTo: ReturnType<typeof consoleLog>;
  try {
    logTo = consoleLog(parseLogLevel(values["log-level"]!), out, err);
    const flags = parseNetworkFlags(values);
    network = embeddedNetwork({ subnet: flags.subnet, uplink: flags.uplink ? { forwards: flags.forwards, log: (m) => logTo("warn", m) } : false });
  } catch (e) {
    return fail((e as Error).message);
  }
  const log = (s: string) => logTo("info", s);
  if (network.uplinkError) logTo("warn", `no uplink: ${network.uplinkError}; the embedded network is an island`);
  let relay: Relay;
  try {
    relay = await startRelay(m[1], Number(m[2]), network, log);
  } catch (e) {
    await network.close();
    return fail(`--listen ${values.listen}: ${(e as Error).message}`);
  }
  const backends = (values.socket ?? []).map((s, i) => new VhostUserNetBackend({ network, portName: `guest${i}:${s}` }));
  const servers = backends.map((b, i) => new VhostUserServer(b, { socketPath: values.socket![i] }));
  log(`relay: ws://${m[1]}:${relay.port}/ → embedded network ${network.gateway.ip.join(".")}/24${network.uplink ? " with the uplink" : ""}${servers.length ? `, ${servers.length} vhost-user guest(s)` : ""}`);
  const serving = servers.map((s) => s.run());
  await new Promise<void>((r) => { process.once("SIGINT", () => r()); process.once("SIGTERM", () => r()); });
  log("shutting down");
  for (const s of servers) s.stop();
  await Promise.all(serving);
  await relay.close();
  for (const b of backends) await b.close();
  await network.close();
  return 0;
}
