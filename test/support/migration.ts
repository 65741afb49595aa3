/**
 * Live-migrating a QEMU guest back and forth during a transfer, for the migration tests and the
 * bench: the first QEMU boots the guest, each next one starts with `-incoming tcp:127.0.0.1:PORT`
 * and takes it over by QMP `migrate`; the old one is killed once the migration completed.
 * Which NIC each QEMU gets (our back-end's socket, or QEMU's own virtio-net on a tap) is the
 * caller's.
 */
import { boot, type BootOptions, type Guest } from "../../host/guests/qemu.js";
import { Qmp } from "./qmp.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One completed migration, as QEMU's query-migrate and the sink saw it. */
export interface Migration {
  /** Downtime in ms as QEMU reports it. */
  downtime: number;
  /** When the `migrate` command was sent and when the source reported it completed (Date.now()). */
  startedAt: number;
  completedAt: number;
  /** Bytes at the sink when it completed. */
  atSink: number;
}

export class MigrationRun {
  readonly guests: Guest[] = [];
  readonly migrations: Migration[] = [];
  private readonly qmps: Qmp[] = [];
  private readonly tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private current: { guest: Guest; qmp: Qmp } | null = null;

  /**
   * @param nic the NIC options of QEMU number `m` (0 boots the guest; 1, 2, ... are destinations).
   * @param beforeMigrate runs once destination `m` is up, before `migrate` (e.g. to bridge its tap).
   */
  constructor(
    private readonly base: Omit<BootOptions, "socket" | "qmp" | "incoming">,
    private readonly nic: (m: number) => Partial<BootOptions> & { socket?: string },
    private readonly beforeMigrate: (m: number) => Promise<void> | void = () => {},
  ) {}

  /** The guest that runs now. */
  get guest(): Guest {
    if (!this.current) throw new Error("not started");
    return this.current.guest;
  }

  /** Boots the first QEMU. */
  async start(): Promise<Guest> {
    this.current = await this.launch(0);
    await this.beforeMigrate(0);
    return this.current.guest;
  }

  /**
   * Migrates to a new QEMU (number `m`), waits until the source reports completion, and kills
   * the source. `atSink` reads the sink's byte count.
   */
  async migrate(m: number, atSink: () => number): Promise<Migration> {
    const src = this.current!;
    const port = 4400 + ((process.pid + m * 37) % 600);
    const dst = await this.launch(m, `tcp:127.0.0.1:${port}`);
    await this.beforeMigrate(m);
    const startedAt = Date.now();
    const ask = (cmd: string, args?: Record<string, unknown>) => src.qmp.execute(cmd, args).catch((e: Error) => {
      const tail = (g: Guest) => g.lines.slice(-8).join("\n");
      throw new Error(`migration ${m}: ${e.message}\nsource console:\n${tail(src.guest)}\ndestination console:\n${tail(dst.guest)}`);
    });
    await ask("migrate", { uri: `tcp:127.0.0.1:${port}` });
    for (let t = 0; ; t++) {
      const s = (await ask("query-migrate")) as { status?: string; downtime?: number; "error-desc"?: string };
      if (s.status === "completed") {
        const done = { downtime: s.downtime ?? -1, startedAt, completedAt: Date.now(), atSink: atSink() };
        this.migrations.push(done);
        src.qmp.close();
        src.guest.child.kill("SIGKILL");
        await src.guest.exited;
        this.current = dst;
        return done;
      }
      if (s.status === "failed") throw new Error(`migration ${m} failed: ${s["error-desc"]}`);
      if (t > 1200) throw new Error(`migration ${m} did not complete in 120 s (status ${s.status})`);
      await sleep(100);
    }
  }

  /** The markers every QEMU's console printed, merged (the guest's story across its hosts). */
  markers(): Map<string, string> {
    return new Map(this.guests.flatMap((g) => [...g.markers()]));
  }

  close(): void {
    for (const q of this.qmps) q.close();
    for (const g of this.guests) g.child.kill("SIGKILL");
  }

  private async launch(m: number, incoming?: string): Promise<{ guest: Guest; qmp: Qmp }> {
    const qmpPath = `/tmp/vnw-mig-${this.tag}-q${m}.sock`;
    const guest = boot({ socket: "", ...this.base, ...this.nic(m), qmp: qmpPath, ...(incoming ? { incoming } : {}) });
    this.guests.push(guest);
    const qmp = await Qmp.open(qmpPath);
    this.qmps.push(qmp);
    return { guest, qmp };
  }
}
