/**
 * Soak: one back-end process serves session after session from the front-end model (connect,
 * negotiate, map memory, start the rings, move a frame, disconnect), on a tap (the data path in
 * its Worker) and on the embedded network. Its fds, mappings, threads and RSS are sampled: after
 * warm-up they stay flat. `npm run soak` runs it long (VNW_SOAK_SESSIONS, default 400 there);
 * the default suite runs a short version.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Feature } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { boot, guestAvailable } from "../../host/guests/qemu.js";
import { Netns, netTestsAvailable } from "../support/netns.js";
import { Session } from "./session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SESSIONS = Number(process.env.VNW_SOAK_SESSIONS ?? 40);
const WARMUP = 10;
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.CSUM, Feature.GUEST_CSUM);
const net = netTestsAvailable();
/** Real QEMU boots against one back-end (npm run soak: 20; the default suite: 3, warm after the second). */
const BOOTS = Number(process.env.VNW_SOAK_BOOTS ?? 3);
const qemu = guestAvailable();

interface Sample { fds: number; maps: number; threads: number; rssKb: number }
function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    maps: readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n").length,
    threads: readdirSync(`/proc/${pid}/task`).length,
    rssKb: Number(/VmRSS:\s+(\d+)/.exec(status)![1]),
  };
}

async function soak(mode: "tap" | "embedded"): Promise<{ warm: Sample; end: Sample }> {
  const socket = `/tmp/vnw-soak-${process.pid}-${mode}.sock`;
  const ns = mode === "tap" ? Netns.create() : null;
  const tap = Netns.tapName();
  const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", ...(ns ? ["--tap", tap] : [])], { stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  try {
    for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
    if (ns) {
      ns.adopt(tap);
      ns.hostSide(tap);
    }
    let warm: Sample | null = null;
    for (let i = 0; i < SESSIONS; i++) {
      const s = new Session(FEATURES, { ramSize: 16 << 20, seed: i, memSlots: i % 2 === 1, ip4: [198, 51, 100, 30] });
      try {
        await s.start(socket, FEATURES, 64);
        // One frame out through the data path (an ARP request to the gateway or the host side).
        s.stack.arpRequest(ns ? [192, 0, 2, 1] : [198, 51, 100, 1], ns ? [192, 0, 2, 2] : undefined);
        await s.stack.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2, 3000, `ARP reply in session ${i}`);
      } finally {
        await s.end();
      }
      await sleep(10);
      if (i === WARMUP - 1) warm = sample(child.pid!);
    }
    await sleep(200);
    return { warm: warm!, end: sample(child.pid!) };
  } finally {
    child.kill("SIGTERM");
    await exited;
    ns?.destroy();
  }
}

function expectFlat(r: { warm: Sample; end: Sample }): void {
  const msg = JSON.stringify(r);
  // Bounds after warm-up: not one fd or thread more; a few mappings of the allocator's churn;
  // RSS within 24 MB (V8's heap breathes).
  expect(r.end.fds, msg).toBeLessThanOrEqual(r.warm.fds);
  expect(r.end.threads, msg).toBeLessThanOrEqual(r.warm.threads);
  expect(r.end.maps, msg).toBeLessThanOrEqual(r.warm.maps + 12);
  expect(r.end.rssKb, msg).toBeLessThanOrEqual(r.warm.rssKb + 24 * 1024);
}

describe.skipIf(process.platform !== "linux" || !existsSync(cli))(`soak: ${SESSIONS} sessions against one back-end process`, () => {
  it("on the embedded network: fds, mappings, threads and RSS stay flat", async () => {
    expectFlat(await soak("embedded"));
  }, 60_000 + SESSIONS * 1000);

  it.skipIf(BOOTS === 0 || !net.ok || !qemu.ok)(`${BOOTS} real QEMU boots against one back-end on a tap${BOOTS === 0 ? " (skipped: VNW_SOAK_BOOTS=0)" : !net.ok ? ` (skipped: ${net.reason})` : !qemu.ok ? ` (skipped: ${qemu.reason})` : ""}: flat too`, async () => {
    const socket = `/tmp/vnw-soak-${process.pid}-qemu.sock`;
    const ns = Netns.create();
    const tap = Netns.tapName();
    const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--tap", tap], { stdio: "ignore" });
    const exited = new Promise((r) => child.on("exit", r));
    try {
      for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(25);
      ns.adopt(tap);
      ns.hostSide(tap);
      let warm: Sample | null = null;
      for (let i = 0; i < BOOTS; i++) {
        const g = boot({ socket, script: `ping -c 2 -W 3 192.0.2.1 >/dev/null && echo "VNW ping ok"` });
        await g.exited;
        expect(g.markers().has("ping"), `boot ${i}: ${g.lines.slice(-5).join("\n")}`).toBe(true);
        await sleep(200);
        if (i === 1) warm = sample(child.pid!);
      }
      expectFlat({ warm: warm!, end: sample(child.pid!) });
    } finally {
      child.kill("SIGTERM");
      await exited;
      ns.destroy();
    }
  }, 120_000 + BOOTS * 30_000);

  it.skipIf(!net.ok)(`on a tap, the data path in its Worker${net.ok ? "" : ` (skipped: ${net.reason})`}: flat too`, async () => {
    expectFlat(await soak("tap"));
  }, 60_000 + SESSIONS * 1000);
});
