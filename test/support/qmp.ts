/** A minimal QMP client (QEMU's JSON monitor) over a unix socket, for tests that migrate guests. */
import { connect, type Socket } from "node:net";

export class Qmp {
  private buf = "";
  private waiting: ((v: Record<string, unknown>) => void)[] = [];
  private constructor(private readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ("return" in msg || "error" in msg) this.waiting.shift()?.(msg);
      }
    });
    // QEMU gone: whoever waits for an answer gets an error, not a hang.
    sock.on("close", () => {
      for (const w of this.waiting.splice(0)) w({ error: { class: "Closed", desc: "the QMP connection closed (QEMU exited?)" } });
    });
  }

  /** Connects (retrying while QEMU starts) and leaves capabilities negotiation mode. */
  static async open(path: string, timeoutMs = 20_000): Promise<Qmp> {
    const t0 = Date.now();
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.on("error", reject);
        });
        const q = new Qmp(sock);
        await q.execute("qmp_capabilities");
        return q;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Runs a command; resolves with its `return`, rejects with its `error`. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push((m) => ("error" in m ? reject(new Error(`${command}: ${JSON.stringify(m.error)}`)) : resolve(m.return)));
      this.sock.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
