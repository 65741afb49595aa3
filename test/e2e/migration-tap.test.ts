/**
 * Live migration on the tap side (test/support/tap-migration.ts): a guest sends 24 MiB to a
 * sink behind a Linux bridge while it migrates five times between QEMUs on two taps of that
 * bridge. Judged by the sink (sha256), the guest's kernel (no checksum errors), QEMU
 * (every migration completes, during the transfer) and the bridge (the guest's move announced
 * after every migration). Once with QEMU's own virtio-net on the taps, the reference that shows
 * the scenario itself is sound; then with our back-end on each tap, the guest announcing itself
 * (GUEST_ANNOUNCE: QEMU keeps the control queue and asks the guest), and with guest_announce=off,
 * where QEMU asks the back-end to announce (VHOST_USER_SEND_RARP).
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { tapMigration, type TapMigrationOptions } from "../support/tap-migration.js";
import { avail, cli, helper } from "./qemu-env.js";

const MIGRATIONS = 5;
const BYTES = 24 << 20;

interface Variant { name: string; nic: TapMigrationOptions["nic"]; deviceProps?: string; announcedBy: "garp" | "rarp" | "any" }

describe.skipIf(!avail.ok || !existsSync(cli))(`live migration on a bridge of taps${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  it.each<Variant>([
    { name: "QEMU's own virtio-net on the taps (reference)", nic: "qemu", announcedBy: "any" },
    { name: "our back-end on each tap, the guest announces (GUEST_ANNOUNCE)", nic: "ours", announcedBy: "garp" },
    { name: "our back-end on each tap, guest_announce=off: the back-end announces (SEND_RARP)", nic: "ours", deviceProps: "guest_announce=off", announcedBy: "rarp" },
  ])("$name: five migrations during a transfer, sha256 equal, no checksum errors, each move announced", async (v) => {
    const r = await tapMigration({ nic: v.nic, deviceProps: v.deviceProps, migrations: MIGRATIONS, cli, helper, bytes: BYTES });
    const context = `\nmigrations ${JSON.stringify(r.migrations)}\nannouncements ${JSON.stringify(r.announcements)}\n${r.backendOut.slice(-2000)}`;
    expect(r.migrations, context).toHaveLength(MIGRATIONS);
    // Every migration happened during the transfer.
    for (const m of r.migrations) expect(m.atSink, context).toBeLessThan(BYTES);
    expect(r.markers.has("txdone"), context).toBe(true);
    expect(r.received, context).toEqual({ bytes: BYTES, sha256: r.sentSha256 });
    expect(r.markers.get("snmp")).toBe("tcp 0 udp 0");
    // The bridge heard where the guest went after each migration (and by whom it was told).
    for (const m of r.migrations) {
      const told = r.announcements.filter((a) => a.at >= m.startedAt && a.at <= m.completedAt + 3000 && (v.announcedBy === "any" || a.kind === v.announcedBy));
      expect(told.length, `migration at ${m.startedAt}: no ${v.announcedBy} announcement${context}`).toBeGreaterThan(0);
    }
    console.log(`${v.name}: downtimes (ms, QEMU) ${r.migrations.map((m) => m.downtime).join(", ")}; announcements ${r.announcements.map((a) => a.kind).join(" ")}`);
  }, 400_000);
});
