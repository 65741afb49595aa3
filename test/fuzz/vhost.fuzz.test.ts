/**
 * Fuzzing the vhost-user back-end from a hostile front-end: the real CLI in a child process (the
 * embedded network, no root), and sessions of random messages, most of them shaped like QEMU's
 * (so the back-end gets deep into its states) with something wrong: truncated or oversized
 * messages, unknown requests, wrong fd counts, memory tables with 0, 9 or 300 regions,
 * overlapping regions, mmap offsets past the end of the fd, kick and call fds that are pipes or
 * files, ring addresses outside memory, any message in any state, disconnects mid-message.
 * Valid sessions are interleaved and must be served (the guest reaches the gateway). At the end:
 * the process is alive and holds no more fds than before. Seeded; prints sessions/s.
 * `npm run fuzz -- --cases N` runs N/20 sessions (VNW_FUZZ_CASES); the suite runs a short one.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Feature } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import * as libc from "../../host/runtime/libc.js";
import { rng } from "../../host/driver/guest-driver.js";
import {
  encodeMessage, FLAG_NEED_REPLY, FLAG_VERSION, memTablePayload, Req, singleRegionPayload, u64Payload, vringAddrPayload,
  vringStatePayload, type MemRegion,
} from "../../host/vhost-user/protocol.js";
import { Session } from "../integration/session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const SESSIONS = Math.max(20, Math.floor(Number(process.env.VNW_FUZZ_CASES ?? 2000) / 20));
const SEED = Number(process.env.VNW_FUZZ_SEED ?? 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.CSUM, Feature.GUEST_CSUM);

/** One hostile session: connect, send a random run of messages, leave (sometimes mid-message). */
async function hostileSession(socket: string, seed: number): Promise<void> {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const fd = libc.unixConnect(socket, true);
  const mine: number[] = [];
  const keep = (x: number) => { mine.push(x); return x; };
  const memfd = keep(libc.memfdCreate("fuzz"));
  const size = pick([0, 4096, 1 << 20, 4 << 20]);
  libc.ftruncate(memfd, size);
  const region = (): MemRegion => ({
    gpa: BigInt(pick([0, 0x1000, 0xa0000, 2 ** 40])), size: BigInt(pick([0, 4096, 1 << 20, 8 << 20, 0x1001])),
    qva: BigInt(pick([0x7f00_0000_0000, 0, 2 ** 47])), mmapOffset: BigInt(pick([0, 4096, 1 << 20, 16 << 20, 3])),
  });
  const badFd = () => {
    const k = int(0, 3);
    if (k === 0) return keep(libc.eventfd());
    if (k === 1) { const [a, b] = libc.socketpair(libc.AF_UNIX, libc.SOCK_STREAM); keep(b); return keep(a); }
    if (k === 2) return keep(libc.memfdCreate("notev"));
    return memfd;
  };
  const ring = () => int(0, 3);
  const drain = () => { const buf = new Uint8Array(4096); while (libc.read(fd, buf) > 0); };
  try {
    for (let n = int(1, 40); n > 0; n--) {
      let req: number;
      let payload: Uint8Array = new Uint8Array(0);
      let fds: number[] = [];
      switch (int(0, 17)) {
        case 0: req = Req.GET_FEATURES; break;
        case 1: req = Req.SET_FEATURES; payload = u64Payload(BigInt(int(0, 2 ** 31)) | (BigInt(int(0, 3)) << 32n) | (1n << 30n)); break;
        case 2: req = Req.SET_PROTOCOL_FEATURES; payload = u64Payload(BigInt(int(0, 0x1ffff))); break;
        case 3: req = Req.SET_MEM_TABLE; { const k = pick([0, 1, 2, 9, 300]); const regs = Array.from({ length: Math.min(k, 8) }, region); payload = k > 8 ? new Uint8Array(8 + 32 * k).map(() => int(0, 255)) : memTablePayload(regs); fds = Array.from({ length: pick([regs.length, 0, regs.length + 1]) }, () => memfd); } break;
        case 4: req = Req.ADD_MEM_REG; payload = singleRegionPayload(region()); fds = pick([[memfd], [], [memfd, memfd]]); break;
        case 5: req = Req.REM_MEM_REG; payload = singleRegionPayload(region()); break;
        case 6: req = Req.SET_VRING_NUM; payload = vringStatePayload(ring(), pick([0, 1, 3, 256, 32768, 65536])); break;
        case 7: req = Req.SET_VRING_ADDR; payload = vringAddrPayload({ index: ring(), flags: int(0, 1), desc: BigInt(pick([0x7f00_0000_0000, 0, 1, 2 ** 63])), used: 0x7f00_0000_1000n + BigInt(int(0, 3)), avail: 0x7f00_0000_2000n, log: 0n }); break;
        case 8: req = Req.SET_VRING_BASE; payload = vringStatePayload(ring(), int(0, 70000)); break;
        case 9: req = Req.GET_VRING_BASE; payload = vringStatePayload(ring(), 0); break;
        case 10: req = pick([Req.SET_VRING_KICK, Req.SET_VRING_CALL, Req.SET_VRING_ERR]); payload = u64Payload(BigInt(ring() | (int(0, 4) === 0 ? 0x100 : 0))); fds = pick([[badFd()], [], [badFd(), badFd()]]); break;
        case 11: req = Req.SET_VRING_ENABLE; payload = vringStatePayload(ring(), int(0, 2)); break;
        case 12: req = pick([Req.SET_STATUS, Req.GET_STATUS, Req.RESET_OWNER, Req.RESET_DEVICE, Req.SET_OWNER]); payload = u64Payload(BigInt(pick([0, 1, 15, 0xff]))); break;
        case 13: req = int(0, 100); payload = new Uint8Array(int(0, 64)); break; // unknown or unexpected
        case 14: req = pick([Req.SET_LOG_BASE, Req.SET_LOG_FD, Req.GET_CONFIG, Req.SET_CONFIG]); fds = int(0, 1) ? [badFd()] : []; break;
        case 15: req = pick([Req.SET_FEATURES, Req.SET_VRING_NUM, Req.SET_MEM_TABLE]); payload = new Uint8Array(int(0, 7)); break; // truncated payloads
        case 16: { // a header announcing more than it sends, then gone
          const m = encodeMessage(pick([Req.SET_MEM_TABLE, Req.SET_VRING_KICK]), FLAG_VERSION, new Uint8Array(64));
          libc.sendWithFds(fd, m.subarray(0, int(1, m.length - 1)), int(0, 1) ? [badFd()] : []);
          return;
        }
        default: { // oversized or wrong-version header
          const h = encodeMessage(Req.GET_FEATURES, pick([0, 2, 3, FLAG_VERSION]));
          new DataView(h.buffer).setUint32(8, pick([4096, 0xffffffff, 300]), true);
          libc.sendWithFds(fd, h);
          return;
        }
      }
      const flags = FLAG_VERSION | (int(0, 3) === 0 ? FLAG_NEED_REPLY : 0);
      if (libc.sendWithFds(fd, encodeMessage(req, flags, payload), fds) < 0) return;
      if (int(0, 3) === 0) await sleep(1);
      drain();
    }
  } finally {
    await sleep(2);
    libc.close(fd);
    for (const x of new Set(mine)) libc.close(x);
  }
}

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("vhost-user fuzzing from a hostile front-end", () => {
  it(`${SESSIONS} hostile sessions from seed ${SEED}, valid ones between them: the back-end lives, serves, and leaks no fd`, async () => {
    const socket = `/tmp/vnw-fuzz-${process.pid}.sock`;
    let log = "";
    const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => { log = (log + d).slice(-20000); });
    child.stderr!.on("data", (d) => { log = (log + d).slice(-20000); });
    const exited = new Promise((res) => child.on("exit", res));
    try {
      for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
      const served = async (i: number) => {
        const s = new Session(FEATURES, { ramSize: 16 << 20, seed: i, ip4: [198, 51, 100, 40] });
        try {
          await s.start(socket, FEATURES, 64);
          s.stack.arpRequest([198, 51, 100, 1]);
          await s.stack.waitFor((x) => x.decoded.ethertype === 0x0806 && x.frame[21] === 2, 3000, `the gateway after hostile session ${i}`);
        } finally {
          await s.end();
        }
      };
      await served(-1);
      await sleep(100);
      const baseline = readdirSync(`/proc/${child.pid}/fd`).length;
      const t0 = performance.now();
      for (let i = 0; i < SESSIONS; i++) {
        await hostileSession(socket, SEED * 1_000_003 + i);
        if (child.exitCode !== null) throw new Error(`the back-end died after hostile session ${SEED * 1_000_003 + i}:\n${log}`);
        if (i % 25 === 24) await served(i);
      }
      const s = (performance.now() - t0) / 1000;
      console.log(`vhost-user fuzz: ${SESSIONS} hostile sessions in ${s.toFixed(1)} s (${(SESSIONS / s).toFixed(0)} sessions/s)`);
      await served(SESSIONS);
      await sleep(300);
      expect(child.exitCode).toBe(null);
      expect(readdirSync(`/proc/${child.pid}/fd`).length).toBeLessThanOrEqual(baseline);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  }, 3_600_000);
});
