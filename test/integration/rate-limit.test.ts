/**
 * Rate limits in the real back-end: the `vhost-user` CLI with a tap and `--tx-rate`, its data
 * path in its Worker, a guest (the front-end model) queueing frames as fast as its ring takes
 * them. The host's kernel counts what arrives on the tap: every frame the guest queued arrives
 * (backpressure, no drops), and no faster than the limit (plus the bucket's initial fill).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import * as libc from "../../host/runtime/libc.js";
import { Netns, netTestsAvailable } from "../support/netns.js";
import { Session } from "./session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const avail = netTestsAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.INDIRECT_DESC);
const RATE = 1_000_000; // bytes/s: --tx-rate 8Mbit

describe.skipIf(!avail.ok || !existsSync(cli))(`rate limits in the vhost-user back-end${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  let ns: Netns;
  let backend: ChildProcess;
  let log = "";
  let session: Session;
  const socket = `/tmp/vnw-rate-${process.pid}.sock`;
  const tap = Netns.tapName();

  beforeAll(async () => {
    ns = Netns.create();
    backend = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--tap", tap, "--tx-rate", "8Mbit"], { stdio: ["ignore", "pipe", "pipe"] });
    backend.stdout!.on("data", (d) => { log += d; });
    backend.stderr!.on("data", (d) => { log += d; });
    for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
    ns.adopt(tap);
    ns.hostSide(tap, "52:54:00:12:34:56");
    session = new Session(FEATURES, {});
    await session.start(socket, FEATURES, 256);
    for (let i = 0; i < 100 && !log.includes("rings started"); i++) await sleep(20);
  }, 20_000);

  afterAll(async () => {
    await session?.end();
    backend?.kill("SIGTERM");
    ns?.destroy();
  });

  const counter = (k: string) => Number(ns.exec(["cat", `/sys/class/net/${tap}/statistics/${k}`]).trim());

  it("every frame the guest queued reaches the kernel, no faster than the limit", async () => {
    const N = 2500;
    const frame = buildFrame({ ip: 4, l4: "udp", payload: payload(1000), dst: [192, 0, 2, 1], dport: 9, dstMac: ns.mac(tap) }).frame;
    const packets0 = counter("rx_packets");
    const bytes0 = counter("rx_bytes");
    const t0 = performance.now();
    let queued = 0;
    while (queued < N) {
      while (queued < N && session.drv.freeDescriptors(QueueIndex.TX) > 2) {
        session.drv.send(frame);
        queued++;
      }
      libc.eventfdSignal(session.fe.kickFds[QueueIndex.TX]);
      session.drv.takeUsed(QueueIndex.TX);
      await sleep(2);
    }
    for (let i = 0; i < 1000 && counter("rx_packets") - packets0 < N; i++) {
      session.drv.takeUsed(QueueIndex.TX);
      await sleep(10);
    }
    const seconds = (performance.now() - t0) / 1000;
    const packets = counter("rx_packets") - packets0;
    const bytes = counter("rx_bytes") - bytes0;
    expect(packets).toBe(N);
    // The bucket starts full (100 ms worth): at most the rate over the time, plus that, plus 5%.
    expect(bytes).toBeLessThanOrEqual(1.05 * (RATE * seconds + RATE / 10));
    // And it did not stall: near the limit (how near depends on this machine's load).
    expect(bytes / seconds).toBeGreaterThan(0.7 * RATE);
  }, 30_000);
});

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("rate limits on the embedded network (no tap)", () => {
  it("a guest limited to 100 frames/s gets every echo answered, no sooner than the limit allows", async () => {
    const socket = `/tmp/vnw-rate-emb-${process.pid}.sock`;
    const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", "--no-uplink", "--tx-rate", "ops=100"], { stdio: "ignore" });
    const session = new Session(FEATURES, { ip4: [198, 51, 100, 30] });
    try {
      for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
      await session.start(socket, FEATURES, 256);
      const N = 150;
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        // The limit holds frames on the ring: wait for room as a driver would.
        while (session.drv.freeDescriptors(QueueIndex.TX) < 4) {
          await sleep(5);
          session.drv.takeUsed(QueueIndex.TX);
        }
        session.stack.send({ ip: 4, l4: "icmp", payload: payload(100), src: [198, 51, 100, 30], dst: [198, 51, 100, 1], icmpSeq: i + 1, dstMac: new Uint8Array(6).fill(0xff) });
      }
      const replies = () => session.stack.received.filter((r) => r.decoded.ip?.icmpType === 0).length;
      for (let i = 0; i < 500 && replies() < N; i++) await sleep(10);
      const seconds = (performance.now() - t0) / 1000;
      expect(replies()).toBe(N);
      // 100 frames/s with a bucket of 10 to start: at least (150 - 10) / 100 s.
      expect(seconds).toBeGreaterThan(1.3);
    } finally {
      await session.end();
      child.kill("SIGTERM");
    }
  }, 30_000);
});
