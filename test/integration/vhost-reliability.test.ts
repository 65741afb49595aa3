/**
 * The back-end against front-ends that reset, re-initialise in other orders, or misbehave: the
 * real CLI in a child process (embedded network, no root), the front-end model as QEMU or as a
 * hostile peer. A reset guest gets its network back; a bad message ends at most its session,
 * never the process; no fd is left behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { Feature } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import * as libc from "../../host/runtime/libc.js";
import { encodeMessage, FLAG_NEED_REPLY, FLAG_VERSION, Req, singleRegionPayload, u64Payload } from "../../host/vhost-user/protocol.js";
import { GuestDriver, rng } from "../../host/driver/guest-driver.js";
import { GuestStack } from "./guest-stack.js";
import { Session } from "./session.js";
import { VhostFrontend } from "./vhost-frontend.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.CSUM, Feature.GUEST_CSUM);
const GATEWAY = [198, 51, 100, 1];
let seq = 0;

interface Backend { child: ChildProcess; socket: string; log: () => string; exited: Promise<number | null> }
const running: Backend[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) {
    b.child.kill("SIGTERM");
    await b.exited;
  }
});

async function startBackend(): Promise<Backend> {
  const socket = `/tmp/vnw-rel-${process.pid}-${seq++}.sock`;
  let log = "";
  const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d) => { log += d; });
  child.stderr!.on("data", (d) => { log += d; });
  const b = { child, socket, log: () => log, exited: new Promise<number | null>((r) => child.on("exit", r)) };
  running.push(b);
  for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
  return b;
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** The guest ARPs the gateway and gets the answer: its network works. */
async function reachesGateway(s: Session): Promise<void> {
  s.stack.arpRequest(GATEWAY);
  await s.stack.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2 && r.frame[31] === 1, 3000, "the gateway's ARP reply");
}

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("vhost-user back-end: resets and hostile front-ends", () => {
  it("a guest that reboots twice (SET_STATUS 0, then kick fds before call fds) keeps its network", async () => {
    const be = await startBackend();
    const s = new Session(FEATURES, { ramSize: 16 << 20, memSlots: true, ip4: [198, 51, 100, 20] });
    try {
      await s.start(be.socket, FEATURES, 128);
      await reachesGateway(s);
      for (const seed of [31, 32]) {
        await s.reboot(FEATURES, 128, seed);
        await reachesGateway(s);
      }
      expect((be.log().match(/rings started/g) ?? []).length).toBeGreaterThanOrEqual(3);
    } finally {
      await s.end();
    }
  }, 30_000);

  it("comes up in any order a front-end sets it up in, also after a reset of any kind with traffic in flight", async () => {
    const be = await startBackend();
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 1 << 30 }), fc.boolean(), fc.integer({ min: 0, max: 2 }), async (seed, memSlots, resets) => {
      const random = rng(seed);
      const s = new Session(FEATURES, { ramSize: 16 << 20, memSlots, seed, ip4: [198, 51, 100, 22] });
      const orders: string[][] = [];
      try {
        await s.fe.connect(be.socket);
        await s.fe.handshake();
        for (let k = 0; k <= resets; k++) {
          // Reset with traffic in flight: frames on the TX ring the back-end may not have taken yet.
          if (k > 0) for (let n = 0; n < 20; n++) s.stack.arpRequest([198, 51, 100, 1]);
          s.paused = true;
          const reset = k > 0 ? [await s.fe.resetRandomly(random)] : [];
          // Each time a driver that lays out fresh rings, then the set-up in a random order.
          s.drv = new GuestDriver({ memory: s.fe.memory, regions: s.fe.regions }, s.fe, seed + k);
          s.stack = new GuestStack(s.drv, FEATURES, (q) => libc.eventfdSignal(s.fe.kickFds[q]), 32, s.stack.mac, s.stack.ip4);
          if (!s.drv.negotiate(FEATURES)) throw new Error("refused");
          s.drv.setupQueues(64);
          s.drv.start();
          orders.push([...reset, ...(await s.fe.startShuffled(random))]);
          s.paused = false;
          s.startPolling();
          s.stack.start();
          await reachesGateway(s).catch((e: Error) => { throw new Error(`${e.message} after ${JSON.stringify(orders)}`); });
        }
      } finally {
        await s.end();
      }
    }), { numRuns: 12 });
  }, 120_000);

  it("refuses what would fault or block it, closes every fd it was handed, and serves the next session", async () => {
    const be = await startBackend();
    const pid = be.child.pid!;
    const baseline = fdCount(pid);
    for (let round = 0; round < 5; round++) {
      const fe = new VhostFrontend({ ramSize: 4 << 20, memSlots: true });
      try {
        await fe.connect(be.socket);
        await fe.handshake();
        // A region whose mmap offset runs past the end of its memfd: a SIGBUS at the first ring access.
        const memfd = libc.memfdCreate("short");
        libc.ftruncate(memfd, 1 << 20);
        await expect(fe.request(Req.ADD_MEM_REG, singleRegionPayload({ gpa: 0n, size: 2n << 20n, qva: 0x7f00_0000_0000n, mmapOffset: 0n }), [memfd])).rejects.toThrow(/refused/);
        libc.close(memfd);
        // A kick "eventfd" that is a pipe: refused (it could block the data path).
        const pipe = libc.socketpair(libc.AF_UNIX, libc.SOCK_STREAM);
        await expect(fe.request(Req.SET_VRING_KICK, u64Payload(0n), [pipe[0]])).rejects.toThrow(/refused/);
        // fds on messages that take none are closed, not kept.
        await fe.request(Req.GET_FEATURES, undefined, [pipe[1], pipe[0]], true);
        for (const fd of pipe) libc.close(fd);
      } finally {
        fe.close();
      }
      // A header announcing a payload, with fds, and then the front-end goes away.
      const raw = libc.unixConnect(be.socket, true);
      const efd = libc.eventfd();
      libc.sendWithFds(raw, encodeMessage(Req.SET_VRING_CALL, FLAG_VERSION, u64Payload(0n)).subarray(0, 14), [efd]);
      libc.close(efd);
      await sleep(50);
      libc.close(raw);
      // An unknown request that wants a reply without REPLY_ACK: the session ends (nothing would answer it).
      const raw2 = libc.unixConnect(be.socket, true);
      libc.sendWithFds(raw2, encodeMessage(999, FLAG_VERSION | FLAG_NEED_REPLY));
      const buf = new Uint8Array(16);
      let closed = false;
      for (let i = 0; i < 100 && !closed; i++) {
        await sleep(20);
        closed = libc.read(raw2, buf) === 0;
      }
      libc.close(raw2);
      expect(closed).toBe(true);
    }
    await sleep(200);
    expect(be.child.exitCode).toBe(null);
    expect(fdCount(pid)).toBe(baseline);
    // Still serving.
    const s = new Session(FEATURES, { ramSize: 16 << 20, ip4: [198, 51, 100, 21] });
    try {
      await s.start(be.socket, FEATURES, 128);
      await reachesGateway(s);
    } finally {
      await s.end();
    }
  }, 60_000);
});
