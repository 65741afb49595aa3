/**
 * Live migration of a real guest whose NIC is served by our vhost-user back-end: two sockets on
 * one back-end process (the embedded network, its uplink reaching a TCP sink on the host's
 * loopback), a QEMU guest on the first, and five migrations back and forth between fresh QEMU
 * processes (`-incoming tcp:127.0.0.1:PORT`, each on the other socket) while the guest sends
 * 24 MiB to the sink (every migration checked to fall before its end). The transfer completes with the same sha256 on both ends, and the guest's
 * kernel counts no checksum errors: every page our devices wrote during a migration was logged.
 * The guest lacks GUEST_ANNOUNCE (guest_announce=off), so QEMU has the back-end announce it
 * after each migration (SEND_RARP, onto the embedded switch). The same on a bridge of taps, with
 * QEMU's own virtio-net as the reference: migration-tap.test.ts.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { CSUMERR_FN, dhcpScript } from "../../host/guests/shell.js";
import { libslirp } from "../../host/runtime/libslirp.js";
import { MigrationRun } from "../support/migration.js";
import { cli, sleep } from "./qemu-env.js";
import { guestAvailable } from "../../host/guests/qemu.js";

const avail = guestAvailable();
let slirp = true;
try { libslirp(); } catch { slirp = false; }
const MAC = "52:54:00:aa:bb:01";

describe.skipIf(!avail.ok || !slirp || !existsSync(cli))(`live migration, five times, during a transfer${avail.ok ? (slirp ? "" : " (skipped: no libslirp0)") : ` (skipped: ${avail.reason})`}`, () => {
  let run: MigrationRun | undefined;
  let backend: ReturnType<typeof spawn> | undefined;
  afterAll(() => {
    run?.close();
    backend?.kill("SIGTERM");
  });

  it("the transfer completes with the same sha256, no checksum errors", async () => {
    // The sink: one connection, hashed.
    let got: { bytes: number; sha256: string } | null = null;
    let sofar = 0;
    const sink = createServer((c) => {
      const h = createHash("sha256");
      let bytes = 0;
      c.on("data", (d) => { h.update(d); bytes += d.length; sofar = bytes; });
      c.on("end", () => { got = { bytes, sha256: h.digest("hex") }; });
    });
    await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
    const port = (sink.address() as AddressInfo).port;
    const sockets = ["a", "b"].map((s) => `/tmp/vnw-mig-${process.pid}-${s}.sock`);
    let out = "";
    // A TX limit stretches the transfer over the migrations (24 MiB at 12 Mbit/s: about 17 s).
    backend = spawn(process.execPath, [cli, "vhost-user", "--socket", sockets[0], "--socket", sockets[1], "--net", "198.51.100.0", "--tx-rate", "12Mbit"], { stdio: ["ignore", "pipe", "pipe"] });
    backend.stdout!.on("data", (d) => { out += d; });
    backend.stderr!.on("data", (d) => { out += d; });
    for (let i = 0; i < 100 && !sockets.every(existsSync); i++) await sleep(50);
    const script = `${dhcpScript(["router"], "", 5)}
dd if=/dev/urandom of=/tmp/tx bs=65536 count=384 2>/dev/null
echo "VNW txsha $(sha256sum /tmp/tx | cut -d' ' -f1)"
nc 198.51.100.1 ${port} < /tmp/tx && echo "VNW txdone"
${CSUMERR_FN}
echo "VNW snmp tcp $(csumerr Tcp) udp $(csumerr Udp)"
# Stay up until the test is done with this machine (the script's end powers the guest off).
sleep 600
`;
    // guest_announce=off: QEMU asks the back-end to announce the guest (SEND_RARP) on the switch.
    run = new MigrationRun({ script, mac: MAC, deviceProps: "guest_announce=off" }, (m) => ({ socket: sockets[m % 2] }));
    await run.start();
    await run.guest.waitFor(/VNW txsha/, 180_000);
    const txsha = run.markers().get("txsha");
    await sleep(1000);
    for (let m = 1; m <= 5; m++) {
      try {
        await run.migrate(m, () => sofar);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${out.slice(-2000)}`);
      }
      console.log(`migration ${m}: ${sofar} bytes at the sink`);
      await sleep(700);
    }
    // Every migration happened during the transfer.
    for (const m of run.migrations) expect(m.atSink).toBeLessThan(384 * 65536);
    const downtimes = run.migrations.map((m) => m.downtime);
    try {
      await run.guest.waitFor(/VNW snmp/, 60_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nsink ${sofar} bytes; back-end:\n${out.slice(-3000)}`);
    }
    for (let i = 0; i < 50 && !got; i++) await sleep(100);
    const markers = run.markers();
    expect(markers.has("txdone")).toBe(true);
    expect(got).toEqual({ bytes: 384 * 65536, sha256: txsha });
    expect(markers.get("snmp")).toBe("tcp 0 udp 0");
    expect(out).toMatch(/dirty log: \d+ bytes/);
    expect(out.match(new RegExp(`announced ${MAC} \\(RARP\\)`, "g"))?.length ?? 0).toBeGreaterThanOrEqual(5);
    console.log(`migration downtimes (ms, QEMU's query-migrate): ${downtimes.join(", ")}`);
    sink.close();
  }, 400_000);
});
