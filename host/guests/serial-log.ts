/**
 * A guest's console as lines: waits for a line matching a pattern, and reads "VNW key value"
 * lines as markers. Shared by the QEMU and v86 guests.
 */
export class SerialLog {
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  private buf = "";

  /** Appends console output (any chunking). */
  feed(text: string): void {
    this.buf += text;
    let i: number;
    while ((i = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, i).replace(/\r$/, "");
      this.buf = this.buf.slice(i + 1);
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        const m = line.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    }
  }

  /** Resolves with the first output line (past or future) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    for (const l of this.lines) {
      const m = l.match(re);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`guest did not print ${re} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-15).join("\n")}`)), timeoutMs);
      this.waiters.push({ re, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  }

  /** All "VNW key value" lines as a map. */
  markers(): Map<string, string> {
    const m = new Map<string, string>();
    for (const l of this.lines) {
      const x = l.match(/VNW (\S+)\s*(.*)$/);
      if (x) m.set(x[1], x[2]);
    }
    return m;
  }
}
