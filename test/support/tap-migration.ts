/**
 * The tap-side migration scenario (test/e2e/migration-tap.test.ts and the bench): a test
 * namespace with a Linux bridge (192.0.2.1/24) and a TCP sink behind it that reads at a fixed
 * rate; a QEMU guest (192.0.2.2) sends a file to the sink while it migrates back and forth
 * between two QEMU processes whose NICs are on two taps of that bridge, A and B. The NIC is
 * our vhost-user back-end (one back-end process per tap, `--tap`), or QEMU's own virtio-net on
 * the tap (the reference). The bridge is where the guest's move must be announced: a RARP or
 * a gratuitous ARP from the guest's MAC after each migration, captured with tshark.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { CSUMERR_FN } from "../../host/guests/shell.js";
import { MigrationRun, type Migration } from "./migration.js";
import { Netns } from "./netns.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TapMigrationOptions {
  /** Our back-end on each tap, or QEMU's own virtio-net (`-netdev tap,vhost=off`). */
  nic: "ours" | "qemu";
  migrations: number;
  /** Extra virtio-net-pci properties for every QEMU (e.g. "guest_announce=off"). */
  deviceProps?: string;
  /** The built CLI and the namespace helper (test/integration/host-helper.mjs). */
  cli: string;
  helper: string;
  /** Bytes the guest sends (a multiple of 64 KiB; default 24 MiB) and the sink's read rate in bytes/s (default 1.5 MB/s). */
  bytes?: number;
  rate?: number;
}

/** An announcement of the guest's MAC seen on the bridge. */
export interface Announcement { at: number; kind: "rarp" | "garp" }

export interface TapMigrationResult {
  /** The guest's sha256 of what it sent, and what the sink received. */
  sentSha256: string | undefined;
  received: { bytes: number; sha256: string } | null;
  markers: Map<string, string>;
  migrations: Migration[];
  announcements: Announcement[];
  /** What the back-ends printed (ours only). */
  backendOut: string;
}

export const MIGRATING_MAC = "52:54:00:aa:bb:02";

/** Runs the scenario; the caller asserts. Everything it started is gone when it returns. */
export async function tapMigration(o: TapMigrationOptions): Promise<TapMigrationResult> {
  const bytes = o.bytes ?? 24 << 20;
  const ns = Netns.create();
  const children: ChildProcess[] = [];
  let backendOut = "";
  let run: MigrationRun | undefined;
  let stopCapture = () => {};
  const taps = [Netns.tapName(), Netns.tapName()];
  const sockets = taps.map((t) => `/tmp/vnw-migtap-${process.pid}-${t}.sock`);
  try {
    ns.ip(["link", "add", "br0", "type", "bridge"]);
    ns.ip(["addr", "add", "192.0.2.1/24", "dev", "br0"]);
    ns.ip(["link", "set", "br0", "up"]);
    // Bridges a tap once it exists in our namespace (its owner has opened it).
    const bridge = async (tap: string) => {
      for (let i = 0; i < 200 && !existsSync(`/sys/class/net/${tap}`); i++) await sleep(25);
      ns.adopt(tap);
      ns.ip(["link", "set", tap, "master", "br0", "up"]);
    };
    if (o.nic === "ours") {
      for (const [i, tap] of taps.entries()) {
        const b = spawn(process.execPath, [o.cli, "vhost-user", "--socket", sockets[i], "--tap", tap], { stdio: ["ignore", "pipe", "pipe"] });
        children.push(b);
        b.stdout!.on("data", (d) => { backendOut += d; });
        b.stderr!.on("data", (d) => { backendOut += d; });
      }
      for (let i = 0; i < 200 && !sockets.every(existsSync); i++) await sleep(25);
      for (const tap of taps) await bridge(tap);
    }

    // Announcements of the guest's MAC on the bridge.
    const announcements: Announcement[] = [];
    const capture = spawn("ip", ["netns", "exec", ns.name, "tshark", "-l", "-n", "-i", "br0", "-f", `(arp or rarp) and ether src ${MIGRATING_MAC}`,
      "-T", "fields", "-E", "separator=,", "-e", "frame.time_epoch", "-e", "arp.opcode", "-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4"], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    // tshark captures through a dumpcap child: the whole process group goes at the end.
    stopCapture = () => { try { process.kill(-capture.pid!, "SIGKILL"); } catch { /* gone */ } };
    let captureReady = false;
    capture.stderr!.on("data", (d) => { if (String(d).includes("Capturing on")) captureReady = true; });
    capture.stdout!.setEncoding("utf8");
    let pending = "";
    capture.stdout!.on("data", (d: string) => {
      pending += d;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const [t, op, src, dst] = line.split(",");
        if (op === "3") announcements.push({ at: Number(t) * 1000, kind: "rarp" });
        else if (src && src === dst) announcements.push({ at: Number(t) * 1000, kind: "garp" });
      }
    });
    for (let i = 0; i < 400 && !captureReady; i++) await sleep(25);
    if (!captureReady) throw new Error("tshark did not start capturing on the bridge");

    // The sink, reading at a fixed rate so the transfer outlasts the migrations.
    let atSink = 0;
    let received: { bytes: number; sha256: string } | null = null;
    const sink = spawn("ip", ["netns", "exec", ns.name, process.execPath, o.helper, "tcp-slow-sink", "192.0.2.1", "5001", String(o.rate ?? 1_500_000)], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(sink);
    sink.stderr!.on("data", (d) => { for (const m of String(d).matchAll(/progress (\d+)/g)) atSink = Number(m[1]); });
    sink.stdout!.on("data", (d) => { try { received = JSON.parse(String(d)); } catch { /* partial line */ } });

    const script = `
dd if=/dev/urandom of=/tmp/tx bs=65536 count=${bytes >> 16} 2>/dev/null
echo "VNW txsha $(sha256sum /tmp/tx | cut -d' ' -f1)"
nc 192.0.2.1 5001 < /tmp/tx && echo "VNW txdone"
${CSUMERR_FN}
echo "VNW snmp tcp $(csumerr Tcp) udp $(csumerr Udp)"
sleep 600
`;
    const tapOf = (m: number) => taps[m % 2];
    run = new MigrationRun(
      { script, mac: MIGRATING_MAC, deviceProps: o.deviceProps },
      (m) => (o.nic === "ours" ? { socket: sockets[m % 2] } : { qemuTap: tapOf(m) }),
      // QEMU opens (and so creates) its tap as it starts: bridge it before the guest moves there.
      async (m) => { if (o.nic === "qemu") await bridge(tapOf(m)); },
    );
    await run.start();
    await run.guest.waitFor(/VNW txsha/, 180_000);
    await sleep(1000);
    for (let m = 1; m <= o.migrations; m++) {
      await run.migrate(m, () => atSink);
      await sleep(700);
    }
    await run.guest.waitFor(/VNW snmp/, 120_000);
    for (let i = 0; i < 100 && !received; i++) await sleep(100);
    // Announcements trail a migration by up to a few hundred ms (QEMU's announce timer).
    await sleep(500);
    return { sentSha256: run.markers().get("txsha"), received, markers: run.markers(), migrations: run.migrations, announcements, backendOut };
  } catch (e) {
    throw new Error(`${(e as Error).message}\nback-ends:\n${backendOut.slice(-3000)}`);
  } finally {
    run?.close();
    stopCapture();
    for (const c of children) c.kill("SIGKILL");
    ns.destroy();
  }
}
