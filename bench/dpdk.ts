/**
 * DPDK testpmd (virtio-user PMD) as the front-end, the usual way to drive a vhost-user back-end
 * at line rate without a VM.
 *  - Loop: two virtio-user ports forwarding to each other (mac mode, 64 packets circulating)
 *    through our back-end's embedded network (the core's device-to-device fast path), with and
 *    without busy polling (--poll-us), next to testpmd's own vhost PMD as the back-end (io
 *    forwarding between net_vhost0 and net_vhost1), same front-end, same run, each back-end
 *    pinned to CPU 1 and the front-end to CPU 0. Packets/s are the front-end's RX over the run.
 *  - Tap: txonly into a tap (frames/s the kernel counted) next to a bare writev loop of the same
 *    64-byte frames into a tap; rxonly from a blaster in the namespace next to a bare readv loop
 *    behind the same blaster.
 * Contenders alternate over rounds; read the ratios.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LinuxTap } from "../host/backends/tap-linux.js";
import * as libc from "../host/runtime/libc.js";
import { Testpmd, testpmdAvailable, virtioUserVdev } from "../test/support/testpmd.js";
import { Netns, netTestsAvailable } from "../test/support/netns.js";
import { cpuSeconds, fmt, table } from "./harness.js";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const SECONDS = Number(process.env.VNW_DPDK_SECONDS ?? 5);
const ROUNDS = Number(process.env.VNW_DPDK_ROUNDS ?? 2);
const MAC0 = "02:00:00:00:00:10";
const MAC1 = "02:00:00:00:00:11";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let seq = 0;

const sock = (n: string) => join(tmpdir(), `vnw-bench-${process.pid}-${seq++}-${n}.sock`);

async function waitOutput(child: ChildProcess, out: () => string, re: RegExp, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!re.test(out())) {
    if (child.exitCode !== null) throw new Error(`back-end exited: ${out().slice(-1000)}`);
    if (Date.now() - t0 > ms) throw new Error(`back-end did not get ready: ${out().slice(-1000)}`);
    await sleep(20);
  }
}

/** Starts a back-end pinned to CPU 1; resolves once it listens on every socket. */
async function startBackend(kind: "ours" | "vhost-pmd", sockets: string[], extra: string[] = []): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  let out = "";
  const child = kind === "ours"
    ? spawn("taskset", ["-c", "1", process.execPath, cli, "vhost-user", ...sockets.flatMap((s) => ["--socket", s]), "--log-level", "warn", ...extra], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn("taskset", ["-c", "1", "dpdk-testpmd", "--lcores", "(0,1)@1", "--no-pci", "--no-huge", "--no-shconf", "-m", "1024", `--file-prefix=bvh${process.pid}${seq++}`,
      ...sockets.flatMap((s, i) => ["--vdev", `net_vhost${i},iface=${s},queues=1`]), "--", "--forward-mode=io", "--auto-start", "--stats-period", "5", "--total-num-mbufs=16384"],
    { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d) => { out += d; });
  child.stderr!.on("data", (d) => { out += d; });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  if (kind === "ours") {
    for (let i = 0; i < 300 && !sockets.every(existsSync); i++) await sleep(20);
  } else {
    await waitOutput(child, () => out, /Press enter to exit|Port statistics/);
  }
  return {
    child,
    stop: async () => {
      child.kill("SIGINT");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** One loop run: packets/s at the front-end and the back-end's CPU use (cores). */
/** How the front-end's rings are laid out: queue pairs, packed or split. */
interface Rings { queues?: number; packed?: boolean; inOrder?: boolean }

async function loopRun(kind: "ours" | "vhost-pmd", extra: string[] = [], rings: Rings = {}): Promise<{ pps: number; cores: number }> {
  const sockets = [sock("a"), sock("b")];
  const q = rings.queues ?? 1;
  const be = await startBackend(kind, sockets, [...extra, ...(q > 1 && kind === "ours" ? ["--queues", String(q)] : [])]);
  try {
    const pmd = await Testpmd.start({
      vdevs: [virtioUserVdev(0, sockets[0], MAC0, rings), virtioUserVdev(1, sockets[1], MAC1, rings)],
      // Several flows (txonly's multi-flow first burst), so two pairs both get some.
      app: ["--forward-mode=mac", `--eth-peer=0,${MAC1}`, `--eth-peer=1,${MAC0}`, "--tx-first", ...(q > 1 ? [`--rxq=${q}`, `--txq=${q}`, "--txonly-multi-flow"] : [])],
      filePrefix: `bfe${process.pid}${seq++}`, cpu: 0,
    });
    await sleep(500);
    const c0 = cpuSeconds(be.child.pid!);
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const c1 = cpuSeconds(be.child.pid!);
    const run = await pmd.stop();
    return { pps: run.total.rxPackets / run.seconds, cores: (c1 - c0) / ((performance.now() - t0) / 1000) };
  } finally {
    await be.stop();
  }
}

async function loopRows(rows: string[][]): Promise<void> {
  const contenders: [string, "ours" | "vhost-pmd", string[], Rings][] = [
    ["testpmd vhost PMD (anchor)", "vhost-pmd", [], {}],
    ["ours, embedded network", "ours", [], {}],
    ["ours, --poll-us 50", "ours", ["--poll-us", "50"], {}],
    ["ours, packed rings (packed_vq=1)", "ours", [], { packed: true }],
    ["testpmd vhost PMD, in_order=1", "vhost-pmd", [], { inOrder: true }],
    ["ours, in_order=1 (VIRTIO_F_IN_ORDER)", "ours", [], { inOrder: true }],
    ["ours, packed rings, in_order=1", "ours", [], { packed: true, inOrder: true }],
    ["ours, 2 queue pairs (queues=2,cq=1)", "ours", [], { queues: 2 }],
    ["ours, 2 queue pairs, packed rings", "ours", [], { queues: 2, packed: true }],
  ];
  // VNW_DPDK_LOOP=REGEX: only the loop rows whose names match (and the anchor), no tap rows: for looking at one effect.
  const only = process.env.VNW_DPDK_LOOP ? new RegExp(process.env.VNW_DPDK_LOOP) : null;
  if (only) contenders.splice(0, contenders.length, ...contenders.filter(([name], i) => i === 0 || only.test(name)));
  const res: { pps: number[]; cores: number[]; ratio: number[] }[] = contenders.map(() => ({ pps: [], cores: [], ratio: [] }));
  for (let r = 0; r < ROUNDS; r++) {
    const round: { pps: number; cores: number }[] = [];
    for (const [, kind, extra, rings] of contenders) round.push(await loopRun(kind, extra, rings));
    round.forEach((x, i) => {
      res[i].pps.push(x.pps);
      res[i].cores.push(x.cores);
      res[i].ratio.push(x.pps / round[0].pps);
    });
  }
  contenders.forEach(([name], i) => {
    rows.push([`loop: ${name}`, `${fmt(median(res[i].pps))}pkt/s`, median(res[i].ratio).toFixed(3), median(res[i].cores).toFixed(2)]);
  });
}

/** frames/s of a bare writev loop of 12 + 64-byte frames into a tap, for `seconds`. */
function bareWritev(tap: LinuxTap, seconds: number): number {
  const mem = new WebAssembly.Memory({ initial: 1 });
  const base = libc.memoryAddress(mem);
  const u8 = new Uint8Array(mem.buffer);
  u8.set([2, 0, 0, 0, 0, 0x99, 2, 0, 0, 0, 0, 0x10, 0x08, 0x00], 1024 + 12);
  const dv = new DataView(mem.buffer);
  dv.setBigUint64(0, base + 1024n, true);
  dv.setBigUint64(8, 12n + 64n, true);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 1000; i++) if (tap.writev(base, 1) > 0) n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

/**
 * frames/s of a bare reader on a tap while `blast` runs in the namespace: epoll_wait for the tap,
 * then read until EAGAIN, as the back-end's Worker does without polling (the syscall floor of an
 * event-driven reader; it yields to the event loop every few ms so the blaster's exit is seen).
 */
async function bareReadv(tap: LinuxTap, blast: () => Promise<number>): Promise<{ rate: number; delivered: number }> {
  const buf = new Uint8Array(2048);
  const ep = libc.epollCreate();
  libc.epollAdd(ep, tap.fd, libc.EPOLLIN, 1);
  const events = new libc.EpollEvents(1);
  let n = 0;
  let done = false;
  const t0 = performance.now();
  let sent = 0;
  const sender = blast().then((k) => { sent = k; done = true; });
  while (!done) {
    const until = performance.now() + 5;
    while (performance.now() < until) {
      if (libc.epollWait(ep, events, 5) === 0) continue;
      while (libc.read(tap.fd, buf) > 0) n++;
    }
    await new Promise((r) => setImmediate(r));
  }
  await sender;
  while (libc.read(tap.fd, buf) > 0) n++;
  libc.close(ep);
  return { rate: n / ((performance.now() - t0) / 1000), delivered: n / sent };
}

/** Sends 64-byte UDP datagrams to 192.0.2.2 from the namespace for `seconds` (python3). */
function blaster(ns: Netns, seconds: number): () => Promise<number> {
  const py = ["import socket, time", "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)", "p = bytes(22)", "n = 0",
    `end = time.time() + ${seconds}`, "while time.time() < end:", "    for i in range(1000):", "        try:", "            s.sendto(p, ('192.0.2.2', 9)); n += 1",
    "        except OSError:", "            pass", "print(n)"].join("\n");
  return async () => Number((await ns.run(["taskset", "-c", "0", "python3", "-c", py], (seconds + 20) * 1000)).trim());
}

async function tapRows(rows: string[][]): Promise<void> {
  const counter = (ns: Netns, tap: string, name: string) => Number(ns.exec(["cat", `/sys/class/net/${tap}/statistics/${name}`]).trim());
  const ours: Record<string, number[]> = {};
  /** Fraction of what the blaster sent that reached the reader. */
  const delivered: Record<string, number[]> = {};
  const txBare: number[] = [];
  const rxBare: number[] = [];
  const runs: [mode: "txonly" | "rxonly", pollUs: number, rings: Rings][] = [
    ["txonly", 0, {}], ["txonly", 50, {}], ["txonly", 0, { packed: true }], ["txonly", 0, { queues: 2 }],
    ["rxonly", 0, {}], ["rxonly", 50, {}],
  ];
  const keyOf = (mode: string, pollUs: number, rings: Rings) => `${mode}-${pollUs}-${rings.queues ?? 1}${rings.packed ? "p" : ""}`;
  for (let r = 0; r < ROUNDS; r++) {
    // Ours: testpmd txonly/rxonly through the back-end's Worker(s) into a tap, without and with
    // polling, with packed rings, with two queue pairs (a Worker and a tap queue each).
    for (const [mode, pollUs, rings] of runs) {
      const key = keyOf(mode, pollUs, rings);
      ours[key] ??= [];
      const ns = Netns.create();
      const tapName = Netns.tapName();
      const s = sock("t");
      const q = rings.queues ?? 1;
      const be = await startBackend("ours", [s], ["--tap", tapName, "--poll-us", String(pollUs), ...(q > 1 ? ["--queues", String(q)] : [])]);
      try {
        ns.adopt(tapName);
        ns.exec(["sysctl", "-q", "-w", `net.ipv6.conf.${tapName}.disable_ipv6=1`]);
        ns.ip(["addr", "add", "192.0.2.1/24", "dev", tapName]);
        ns.ip(["link", "set", tapName, "up"]);
        ns.ip(["neigh", "add", "192.0.2.2", "lladdr", MAC0, "dev", tapName, "nud", "permanent"]);
        const pmd = await Testpmd.start({ vdevs: [virtioUserVdev(0, s, MAC0, rings)], app: [`--forward-mode=${mode}`, ...(q > 1 ? [`--rxq=${q}`, `--txq=${q}`] : [])], filePrefix: `bt${process.pid}${seq++}`, cpu: 0 });
        if (mode === "txonly") {
          await sleep(500);
          const c0 = counter(ns, tapName, "rx_packets");
          const t0 = performance.now();
          await sleep(SECONDS * 1000);
          ours[key].push((counter(ns, tapName, "rx_packets") - c0) / ((performance.now() - t0) / 1000));
          await pmd.stop();
        } else {
          const sent = await blaster(ns, SECONDS)();
          await sleep(300);
          const run = await pmd.stop();
          ours[key].push(run.total.rxPackets / SECONDS);
          (delivered[key] ??= []).push(run.total.rxPackets / sent);
        }
      } finally {
        await be.stop();
        ns.destroy();
      }
    }
    // Bare loops on a tap of their own, same frames, same blaster, pinned like the back-end.
    const ns = Netns.create();
    const tap = LinuxTap.open(Netns.tapName());
    try {
      ns.adopt(tap.name);
      ns.exec(["sysctl", "-q", "-w", `net.ipv6.conf.${tap.name}.disable_ipv6=1`]);
      ns.ip(["addr", "add", "192.0.2.1/24", "dev", tap.name]);
      ns.ip(["link", "set", tap.name, "up"]);
      ns.ip(["neigh", "add", "192.0.2.2", "lladdr", MAC0, "dev", tap.name, "nud", "permanent"]);
      txBare.push(bareWritev(tap, SECONDS));
      const b = await bareReadv(tap, blaster(ns, SECONDS));
      rxBare.push(b.rate);
      (delivered.bare ??= []).push(b.delivered);
    } finally {
      tap.close();
      ns.destroy();
    }
  }
  const tx = median(txBare);
  const rx = median(rxBare);
  for (const [mode, pollUs, rings] of runs.filter(([m]) => m === "txonly")) {
    const v = median(ours[keyOf(mode, pollUs, rings)]);
    const how = [pollUs ? `--poll-us ${pollUs}` : "", rings.packed ? "packed rings" : "", rings.queues ? `${rings.queues} queue pairs` : ""].filter(Boolean).join(", ");
    rows.push([`tap TX: testpmd txonly -> ours${how ? ` (${how})` : ""} -> tap`, `${fmt(v)}frame/s`, (v / tx).toFixed(3), ""]);
  }
  rows.push(["tap TX: bare writev loop (floor)", `${fmt(tx)}frame/s`, "1.000", ""]);
  for (const pollUs of [0, 50]) {
    const v = median(ours[keyOf("rxonly", pollUs, {})]);
    const d = median(delivered[keyOf("rxonly", pollUs, {})]);
    rows.push([`tap RX: blaster -> tap -> ours${pollUs ? ` (--poll-us ${pollUs})` : ""} -> testpmd rxonly (${(100 * d).toFixed(1)}% of sent)`, `${fmt(v)}frame/s`, (v / rx).toFixed(3), ""]);
  }
  rows.push([`tap RX: blaster -> tap -> bare epoll+read loop (${(100 * median(delivered.bare)).toFixed(1)}% of sent)`, `${fmt(rx)}frame/s`, "1.000", ""]);
}

/** testpmd txonly through a tap with --tx-rate: the rate the kernel receives (bytes), against the limit. */
async function rateRows(rows: string[][]): Promise<void> {
  for (const mbit of [50, 200]) {
    const ns = Netns.create();
    const tapName = Netns.tapName();
    const s = sock("r");
    const be = await startBackend("ours", [s], ["--tap", tapName, "--tx-rate", `${mbit}Mbit`]);
    try {
      ns.adopt(tapName);
      ns.ip(["link", "set", tapName, "up"]);
      const pmd = await Testpmd.start({ vdevs: [virtioUserVdev(0, s, MAC0)], app: ["--forward-mode=txonly", "--txpkts=1024"], filePrefix: `br${process.pid}${seq++}`, cpu: 0 });
      await sleep(1000); // past the bucket's initial allowance
      const bytes = () => Number(ns.exec(["cat", `/sys/class/net/${tapName}/statistics/rx_bytes`]).trim());
      const [b0, t0] = [bytes(), performance.now()];
      await sleep(SECONDS * 1000);
      const rate = ((bytes() - b0) * 8) / ((performance.now() - t0) / 1000);
      await pmd.stop();
      rows.push([`tap TX: testpmd txonly (1024-byte frames) with --tx-rate ${mbit}Mbit`, `${(rate / 1e6).toFixed(1)} Mbit/s`, (rate / (mbit * 1e6)).toFixed(3), "(ratio: to the limit)"]);
    } finally {
      await be.stop();
      ns.destroy();
    }
  }
}

export async function dpdkBench(): Promise<void> {
  console.log("\nDPDK testpmd (virtio-user) as the vhost-user front-end: 64-byte packets, front-end on CPU 0, back-end on CPU 1");
  const avail = testpmdAvailable();
  if (!avail.ok) {
    console.log(`  skipped: ${avail.reason}`);
    return;
  }
  if (!existsSync(cli)) {
    console.log("  skipped: run npm run build first");
    return;
  }
  const rows: string[][] = [["", "rate", "ratio", "back-end CPU (cores)"]];
  await loopRows(rows);
  const net = netTestsAvailable();
  if (process.env.VNW_DPDK_LOOP) rows.push(["tap rows not run (VNW_DPDK_LOOP)", "", "", ""]);
  else if (net.ok) {
    try {
      execFileSync("python3", ["-c", "pass"]);
      await tapRows(rows);
      await rateRows(rows);
    } catch (e) {
      rows.push([`tap rows not run: ${(e as Error).message.split("\n")[0]}`, "", "", ""]);
    }
  } else rows.push([`tap rows skipped: ${net.reason}`, "", "", ""]);
  table(rows);
  console.log("  loop ratio: to testpmd's vhost PMD in the same round; tap ratios: to the bare loop on the same machine in the same round.");
  console.log("  RX rows are bounded by the blaster (python, CPU 0), which shares its CPU with testpmd's polling lcore in our rows and");
  console.log("  has it to itself in the bare row: compare the share of sent frames that arrived, not only the rates.");
  console.log("  2 queue pairs: this machine has 2 cores, testpmd's polling lcore takes one, so our pairs share the other: the rows show");
  console.log("  what a second pair costs or saves on one core (steering, a second Worker), not how it scales; on the embedded network both");
  console.log("  pairs run on the main thread anyway.");
}

if (import.meta.url === `file://${process.argv[1]}`) await dpdkBench();
