/**
 * The real-guest comparison: iperf3 TCP for 10 s each way between a Linux guest under QEMU
 * and its host namespace, once with the guest's virtio-net served by our vhost-user back-end
 * and once by QEMU's built-in virtio-net on a tap (`-netdev tap,vhost=off`), same guest, same
 * run. Also our back-end's CPU seconds per GB moved. Needs root, QEMU and the guest image
 * (guest/build-guest.sh). Under TCG the guest's CPU is the bottleneck: read the ratio.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { boot, guestAvailable } from "../host/guests/qemu.js";
import { netTestsAvailable } from "../test/support/netns.js";
import { Netns } from "../test/support/netns.js";
import { cpuSeconds, table } from "./harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECONDS = Number(process.env.VNW_IPERF_SECONDS ?? 10);

const SCRIPT = `
for i in $(seq 1 50); do ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1 && break; done
iperf3 -c 192.0.2.1 -t ${SECONDS} > /tmp/up 2>&1
echo "VNW iperf-up $(grep receiver /tmp/up | tail -1)"
iperf3 -c 192.0.2.1 -t ${SECONDS} -R > /tmp/down 2>&1
echo "VNW iperf-down $(grep receiver /tmp/down | tail -1)"
`;

/** Bits per second from iperf3's "receiver" summary line ("... 1.02 Gbits/sec ... receiver"). */
function bitsPerSecond(line: string): number {
  const m = line.match(/([\d.]+) ([KMG]?)bits\/sec/);
  if (!m) throw new Error(`no iperf3 result in: ${line || "(nothing)"}`);
  return Number(m[1]) * ({ "": 1, K: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]];
}

/** QEMU's virtio-net restricted to what our back-end offers today (TSO and ECN yes; UFO and MRG_RXBUF no). */
const SAME_FEATURES = "host_ufo=off,guest_ufo=off";

/** One guest boot with iperf3 both ways; `backendArgs` go to our back-end's command line. */
export async function run(kind: "ours" | "qemu", deviceProps?: string, backendArgs: string[] = []): Promise<{ up: number; down: number; cpuPerGB: number | null }> {
  const ns = Netns.create();
  const tap = Netns.tapName();
  const socket = `/tmp/vnw-bench-${process.pid}.sock`;
  let backendPid = 0;
  const children: ReturnType<typeof spawn>[] = [];
  try {
    if (kind === "ours") {
      const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
      const b = spawn("ip", ["netns", "exec", ns.name, process.execPath, cli, "vhost-user", "--socket", socket, "--tap", tap, "--log-level", "warn", ...backendArgs], { stdio: "ignore" });
      children.push(b);
      backendPid = b.pid!;
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
    }
    const guest = kind === "ours"
      ? boot({ socket, script: SCRIPT, memMiB: 512 })
      : boot({ socket: "", script: SCRIPT, qemuTap: tap, memMiB: 512, deviceProps });
    if (kind === "qemu") {
      // QEMU creates the tap in our namespace; move it before the guest finishes booting.
      for (let i = 0; i < 100; i++) {
        try { execFileSync("ip", ["link", "set", tap, "netns", ns.name], { stdio: "ignore" }); break; } catch { await sleep(20); }
      }
    }
    for (let i = 0; i < 100; i++) {
      try { ns.ip(["addr", "add", "192.0.2.1/24", "dev", tap]); break; } catch { await sleep(50); }
    }
    ns.ip(["link", "set", tap, "up"]);
    // The server binds 192.0.2.1, so it starts once the tap has that address.
    children.push(spawn("ip", ["netns", "exec", ns.name, "iperf3", "-s", "-B", "192.0.2.1"], { stdio: "ignore" }));
    const cpu0 = backendPid ? cpuSeconds(backendPid) : 0;
    const up = bitsPerSecond((await guest.waitFor(/VNW iperf-up (.*)$/, 180_000))[1]);
    const down = bitsPerSecond((await guest.waitFor(/VNW iperf-down (.*)$/, 180_000))[1]);
    const cpu = backendPid ? cpuSeconds(backendPid) - cpu0 : 0;
    await guest.exited;
    const gb = ((up + down) * SECONDS) / 8 / 1e9;
    return { up, down, cpuPerGB: backendPid && gb > 0 ? cpu / gb : null };
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await sleep(200);
    ns.destroy();
  }
}

export async function qemuBench(): Promise<void> {
  const guestOk = guestAvailable();
  const a = guestOk.ok ? netTestsAvailable() : guestOk;
  if (!a.ok) {
    console.log(`\nReal guest under QEMU: skipped (${a.reason})`);
    return;
  }
  // Interleaved rounds (ours, QEMU, QEMU same features; twice): the machine is shared and noisy.
  const ROUNDS = Number(process.env.VNW_QEMU_ROUNDS ?? 2);
  const runs: Record<"ours" | "qemu" | "same", { up: number; down: number; cpuPerGB: number | null }[]> = { ours: [], qemu: [], same: [] };
  for (let r = 0; r < ROUNDS; r++) {
    runs.ours.push(await run("ours"));
    runs.qemu.push(await run("qemu"));
    runs.same.push(await run("qemu", SAME_FEATURES));
  }
  const mean = (xs: { up: number; down: number; cpuPerGB: number | null }[]) => ({
    up: xs.reduce((a, x) => a + x.up, 0) / xs.length,
    down: xs.reduce((a, x) => a + x.down, 0) / xs.length,
    cpuPerGB: xs[0].cpuPerGB === null ? null : xs.reduce((a, x) => a + (x.cpuPerGB ?? 0), 0) / xs.length,
  });
  const ours = mean(runs.ours);
  const qemu = mean(runs.qemu);
  const same = mean(runs.same);
  const g = (bps: number) => (bps / 1e9).toFixed(2);
  console.log(`\nReal Linux guest under QEMU 7.2 (TCG, 1 vCPU), iperf3 TCP ${SECONDS} s each way, guest offloads on; mean of ${ROUNDS} interleaved rounds`);
  console.log("(both offer TSO and MRG_RXBUF; QEMU's device also offers UFO, which ours does not: the last columns run QEMU without it)");
  table([
    ["direction", "ours Gbit/s", "QEMU tap,vhost=off", "ours/QEMU", "QEMU same features", "ours/same"],
    ["guest → host", g(ours.up), g(qemu.up), (ours.up / qemu.up).toFixed(2), g(same.up), (ours.up / same.up).toFixed(2)],
    ["host → guest", g(ours.down), g(qemu.down), (ours.down / qemu.down).toFixed(2), g(same.down), (ours.down / same.down).toFixed(2)],
  ]);
  if (ours.cpuPerGB !== null) console.log(`our back-end process: ${ours.cpuPerGB.toFixed(2)} CPU seconds per GB moved`);
}

/**
 * Rate limits against what they promise: the same guest's iperf3 through our back-end with
 * `--tx-rate` and `--rx-rate`, the rate measured over the configured one.
 */
export async function rateLimitBench(): Promise<void> {
  const guestOk = guestAvailable();
  const a = guestOk.ok ? netTestsAvailable() : guestOk;
  if (!a.ok) {
    console.log(`\nRate limits: skipped (${a.reason})`);
    return;
  }
  const LIMIT = 200e6;
  const r = await run("ours", undefined, ["--tx-rate", "200Mbit", "--rx-rate", "200Mbit"]);
  console.log(`\nRate limits: --tx-rate 200Mbit --rx-rate 200Mbit, iperf3 TCP ${SECONDS} s each way, real guest under QEMU (TCG)`);
  table([
    ["direction", "measured Mbit/s", "limit", "measured/limit"],
    ["guest → host (TX limit)", (r.up / 1e6).toFixed(1), "200", (r.up / LIMIT).toFixed(3)],
    ["host → guest (RX limit)", (r.down / 1e6).toFixed(1), "200", (r.down / LIMIT).toFixed(3)],
  ]);
}

if (process.argv[1]?.endsWith("qemu.js")) await qemuBench();
if (process.argv[1]?.endsWith("ratelimit.js")) await rateLimitBench();
