/**
 * vhost-user dirty logging, as QEMU drives it for a live migration: the back-end offers
 * VHOST_F_LOG_ALL and LOG_SHMFD; SET_LOG_BASE hands it the log (a memfd, answered once mapped);
 * SET_FEATURES with LOG_ALL turns logging on. Then the guest pings the gateway and the pages the
 * device wrote are marked in the log the front-end maps: both used rings and RX data, nothing
 * beyond guest RAM; before LOG_ALL and after it is dropped, nothing. (The real CLI in a child
 * process, the front-end model as QEMU; no root.)
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { payload } from "../../host/driver/frames.js";
import * as libc from "../../host/runtime/libc.js";
import { F_LOG_ALL, F_PROTOCOL_FEATURES, Req, u64Payload } from "../../host/vhost-user/protocol.js";
import { Session } from "./session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX);
const RAM = 16 << 20;
const LOG_BYTES = RAM / 4096 / 8;
/** Where this side maps the log to read it: below the model's guest RAM (which starts at 1 MiB). */
const LOG_AT = 0x10000;

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("vhost-user dirty logging (live migration's log)", () => {
  it("marks the pages the device writes while the front-end asks, and only then", async () => {
    const socket = `/tmp/vnw-dirtylog-${process.pid}.sock`;
    let out = "";
    const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", "--no-uplink", "--log-level", "debug"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => { out += d; });
    child.stderr!.on("data", (d) => { out += d; });
    const exited = new Promise((r) => child.on("exit", r));
    const s = new Session(FEATURES, { ramSize: RAM, seed: 3, ip4: [198, 51, 100, 20] });
    const logFd = libc.memfdCreate("vnw-test-dirty-log");
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
      const offered = await s.start(socket, FEATURES, 128);
      expect((offered >> F_LOG_ALL) & 1n).toBe(1n);

      libc.ftruncate(logFd, 4096);
      const base = libc.memoryAddress(s.fe.memory);
      libc.mmap(base + BigInt(LOG_AT), 4096, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_FIXED, logFd, 0);
      const log = () => new Uint8Array(s.fe.memory.buffer, LOG_AT, LOG_BYTES);
      const pages = () => { const m = new Set<number>(); log().forEach((b, i) => { for (let k = 0; k < 8; k++) if (b & (1 << k)) m.add(i * 8 + k); }); return m; };
      const pingGateway = async (seq: number) => {
        s.stack.received.length = 0; // wait for this round's frames, not earlier ones
        s.stack.arpRequest([198, 51, 100, 1]);
        await s.stack.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2, 3000, "ARP reply");
        s.stack.send({ ip: 4, l4: "icmp", src: [198, 51, 100, 20], dst: [198, 51, 100, 1], payload: payload(56), icmpSeq: seq });
        await s.stack.waitFor((r) => r.decoded.ip?.proto === 1 && r.decoded.ip.icmpType === 0, 3000, "echo reply");
      };

      // The log given, but not asked for yet: nothing is marked.
      const size = new Uint8Array(16);
      new DataView(size.buffer).setBigUint64(0, BigInt(LOG_BYTES), true);
      const reply = await s.fe.request(Req.SET_LOG_BASE, size, [logFd], true);
      expect(reply!.length).toBe(0);
      await pingGateway(1);
      expect(pages().size).toBe(0);

      // LOG_ALL: the device marks what it writes. QEMU then gives each ring's used-ring log
      // address (VRING_F_LOG): the used ring's own guest-physical address is taken; another
      // (an IOVA) is refused, the ring unchanged.
      await s.fe.request(Req.SET_FEATURES, u64Payload(FEATURES | (1n << F_PROTOCOL_FEATURES) | (1n << F_LOG_ALL)));
      for (const q of [QueueIndex.RX, QueueIndex.TX]) await s.fe.sendRingAddr(q, true);
      await expect(s.fe.sendRingAddr(QueueIndex.RX, s.drv.queues[QueueIndex.RX].used + 0x10000n)).rejects.toThrow(/refused/);
      expect(out).toMatch(/refused used-ring log address/);
      await pingGateway(2);
      await pingGateway(3);
      await sleep(100);
      const m = pages();
      const gpaPage = (gpa: bigint) => Number(gpa / 4096n);
      for (const q of [QueueIndex.RX, QueueIndex.TX]) expect(m.has(gpaPage(s.drv.queues[q].used))).toBe(true);
      // RX data: pages besides the used rings.
      const rings = new Set([QueueIndex.RX, QueueIndex.TX].map((q) => gpaPage(s.drv.queues[q].used)));
      expect([...m].filter((p) => !rings.has(p)).length).toBeGreaterThan(0);
      expect(Math.max(...m)).toBeLessThan(RAM / 4096);
      expect(out).toMatch(/dirty log: \d+ bytes/);

      // LOG_ALL dropped (migration over or cancelled): nothing more.
      await s.fe.request(Req.SET_FEATURES, u64Payload(FEATURES | (1n << F_PROTOCOL_FEATURES)));
      log().fill(0);
      await pingGateway(4);
      await sleep(100);
      expect(pages().size).toBe(0);
      expect(s.stack.bad).toEqual([]);
    } finally {
      await s.end();
      libc.closeQuietly(logFd);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 30_000);
});
