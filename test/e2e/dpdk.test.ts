/**
 * DPDK's testpmd (virtio-user PMD) as a fast vhost-user front-end nobody here wrote, against
 * the real CLI in a child process. It honours notification suppression and sends as fast as
 * the back-end takes frames, which is what exposed the lost TX wakeup: exact counts, not rates.
 *  - txonly into a tap: every frame testpmd put on the ring reaches the kernel, and the tap's
 *    RX counter keeps growing until the end of the run.
 *  - rxonly from a blaster in a namespace: every frame the kernel handed to the tap reaches
 *    testpmd (the kernel's own drops are counted by it under tx_dropped).
 *  - forwarding between two ports on the embedded network (no tap, no root): packets circulate
 *    for the whole run and none is lost, under Node, Bun and Deno.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ensureHugePages, Testpmd, testpmdAvailable, virtioUserVdev, type TestpmdRun } from "../support/testpmd.js";
import { Netns, netTestsAvailable } from "../support/netns.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const dpdk = testpmdAvailable();
const net = netTestsAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAC0 = "02:00:00:00:00:10";
const MAC1 = "02:00:00:00:00:11";
let seq = 0;

class Backend {
  out = "";
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on("data", (d) => { this.out += String(d); });
    child.stderr!.on("data", (d) => { this.out += String(d); });
    this.exited = new Promise((r) => child.on("exit", (code) => r(code)));
  }
  /**
   * Ends the back-end: the whole process group, since under bun or deno the child is `npx`,
   * which does not pass SIGTERM on (the runtime kept running after every such test).
   */
  async stop(): Promise<void> {
    const group = (sig: NodeJS.Signals) => { try { process.kill(-this.child.pid!, sig); } catch { /* gone */ } };
    group("SIGTERM");
    const t = setTimeout(() => group("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
  /** Per queue pair packets of the last --stats line for `label` (several pairs only). */
  lastPairs(label = ""): { rx: number; tx: number }[] {
    const l = this.out.split("\n").filter((x) => x.startsWith(`stats${label}:`)).at(-1) ?? "";
    const m = /per pair rx\/tx ([\d/ ]+)$/.exec(l.trim());
    if (!m) throw new Error(`no per-pair counters in the last stats${label} line:\n${this.out.slice(-2000)}`);
    return m[1].trim().split(" ").map((p) => p.split("/").map(Number)).map(([rx, tx]) => ({ rx, tx }));
  }

  /** The last --stats line for `label` ("" with one socket), as numbers. */
  lastStats(label = ""): { rx: number; tx: number; drops: string } {
    const lines = this.out.split("\n").filter((l) => l.startsWith(`stats${label}:`));
    const l = lines.at(-1);
    if (!l) throw new Error(`no stats${label} line in:\n${this.out.slice(-2000)}`);
    const m = /rx (\d+) pkts .* tx (\d+) pkts/.exec(l)!;
    return { rx: Number(m[1]), tx: Number(m[2]), drops: /; (drops .*|switch backlog drops .*)$/.exec(l)?.[1] ?? "" };
  }
}

function startBackend(runtime: string[], args: string[]): Backend {
  const [cmd, ...pre] = runtime.length ? runtime : [process.execPath];
  return new Backend(spawn(cmd, [...pre, cli, "vhost-user", ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true }));
}

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Stops testpmd's streams with the rings still up, waits (up to 5 s) until the kernel counted
 * as many frames as testpmd sent, then quits. Quitting at once would take the rings back with
 * the last burst still on them when the data path trails (two Workers on a shared core), and
 * testpmd counts a frame as sent once it is on the ring.
 */
async function stopDrained(pmd: Testpmd, counter: (name: string) => number): Promise<TestpmdRun> {
  const run = await pmd.stopForwarding();
  await waitFor(() => counter("rx_packets") >= run.ports[0].txPackets, "the device to take what testpmd queued", 5000).catch(() => {});
  await pmd.quit();
  return run;
}

const sock = (name: string) => join(tmpdir(), `vnw-dpdk-${process.pid}-${seq++}-${name}.sock`);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe.skipIf(!dpdk.ok || !existsSync(cli))(`DPDK testpmd as the front-end${dpdk.ok ? "" : ` (skipped: ${dpdk.reason})`}`, () => {
  describe.skipIf(!net.ok)(`through a tap${net.ok ? "" : ` (skipped: ${net.reason})`}`, () => {
    async function tapSetup(hostSide = true, extra: string[] = []) {
      const ns = Netns.create();
      const tap = Netns.tapName();
      const socket = sock("tap");
      const be = startBackend([], ["--socket", socket, "--tap", tap, "--stats", "1", ...extra]);
      cleanups.push(() => ns.destroy(), () => be.stop());
      await waitFor(() => be.out.includes("listening"), "the back-end to listen");
      ns.adopt(tap);
      if (hostSide) ns.hostSide(tap);
      else {
        // IPv4 only: no IPv6 router or listener reports may cross the tap behind the count's back.
        ns.exec(["sysctl", "-q", "-w", `net.ipv6.conf.${tap}.disable_ipv6=1`]);
        ns.ip(["addr", "add", "192.0.2.1/24", "dev", tap]);
        ns.ip(["link", "set", tap, "up"]);
      }
      const counter = (name: string) => Number(ns.exec(["cat", `/sys/class/net/${tap}/statistics/${name}`]).trim());
      return { ns, tap, socket, be, counter };
    }

    it("txonly: every frame testpmd queued reaches the kernel, which keeps receiving to the end", async () => {
      const { socket, be, counter } = await tapSetup();
      const pmd = await Testpmd.start({ vdevs: [virtioUserVdev(0, socket, MAC0)], app: ["--forward-mode=txonly"], filePrefix: `tx${process.pid}`, interactive: true });
      cleanups.push(() => pmd.kill());
      const samples: number[] = [];
      for (let i = 0; i < 8; i++) {
        await sleep(500);
        samples.push(counter("rx_packets"));
      }
      const run = await stopDrained(pmd, counter);
      await waitFor(() => be.out.includes("rings stopped"), "the back-end to stop the rings");
      // The stall this catches: 256 frames, then nothing for the rest of the run.
      for (let i = 1; i < samples.length; i++) expect(samples[i], `rx_packets at sample ${i}: ${samples.join(", ")}`).toBeGreaterThan(samples[i - 1]);
      expect(run.ports[0].txPackets).toBeGreaterThan(100_000);
      expect(counter("rx_packets")).toBe(run.ports[0].txPackets);
      expect(counter("rx_dropped")).toBe(0);
    }, 60_000);

    it.each([false, true])("txonly with 2 queue pairs (queues=2,cq=1, packed_vq=%s): every frame from both queues reaches the kernel, both pairs carried them", async (packed) => {
      const { socket, be, counter } = await tapSetup(true, ["--queues", "2"]);
      const pmd = await Testpmd.start({
        vdevs: [virtioUserVdev(0, socket, MAC0, { queues: 2, packed })], app: ["--forward-mode=txonly", "--rxq=2", "--txq=2"],
        filePrefix: `txmq${process.pid}${packed ? "p" : ""}`, interactive: true,
      });
      cleanups.push(() => pmd.kill());
      await sleep(3000);
      const run = await stopDrained(pmd, counter);
      await waitFor(() => /pair 1: rings stopped/.test(be.out), "the back-end to stop the rings");
      await sleep(1200);
      expect(be.out).toMatch(/pair 1: rings started/);
      expect(run.ports[0].txPackets).toBeGreaterThan(50_000);
      expect(counter("rx_packets")).toBe(run.ports[0].txPackets);
      const pairs = be.lastPairs();
      expect(pairs.map((p) => p.tx).reduce((a, b) => a + b)).toBe(run.ports[0].txPackets);
      for (const p of pairs) expect(p.tx).toBeGreaterThan(run.ports[0].txPackets / 4);
    }, 60_000);

    it("--tx-rate 50Mbit: testpmd's txonly stream reaches the kernel at the limit (within 5%), the device drops nothing", async () => {
      const { socket, be, counter } = await tapSetup(true, ["--tx-rate", "50Mbit"]);
      const pmd = await Testpmd.start({ vdevs: [virtioUserVdev(0, socket, MAC0)], app: ["--forward-mode=txonly"], filePrefix: `txrl${process.pid}`, interactive: true });
      cleanups.push(() => pmd.kill());
      // From 1 s on: the bucket's initial allowance is spent by then.
      await sleep(1000);
      const [b0, t0] = [counter("rx_bytes"), performance.now()];
      await sleep(3000);
      const [b1, t1] = [counter("rx_bytes"), performance.now()];
      const run = await stopDrained(pmd, counter);
      await waitFor(() => be.out.includes("rings stopped"), "the back-end to stop the rings");
      const rate = ((b1 - b0) * 8) / ((t1 - t0) / 1000);
      expect(rate / 50e6, `${(rate / 1e6).toFixed(2)} Mbit/s`).toBeGreaterThan(0.95);
      expect(rate / 50e6, `${(rate / 1e6).toFixed(2)} Mbit/s`).toBeLessThan(1.05);
      // Over the limit frames wait on the ring (testpmd sees a full ring); what it queued arrived.
      expect(counter("rx_packets")).toBe(run.ports[0].txPackets);
      // (dropNoBuffer: the kernel's own IPv6 chatter towards testpmd, which takes no RX in this mode.)
      expect(be.lastStats().drops.replace(/dropNoBuffer=\d+ ?/, "").replace(/^drops\s*$/, "")).toBe("");
    }, 60_000);

    it("rxonly: every frame the kernel handed to the tap reaches testpmd", async () => {
      const { ns, tap, socket, be, counter } = await tapSetup(false);
      // Frames to 192.0.2.2 go out through the tap to testpmd's MAC without ARP.
      ns.ip(["neigh", "add", "192.0.2.2", "lladdr", MAC0, "dev", tap, "nud", "permanent"]);
      const pmd = await Testpmd.start({ vdevs: [virtioUserVdev(0, socket, MAC0)], app: ["--forward-mode=rxonly"], filePrefix: `rx${process.pid}` });
      cleanups.push(() => pmd.kill());
      const count = 200_000;
      const blast = [
        "import socket", "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)", "sent = 0", "p = bytes(64)",
        `for i in range(${count}):`, "    try:", "        s.sendto(p, ('192.0.2.2', 9)); sent += 1", "    except OSError:", "        pass",
        "print(sent)",
      ].join("\n");
      const sent = Number(ns.exec(["python3", "-c", blast], 60_000).trim());
      await sleep(1000);
      const run = await pmd.stop();
      const handed = counter("tx_packets");
      const kernelDropped = counter("tx_dropped");
      expect(sent).toBeGreaterThan(0);
      // What the kernel did not drop itself, it handed to us, and we handed all of it on.
      expect(handed + kernelDropped).toBeGreaterThanOrEqual(sent);
      expect(run.ports[0].rxPackets, `tap handed ${handed}, back-end ${JSON.stringify(be.lastStats())}\n${be.out.slice(-600)}`).toBe(handed);
      expect(run.ports[0].rxPackets).toBeGreaterThan(count / 4);
    }, 90_000);
  });

  // Node, then Bun and Deno from npm (as in `npm run bench`); where they cannot be had, say so.
  // virtio-user shares malloc'ed memory through ordinary memfds, or with huge pages through
  // hugetlbfs memfds that must be mapped 2 MiB aligned (Bun's memory base is only 4 KiB aligned).
  describe.skipIf(!net.ok)(`checksum and TSO offloads${net.ok ? "" : ` (skipped: ${net.reason})`}`, () => {
    it("testpmd's csum engine with TSO between two taps: 1 MiB of TCP arrives intact, the offloads were used, no checksum errors", async () => {
      // ns1 (192.0.2.1) -- tap1 -- back-end 1 -- testpmd port 0 ==csum fwd== port 1 -- back-end 2 -- tap2 -- ns2 (192.0.2.2)
      const side = await Promise.all([1, 2].map(async (n) => {
        const ns = Netns.create();
        const tap = Netns.tapName();
        const socket = sock(`csum${n}`);
        const be = startBackend([], ["--socket", socket, "--tap", tap, "--stats", "1"]);
        cleanups.push(() => ns.destroy(), () => be.stop());
        await waitFor(() => be.out.includes("listening"), "the back-end to listen");
        ns.adopt(tap);
        ns.exec(["sysctl", "-q", "-w", `net.ipv6.conf.${tap}.disable_ipv6=1`]);
        ns.ip(["addr", "add", `192.0.2.${n}/24`, "dev", tap]);
        ns.ip(["link", "set", tap, "up"]);
        return { ns, tap, socket, be, mac: ns.exec(["cat", `/sys/class/net/${tap}/address`]).trim() };
      }));
      // testpmd rewrites MACs on the way (port i's frames go out with its own as source).
      side[0].ns.ip(["neigh", "add", "192.0.2.2", "lladdr", MAC0, "dev", side[0].tap, "nud", "permanent"]);
      side[1].ns.ip(["neigh", "add", "192.0.2.1", "lladdr", MAC1, "dev", side[1].tap, "nud", "permanent"]);
      const pmd = await Testpmd.start({
        vdevs: [virtioUserVdev(0, side[0].socket, MAC0), virtioUserVdev(1, side[1].socket, MAC1)],
        app: [`--eth-peer=0,${side[0].mac}`, `--eth-peer=1,${side[1].mac}`],
        filePrefix: `cs${process.pid}`,
        commands: ["port stop all", ...[0, 1].flatMap((p) => [`csum set ip sw ${p}`, `csum set tcp hw ${p}`, `csum set udp hw ${p}`, `tso set 800 ${p}`]),
          "port start all", "set fwd csum", "start"],
      });
      cleanups.push(() => pmd.kill());
      const helper = fileURLToPath(new URL("../integration/host-helper.mjs", import.meta.url));
      const sink = side[1].ns.run([process.execPath, helper, "tcp-sink", "192.0.2.2", "5001", "30000"], 40_000);
      await sleep(500);
      const sent = JSON.parse(await side[0].ns.run([process.execPath, helper, "tcp-source", "192.0.2.2", "5001", String(1 << 20)], 30_000));
      const got = JSON.parse(await sink);
      await sleep(1500);
      pmd.kill();
      expect(got).toEqual(sent);
      // testpmd handed the back-ends partial checksums and 800-byte TSO frames, which went into
      // the taps whole: the kernels finished them, and found nothing wrong.
      const s1 = side[1].be.out.split("\n").filter((l) => l.startsWith("stats:")).at(-1)!;
      const tso = /large segments whole tx (\d+)/.exec(s1)!;
      const csum = /csum offloaded tx (\d+)/.exec(s1)!;
      expect(Number(csum[1]), s1).toBeGreaterThan(100);
      expect(Number(tso[1]), s1).toBeGreaterThan(100);
      for (const { ns } of side) expect(Object.values(ns.csumErrors()).every((v) => v === 0), JSON.stringify(ns.csumErrors())).toBe(true);
    }, 90_000);
  });

  const runtimes: [string, string[], boolean][] = [["node", [], false]];
  const huge = dpdk.ok ? ensureHugePages(256) : { ok: false, reason: dpdk.reason };
  for (const [name, pkg, args] of dpdk.ok ? [["bun", "bun@1.4.5", []], ["deno", "deno@2.9.6", ["run", "--allow-all"]]] as const : []) {
    const probe = spawnSync("npx", ["-y", pkg, "--version"], { encoding: "utf8", timeout: 180_000 });
    const cmd = probe.status === 0 ? ["npx", "-y", pkg, ...args] : [];
    runtimes.push([probe.status === 0 ? name : `${name} (skipped: npx ${pkg} failed)`, cmd, false]);
    if (name === "bun") runtimes.push([probe.status !== 0 ? `${name} with huge pages (skipped: npx ${pkg} failed)` : huge.ok ? `${name} with huge pages` : `${name} with huge pages (skipped: ${huge.reason})`, cmd, true]);
  }
  runtimes.push([huge.ok ? "node with huge pages" : `node with huge pages (skipped: ${huge.reason})`, [], true]);

  /**
   * Two testpmd ports on two sockets of one back-end (the embedded network), mac forwarding
   * between them for 3 s from testpmd's first burst; returns testpmd's totals and each socket's
   * last stats and per-pair counters once the back-end has stopped.
   */
  async function macLoop(tag: string, backendArgs: string[], rings: { queues?: number; packed?: boolean; inOrder?: boolean }) {
    const a = sock(`${tag}a`);
    const b = sock(`${tag}b`);
    const be = startBackend([], ["--socket", a, "--socket", b, "--no-uplink", "--stats", "1", ...backendArgs]);
    cleanups.push(() => be.stop());
    await waitFor(() => (be.out.match(/listening/g) ?? []).length >= 2, "the back-end to listen on both sockets");
    const q = rings.queues ?? 1;
    // --txonly-multi-flow: the first burst's frames carry different source addresses, so they
    // are different flows for the steering to spread.
    const pmd = await Testpmd.start({
      vdevs: [virtioUserVdev(0, a, MAC0, rings), virtioUserVdev(1, b, MAC1, rings)],
      app: ["--forward-mode=mac", `--eth-peer=0,${MAC1}`, `--eth-peer=1,${MAC0}`, "--tx-first", ...(q > 1 ? ["--txonly-multi-flow", `--rxq=${q}`, `--txq=${q}`] : [])],
      filePrefix: `fw${tag}${process.pid}${seq++}`,
    });
    cleanups.push(() => pmd.kill());
    await sleep(3000);
    const run = await pmd.stop();
    await sleep(1500);
    const [s0, s1] = [be.lastStats(` [${a}]`), be.lastStats(` [${b}]`)];
    // (Per-pair counters are printed with several pairs only.)
    const [p0, p1] = q > 1 ? [be.lastPairs(` [${a}]`), be.lastPairs(` [${b}]`)] : [[], []];
    await be.stop();
    // The first burst (32 per queue and port) circulates; at the stop at most that is in flight.
    const inFlight = run.total.txPackets - run.total.rxPackets;
    expect(run.total.rxPackets).toBeGreaterThan(10_000);
    expect(inFlight).toBeGreaterThanOrEqual(0);
    expect(inFlight).toBeLessThanOrEqual(2 * q * 32);
    // Our side: what one guest sent, the other received; nothing dropped.
    expect(s0.tx).toBe(s1.rx);
    expect(s1.tx).toBe(s0.rx);
    expect(s0.drops.replace(/dropNoBuffer=\d+ ?/, "").replace(/^drops\s*$/, "")).toBe("");
    return { run, s0, s1, p0, p1, out: be.out };
  }

  it.each([false, true])("two ports with 2 queue pairs each (queues=2,cq=1, packed_vq=%s) forwarding through the embedded network: flows spread over both pairs, none lost", async (packed) => {
    const { run, p0, p1 } = await macLoop("mq", ["--queues", "2"], { queues: 2, packed });
    for (const p of [...p0, ...p1]) {
      expect(p.rx).toBeGreaterThan(run.total.rxPackets / 20);
      expect(p.tx).toBeGreaterThan(run.total.rxPackets / 20);
    }
  }, 120_000);

  it.each([false, true])("in_order=1 (VIRTIO_F_IN_ORDER, packed_vq=%s): DPDK's in-order paths take our rings, packets circulate, none lost", async (packed) => {
    const { run, s0, s1, out } = await macLoop("io", [], { packed, inOrder: true });
    // Both ports negotiated in-order use (and the ring layout asked for).
    expect((out.match(/negotiated [^\n]*\bin_order\b/g) ?? []).length).toBeGreaterThanOrEqual(2);
    if (packed) expect(out).toMatch(/negotiated [^\n]*\bring_packed\b/);
    expect(run.ports[0].txPackets).toBe(s0.tx);
    expect(run.ports[1].txPackets).toBe(s1.tx);
  }, 60_000);

  describe.each(runtimes)("two ports forwarding through the embedded network under %s", (name, runtime, hugePages) => {
    it.skipIf(name.includes("skipped"))("packets circulate for the whole run and none is lost", async () => {
      const a = sock("a");
      const b = sock("b");
      const be = startBackend(runtime, ["--socket", a, "--socket", b, "--stats", "1"]);
      cleanups.push(() => be.stop());
      await waitFor(() => (be.out.match(/listening/g) ?? []).length >= 2, "the back-end to listen on both sockets", 60_000);
      // mac forwarding: each port sends to the other's MAC, so the learning switch forwards
      // unicast (io forwarding would reflect a port's own source MAC back at it).
      const pmd = await Testpmd.start({
        vdevs: [virtioUserVdev(0, a, MAC0), virtioUserVdev(1, b, MAC1)],
        app: ["--forward-mode=mac", `--eth-peer=0,${MAC1}`, `--eth-peer=1,${MAC0}`, "--tx-first"],
        filePrefix: `fw${process.pid}${seq++}`, hugePages,
      });
      cleanups.push(() => pmd.kill());
      await sleep(2000);
      const mid = (pmd.output.match(/RX-packets:\s+(\d+)/g) ?? []).length;
      await sleep(2000);
      const run = await pmd.stop();
      await sleep(1500);
      const s0 = be.lastStats(` [${a}]`);
      const s1 = be.lastStats(` [${b}]`);
      await be.stop();
      expect(mid).toBeGreaterThan(0);
      // 2 x 32 packets injected by --tx-first circulate; at the stop at most those are in flight.
      const inFlight = run.total.txPackets - run.total.rxPackets;
      expect(run.total.rxPackets).toBeGreaterThan(10_000);
      expect(inFlight).toBeGreaterThanOrEqual(0);
      expect(inFlight).toBeLessThanOrEqual(64);
      // Our side: what one guest sent, the other received; nothing dropped anywhere.
      expect(s0.tx).toBe(s1.rx);
      expect(s1.tx).toBe(s0.rx);
      expect(s0.drops.replace(/dropNoBuffer=\d+ ?/, "").replace(/^drops\s*$/, "")).toBe("");
      expect(s1.drops.replace(/dropNoBuffer=\d+ ?/, "").replace(/^drops\s*$/, "")).toBe("");
      expect(run.ports[0].txPackets).toBe(s0.tx);
      expect(run.ports[1].txPackets).toBe(s1.tx);
    }, 240_000);
  });
});
