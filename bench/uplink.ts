/**
 * The uplink against QEMU's own user-mode networking, which uses the same libslirp: iperf3 TCP
 * from a Linux guest under QEMU to a server on the host's loopback, reached at the gateway's
 * address, both directions, same guest, same run. Ours: the `vhost-user` CLI on the embedded
 * network (the uplink behind the gateway). QEMU's: `-netdev user` with its built-in virtio-net.
 * Under TCG the guest's CPU bounds both: read the ratio. Needs QEMU, libslirp and the guest image.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { boot, guestAvailable } from "../host/guests/qemu.js";
import { libslirp } from "../host/runtime/libslirp.js";
import { dhcpScript } from "../host/guests/shell.js";
import { table } from "./harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECONDS = Number(process.env.VNW_IPERF_SECONDS ?? 8);

const dhcp = dhcpScript(["router"]);

/** Bits per second from iperf3's "receiver" summary line. */
function bitsPerSecond(line: string): number {
  const m = line.match(/([\d.]+) ([KMG]?)bits\/sec/);
  if (!m) throw new Error(`no iperf3 result in: ${line || "(nothing)"}`);
  return Number(m[1]) * ({ "": 1, K: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]];
}

async function run(kind: "ours" | "qemu", port: number): Promise<{ up: number; down: number }> {
  // The host's loopback seen from the guest: our gateway (.1) or QEMU's slirp host (10.0.2.2).
  const host = kind === "ours" ? "10.215.0.1" : "10.0.2.2";
  const guestScript = `${dhcp}
iperf3 -c ${host} -p ${port} -t ${SECONDS} > /tmp/up 2>&1
echo "VNW iperf-up $(grep receiver /tmp/up | tail -1)"
iperf3 -c ${host} -p ${port} -t ${SECONDS} -R > /tmp/down 2>&1
echo "VNW iperf-down $(grep receiver /tmp/down | tail -1)"`;
  const socket = `/tmp/vnw-bench-uplink-${process.pid}.sock`;
  const children: ChildProcess[] = [spawn("iperf3", ["-s", "-B", "127.0.0.1", "-p", String(port)], { stdio: "ignore" })];
  try {
    if (kind === "ours") {
      const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
      children.push(spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--log-level", "warn"], { stdio: "ignore" }));
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
    }
    const guest = kind === "ours" ? boot({ socket, script: guestScript, memMiB: 512 }) : boot({ socket: "", script: guestScript, qemuUser: true, memMiB: 512 });
    const up = bitsPerSecond((await guest.waitFor(/VNW iperf-up (.*)$/, 180_000))[1]);
    const down = bitsPerSecond((await guest.waitFor(/VNW iperf-down (.*)$/, 180_000))[1]);
    await guest.exited;
    return { up, down };
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await sleep(200);
  }
}

export async function uplinkBench(): Promise<void> {
  const g = guestAvailable();
  let why = g.ok ? "" : g.reason;
  try { libslirp(); } catch (e) { why ||= (e as Error).message; }
  if (why) {
    console.log(`\nUplink (libslirp) vs QEMU -netdev user: skipped (${why})`);
    return;
  }
  const ROUNDS = Number(process.env.VNW_UPLINK_ROUNDS ?? 2);
  const runs: Record<"ours" | "qemu", { up: number; down: number }[]> = { ours: [], qemu: [] };
  for (let r = 0; r < ROUNDS; r++) {
    runs.ours.push(await run("ours", 25201 + r));
    runs.qemu.push(await run("qemu", 25211 + r));
  }
  const mean = (xs: { up: number; down: number }[], k: "up" | "down") => xs.reduce((a, x) => a + x[k], 0) / xs.length;
  const m = (bps: number) => (bps / 1e6).toFixed(0);
  console.log(`\nUplink: iperf3 TCP ${SECONDS} s each way between a QEMU guest (TCG) and a server on the host's loopback; mean of ${ROUNDS} interleaved rounds`);
  console.log("(ours: vhost-user back-end, embedded network, libslirp behind the gateway; QEMU: -netdev user, the same libslirp)");
  table([
    ["direction", "ours Mbit/s", "QEMU -netdev user", "ours/QEMU"],
    ...(["up", "down"] as const).map((k) => [k === "up" ? "guest → host" : "host → guest", m(mean(runs.ours, k)), m(mean(runs.qemu, k)), (mean(runs.ours, k) / mean(runs.qemu, k)).toFixed(2)]),
  ]);
}

if (process.argv[1]?.endsWith("uplink.js")) await uplinkBench();
