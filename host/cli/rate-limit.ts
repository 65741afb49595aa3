/**
 * Keeps a flood of alike log lines from drowning the log (a front-end reconnecting in a tight
 * loop, a guest repeating the same mistake): a line passes unless `burst` lines of the same shape
 * (numbers folded) already passed in the current window; once the window is over, the next line
 * of that shape first says how many were held back.
 */
export type LogFn = (level: "error" | "warn" | "info" | "debug", message: string) => void;

export function rateLimited(log: LogFn, burst = 5, windowMs = 10_000, now: () => number = Date.now): LogFn {
  const seen = new Map<string, { since: number; passed: number; held: number }>();
  return (level, message) => {
    const key = `${level} ${message.replace(/\d+/g, "#")}`;
    const t = now();
    let s = seen.get(key);
    if (!s || t - s.since >= windowMs) {
      if (s && s.held > 0) log(level, `(${s.held} more like "${message}" in ${Math.round((t - s.since) / 1000)} s, not shown)`);
      s = { since: t, passed: 0, held: 0 };
      seen.set(key, s);
      // Forget shapes that went quiet, so the table stays small.
      if (seen.size > 1000) for (const [k, v] of seen) if (t - v.since >= windowMs) seen.delete(k);
    }
    if (s.passed < burst) {
      s.passed++;
      log(level, message);
    } else s.held++;
  };
}
