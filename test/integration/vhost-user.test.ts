/**
 * The vhost-user back-end end to end without QEMU: the real CLI (`virtio-net-wasm vhost-user`)
 * in a child process, a front-end model speaking the protocol as QEMU 7.2 does (guest RAM in a
 * memfd mapped on both sides), the driver model and guest stack as the guest, and a network
 * namespace's kernel on the tap as the judge. Also: sessions ending (stop, disconnect,
 * garbage) and the next one being served, and a clean exit on SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import * as libc from "../../host/runtime/libc.js";
import { payload } from "../../host/driver/frames.js";
import { HEADER_SIZE } from "../../host/vhost-user/protocol.js";
import { GUEST4, GUEST6, HOST4, HOST6, type Received } from "./guest-stack.js";
import { Netns, netTestsAvailable } from "../support/netns.js";
import { VhostFrontend } from "./vhost-frontend.js";
import { Session } from "./session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const helper = fileURLToPath(new URL("./host-helper.mjs", import.meta.url));
const avail = netTestsAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const GUEST_FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.INDIRECT_DESC, Feature.MTU);
const OFFLOAD = featureMask(Feature.CSUM, Feature.GUEST_CSUM);

class Backend {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on("data", (d) => this.output.push(String(d)));
    child.stderr!.on("data", (d) => this.output.push(String(d)));
    this.exited = new Promise((r) => child.on("exit", (code) => r(code)));
  }
  get log(): string { return this.output.join(""); }
}

function startBackend(socket: string, tap: string, extra: string[] = []): Backend {
  return new Backend(spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--tap", tap, "--log-level", "debug", ...extra], { stdio: ["ignore", "pipe", "pipe"] }));
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const isUdpTo = (port: number) => (r: Received) => r.decoded.ip?.proto === 17 && r.decoded.ip.dport === port;

describe.skipIf(!avail.ok || !existsSync(cli))(`vhost-user back-end${avail.ok ? (existsSync(cli) ? "" : " (skipped: run npm run build first)") : ` (skipped: ${avail.reason})`}`, () => {
  describe.each([
    ["guest with checksum offload, SET_MEM_TABLE with a hole", OFFLOAD, { hole: [0xa0000, 0xc0000] as [number, number] }],
    ["guest without offload, ADD_MEM_REG (CONFIGURE_MEM_SLOTS)", 0n, { memSlots: true }],
  ])("%s", (_name, offload, feOpts) => {
    const features = GUEST_FEATURES | offload;
    let ns: Netns;
    let backend: Backend;
    let session: Session;
    const socket = `/tmp/vnw-test-${process.pid}-${Math.random().toString(36).slice(2)}.sock`;
    const tap = Netns.tapName();

    beforeAll(async () => {
      ns = Netns.create();
      backend = startBackend(socket, tap);
      await waitFor(() => existsSync(socket), "the back-end's socket");
      ns.adopt(tap);
      ns.hostSide(tap, "52:54:00:12:34:56");
      session = new Session(features, feOpts);
      const offered = await session.start(socket, features);
      expect(offered & features).toBe(features);
      session.stack.hostMac = ns.mac(tap);
      await waitFor(() => backend.log.includes("rings started"), "rings to start");
    }, 20_000);

    afterAll(async () => {
      await session?.end().catch(() => {});
      backend?.child.kill("SIGKILL");
      ns?.destroy();
    });

    it("ping both ways through the back-end", async () => {
      session.stack.arpRequest(HOST4);
      session.stack.send({ ip: 4, l4: "icmp", src: GUEST4, dst: HOST4, payload: payload(56) });
      await session.stack.waitFor((r) => r.decoded.ip?.proto === 1 && r.decoded.ip.icmpType === 0, 3000, "echo reply");
      await ns.run(["ping", "-c", "2", "-W", "2", "192.0.2.2"]);
      await ns.run(["ping", "-6", "-c", "2", "-W", "2", "2001:db8::2"]);
    });

    it("UDP both ways over IPv4 and IPv6 with the bytes intact", async () => {
      for (const [ip, host, guest] of [[4, HOST4, GUEST4], [6, HOST6, GUEST6]] as const) {
        const data = payload(1300, ip);
        const text = ip === 4 ? "192.0.2.1" : "2001:db8::1";
        const out = ns.run(["node", helper, "udp-recv", text, "5400", "1"]);
        await sleep(300);
        session.stack.send({ ip, l4: "udp", src: guest, dst: host, dport: 5400, payload: data });
        expect(JSON.parse(await out)).toEqual([hex(data)]);
        await ns.run(["node", helper, "udp-send", ip === 4 ? "192.0.2.2" : "2001:db8::2", String(6400 + ip), hex(data)]);
        const r = await session.stack.waitFor(isUdpTo(6400 + ip), 3000, "datagram");
        expect(hex(r.decoded.ip!.payload)).toBe(hex(data));
        expect(r.partial).toBe(offload !== 0n);
      }
    });

    it("no checksum errors anywhere", () => {
      expect(session.stack.bad).toEqual([]);
      expect(Object.values(ns.csumErrors()).every((v) => v === 0)).toBe(true);
    });

    it("GET_VRING_BASE stops the rings and reports where they stopped; the next session is served", async () => {
      const bases = await session.fe.stop();
      expect(bases[QueueIndex.RX]).toBe(session.drv.queues[QueueIndex.RX].availIdx - 64);
      expect(bases[QueueIndex.TX]).toBe(session.drv.queues[QueueIndex.TX].availIdx);
      await session.end();
      await waitFor(() => backend.log.includes("front-end session ended"), "the session to end");
      // A new front-end (a rebooted guest, a restarted QEMU) gets a fresh device.
      session = new Session(features, feOpts);
      await session.start(socket, features);
      session.stack.hostMac = ns.mac(tap);
      await ns.run(["ping", "-c", "1", "-W", "2", "192.0.2.2"]);
    });

    it("a front-end that sends garbage loses its session, not the back-end", async () => {
      // The back-end serves one front-end at a time: end the current one first.
      await session.end();
      const bad = new VhostFrontend({ ramSize: 1 << 20 });
      await waitFor(() => (backend.log.match(/front-end session ended/g) ?? []).length >= 2, "the session to end");
      await bad.connect(socket);
      const garbage = new Uint8Array(HEADER_SIZE);
      garbage.fill(0xee);
      bad.sendRaw(garbage);
      await waitFor(() => /front-end session ended: protocol version/.test(backend.log), "the garbage session to be refused");
      bad.close();
      session = new Session(features, feOpts);
      await session.start(socket, features);
      await ns.run(["ping", "-c", "1", "-W", "2", "192.0.2.2"]);
    });

    it("exits cleanly on SIGTERM", async () => {
      await session.end();
      backend.child.kill("SIGTERM");
      expect(await backend.exited).toBe(0);
      expect(existsSync(socket)).toBe(false);
    });
  });
});

describe.skipIf(!avail.ok || !existsSync(cli))("vhost-user back-end in --client mode", () => {
  it("connects to the front-end's socket, and reconnects after the front-end goes away", async () => {
    const ns = Netns.create();
    const socket = `/tmp/vnw-client-${process.pid}.sock`;
    const listenFd = libc.unixListen(socket);
    const tap = Netns.tapName();
    const backend = startBackend(socket, tap, ["--client"]);
    let session: Session | undefined;
    try {
      await waitFor(() => backend.log.includes(`tap ${tap}`), "the back-end to open its tap");
      ns.adopt(tap);
      ns.hostSide(tap);
      for (const round of [1, 2]) {
        session = new Session(GUEST_FEATURES | OFFLOAD);
        await session.start(listenFd, GUEST_FEATURES | OFFLOAD);
        await ns.run(["ping", "-c", "1", "-W", "2", "192.0.2.2"]);
        await session.end();
        await waitFor(() => (backend.log.match(/front-end session ended/g) ?? []).length >= round, `session ${round} to end`);
      }
    } finally {
      await session?.end();
      backend.child.kill("SIGTERM");
      expect(await backend.exited).toBe(0);
      libc.close(listenFd);
      libc.unlink(socket);
      ns.destroy();
    }
  }, 30_000);
});
