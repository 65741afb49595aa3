/**
 * What live migration costs. The data path with dirty logging on vs off (the core's TX and RX
 * loops on the driver model, one log bit per 4 KiB page set for every page the device writes),
 * and the downtime QEMU reports for a guest migrating during a TCP transfer, with our back-end on
 * the taps next to QEMU's own virtio-net on the same taps (test/support/tap-migration.ts).
 */
import { fileURLToPath } from "node:url";
import { guestAvailable } from "../host/guests/qemu.js";
import { netTestsAvailable } from "../test/support/netns.js";
import { tapMigration } from "../test/support/tap-migration.js";
import { frameOfSize } from "./device.js";
import { compare, fmt, table } from "./harness.js";
import { ringBench, RING, type RingBench } from "./ring-loop.js";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const helper = fileURLToPath(new URL("../../test/integration/host-helper.mjs", import.meta.url));

/** Turns the device's dirty log on: a bitmap over the bench's guest RAM, in its top pages (the rings and buffers are at the bottom). */
function logOn(b: RingBench, guestBytes: number): void {
  const bytes = guestBytes / 4096 / 8;
  b.dev.setDirtyLog(b.guestBase + guestBytes - bytes, bytes);
}

export function dirtyLogBench(): void {
  const rows = [["path", "size", "log off frames/s", "log on frames/s", "on/off"]];
  const guestBytes = 16 << 20;
  for (const size of [64, 1514]) {
    const frame = frameOfSize(size);
    const tx = { off: ringBench({ frame }), on: ringBench({ frame }) };
    logOn(tx.on, guestBytes);
    const txLen = tx.off.frameLen;
    const txLoop = (b: RingBench) => (n: number) => {
      for (let r = 0; r < n; r++) {
        b.refillTx();
        b.dev.processTx(() => txLen);
      }
    };
    const t = compare({ off: txLoop(tx.off), on: txLoop(tx.on) });
    rows.push(["TX", `${size}`, fmt(t.off.rate * RING), fmt(t.on.rate * RING), t.on.ratio.toFixed(2)]);

    const rx = { off: ringBench({ frame }), on: ringBench({ frame }) };
    logOn(rx.on, guestBytes);
    const rxLoop = (b: RingBench) => (n: number) => {
      for (let r = 0; r < n; r++) {
        b.refillRx();
        for (let i = 0; i < RING; i++) b.dev.receive(frame);
        b.dev.flushRx();
      }
    };
    const x = compare({ off: rxLoop(rx.off), on: rxLoop(rx.on) });
    rows.push(["RX", `${size}`, fmt(x.off.rate * RING), fmt(x.on.rate * RING), x.on.ratio.toFixed(2)]);
  }
  console.log("\nDirty logging (live migration): null backend, driver model, ring of 256; frames/s with the log off and on (median of 5 interleaved rounds; on/off the median of per-round ratios)");
  table(rows);
}

export async function migrationBench(): Promise<void> {
  const guestOk = guestAvailable();
  const a = guestOk.ok ? netTestsAvailable() : guestOk;
  if (!a.ok) {
    console.log(`\nLive migration downtime: skipped (${a.reason})`);
    return;
  }
  const MIGRATIONS = 5;
  const downtimes: Record<"ours" | "qemu", number[]> = { ours: [], qemu: [] };
  // Alternating, the same scenario for both: the machine is shared and noisy.
  for (const nic of ["ours", "qemu"] as const) {
    const r = await tapMigration({ nic, migrations: MIGRATIONS, cli, helper });
    if (r.received?.sha256 !== r.sentSha256) throw new Error(`${nic}: the transfer did not arrive intact`);
    downtimes[nic].push(...r.migrations.map((m) => m.downtime));
  }
  const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];
  const row = (name: string, xs: number[]) => [name, `${median(xs)}`, `${Math.min(...xs)}-${Math.max(...xs)}`, xs.join(" ")];
  console.log(`\nLive migration of a QEMU guest (TCG, 256 MiB) during a 24 MiB TCP transfer to a sink behind a bridge of two taps; ${MIGRATIONS} migrations each; downtime in ms as QEMU's query-migrate reports it`);
  table([
    ["NIC", "median", "range", "each"],
    row("ours (vhost-user, --tap, dirty logging)", downtimes.ours),
    row("QEMU virtio-net, tap,vhost=off (reference)", downtimes.qemu),
    ["ours/reference (medians)", (median(downtimes.ours) / median(downtimes.qemu)).toFixed(2), "", ""],
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  dirtyLogBench();
  await migrationBench();
}
