/**
 * DPDK's testpmd as a vhost-user front-end (virtio-user PMD) or as the anchor back-end (its
 * own vhost PMD), for tests and benchmarks: start it, let it run, stop it with SIGINT and read
 * the forward statistics it prints. Memory is malloc'ed (`--no-huge`) unless huge pages are
 * asked for; virtio-user shares it with the back-end through memfds either way.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A virtio-user port (`--vdev`) on the vhost-user socket `path`, queues of 256, MAC `mac`: one
 * queue pair, or `queues` pairs with virtio-user's own control queue (cq=1, which turns the
 * pairs on with VQ_PAIRS_SET: SET_VRING_ENABLE to the back-end); `packed` asks for packed rings.
 */
export function virtioUserVdev(i: number, path: string, mac: string, opts: { queues?: number; packed?: boolean; inOrder?: boolean } = {}): string {
  const q = opts.queues ?? 1;
  return `net_virtio_user${i},path=${path},queues=${q}${q > 1 ? ",cq=1" : ""},queue_size=256,mac=${mac}${opts.packed ? ",packed_vq=1" : ""}${opts.inOrder ? ",in_order=1" : ""}`;
}

/** Where testpmd is (Debian: dpdk-dev), or null. */
export function testpmdPath(): string | null {
  for (const p of ["/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"]) if (existsSync(p)) return p;
  try {
    return execFileSync("sh", ["-c", "command -v dpdk-testpmd"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** Whether testpmd can run here, and if not why. */
export function testpmdAvailable(): { ok: boolean; reason: string } {
  if (process.platform !== "linux" || process.arch !== "x64") return { ok: false, reason: "DPDK testpmd runs on x86_64 Linux here" };
  if (!testpmdPath()) return { ok: false, reason: "dpdk-testpmd is not installed (Debian package dpdk-dev)" };
  return { ok: true, reason: "" };
}

/** Free 2 MiB huge pages. */
export function freeHugePages(): number {
  const m = /HugePages_Free:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) : 0;
}

/**
 * Makes sure `pages` 2 MiB huge pages are free, reserving more as root if needed; returns why
 * not where that cannot be done.
 */
export function ensureHugePages(pages: number): { ok: boolean; reason: string } {
  const free = freeHugePages();
  if (free >= pages) return { ok: true, reason: "" };
  if (process.getuid?.() !== 0) return { ok: false, reason: `${free} free 2 MiB huge pages, ${pages} needed, and not root to reserve them` };
  try {
    const total = Number(readFileSync("/proc/sys/vm/nr_hugepages", "utf8").trim());
    writeFileSync("/proc/sys/vm/nr_hugepages", String(total + pages - free));
  } catch (e) {
    return { ok: false, reason: `cannot reserve huge pages: ${(e as Error).message}` };
  }
  const now = freeHugePages();
  return now >= pages ? { ok: true, reason: "" } : { ok: false, reason: `the kernel gave ${now} of ${pages} huge pages` };
}

/** One port's forward statistics, as testpmd prints them when it stops. */
export interface PortStats {
  rxPackets: number;
  rxDropped: number;
  txPackets: number;
  txDropped: number;
}

export interface TestpmdRun {
  ports: PortStats[];
  total: PortStats;
  /** Seconds between "Start" and the stop request. */
  seconds: number;
  output: string;
}

export interface TestpmdOptions {
  /** `--vdev` arguments, one per port. */
  vdevs: string[];
  /** testpmd application arguments (after `--`), e.g. ["--forward-mode=txonly"]. */
  app: string[];
  /** Distinct per concurrent testpmd. */
  filePrefix: string;
  /** CPU both lcores run on (main and forwarding), pinned. Default 0. */
  cpu?: number;
  /** Use 2 MiB huge pages instead of malloc'ed memory. Default false. */
  hugePages?: boolean;
  /** MiB of memory. Default 1024 (no huge pages) or 256 (huge pages). */
  memoryMb?: number;
  /**
   * testpmd commands run once the ports are up (written to a --cmdline-file), e.g. offload
   * settings; end with "start" to forward. Without them testpmd starts forwarding by itself.
   */
  commands?: string[];
  /**
   * Run testpmd's prompt (`-i`, commands on stdin): `stopForwarding()` then stops the streams
   * while the ports stay up, so the device can take what is still on the rings before `quit()`.
   */
  interactive?: boolean;
}

const STATS_RE = /Forward statistics for port (\d+)\s*-+\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)\s+RX-total:\s*\d+\s+TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)/g;
const TOTAL_RE = /Accumulated forward statistics for all ports\+*\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)\s+RX-total:\s*\d+\s+TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)/;

/** Parses the statistics testpmd prints when forwarding stops. */
export function parseForwardStats(output: string): { ports: PortStats[]; total: PortStats } {
  const ports: PortStats[] = [];
  for (const m of output.matchAll(STATS_RE)) {
    ports[Number(m[1])] = { rxPackets: Number(m[2]), rxDropped: Number(m[3]), txPackets: Number(m[4]), txDropped: Number(m[5]) };
  }
  const t = TOTAL_RE.exec(output);
  if (!t || ports.length === 0) throw new Error(`no forward statistics in testpmd's output:\n${output.slice(-3000)}`);
  return { ports, total: { rxPackets: Number(t[1]), rxDropped: Number(t[2]), txPackets: Number(t[3]), txDropped: Number(t[4]) } };
}

function writeCommands(commands: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "vnw-testpmd-"));
  const file = join(dir, "commands");
  writeFileSync(file, `${commands.join("\n")}\n`);
  return file;
}

/** A running testpmd. */
export class Testpmd {
  private out = "";
  private readonly exited: Promise<number | null>;
  private started = 0;

  private constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stdout!.on("data", (d) => { this.out += String(d); });
    child.stderr!.on("data", (d) => { this.out += String(d); });
    this.exited = new Promise((r) => child.on("exit", (code) => r(code)));
  }

  /** Starts testpmd; resolves once it forwards (or rejects with its output if it exits first). */
  static async start(opts: TestpmdOptions, startTimeoutMs = 15_000): Promise<Testpmd> {
    const bin = testpmdPath();
    if (!bin) throw new Error("dpdk-testpmd is not installed");
    const cpu = opts.cpu ?? 0;
    const mem = opts.hugePages
      ? ["--in-memory", "--single-file-segments", "-m", String(opts.memoryMb ?? 256)]
      : ["--no-huge", "--no-shconf", "-m", String(opts.memoryMb ?? 1024)];
    const args = [
      "--lcores", `(0,1)@${cpu}`, "--no-pci", ...mem, `--file-prefix=${opts.filePrefix}`, "--log-level=lib.eal:error",
      ...opts.vdevs.flatMap((v) => ["--vdev", v]),
      "--", ...(opts.interactive ? ["-i", `--cmdline-file=${writeCommands(opts.commands ?? ["start"])}`]
        : [opts.commands ? `--cmdline-file=${writeCommands(opts.commands)}` : "--auto-start", "--stats-period", "1"]),
      "--total-num-mbufs=16384", ...opts.app,
    ];
    // At the prompt, testpmd's stdout is a pipe and its replies would sit in stdio's buffer: line-buffer it.
    const t = new Testpmd(spawn("taskset", ["-c", String(cpu), ...(opts.interactive ? ["stdbuf", "-oL"] : []), bin, ...args], { stdio: [opts.interactive ? "pipe" : "ignore", "pipe", "pipe"] }));
    const t0 = Date.now();
    while (!(opts.interactive ? /packet forwarding - ports=/ : /Press enter to exit|Port statistics/).test(t.out)) {
      const gone = await Promise.race([t.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 50))]);
      if (gone) throw new Error(`testpmd exited before forwarding:\n${t.out.slice(-3000)}`);
      if (Date.now() - t0 > startTimeoutMs) {
        t.child.kill("SIGKILL");
        throw new Error(`testpmd did not start forwarding within ${startTimeoutMs} ms:\n${t.out.slice(-3000)}`);
      }
    }
    t.started = performance.now();
    return t;
  }

  /** Everything testpmd printed so far. */
  get output(): string { return this.out; }

  /** Stops forwarding (SIGINT), waits for testpmd to exit and returns its statistics. */
  async stop(timeoutMs = 15_000): Promise<TestpmdRun> {
    const seconds = (performance.now() - this.started) / 1000;
    this.child.kill("SIGINT");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return { ...parseForwardStats(this.out), seconds, output: this.out };
  }

  /**
   * Interactive only: stops forwarding (`stop`) and returns the statistics it prints; the ports
   * stay up, so what testpmd already queued on a ring is still there for the device to take.
   */
  async stopForwarding(timeoutMs = 15_000): Promise<TestpmdRun> {
    const seconds = (performance.now() - this.started) / 1000;
    const from = this.out.length;
    this.child.stdin!.write("stop\n");
    const t0 = Date.now();
    while (!TOTAL_RE.test(this.out.slice(from))) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`testpmd did not stop forwarding within ${timeoutMs} ms:\n${this.out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = this.out.slice(from);
    return { ...parseForwardStats(out), seconds, output: out };
  }

  /** Interactive only: `quit` (the ports close, the back-end stops the rings); waits for the exit. */
  async quit(timeoutMs = 15_000): Promise<void> {
    this.child.stdin!.end("quit\n");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills testpmd without waiting for statistics. */
  kill(): void { this.child.kill("SIGKILL"); }
}
