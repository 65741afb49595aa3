/** The commands' log: levels, their flag, and a rate-limited console writer. */
import type { LogLevel } from "../vhost-user/backend.js";
import { rateLimited } from "./rate-limit.js";

export const LOG_LEVELS: LogLevel[] = ["error", "warn", "info", "debug"];

/** The index of `--log-level`'s value in LOG_LEVELS; throws the usage error for anything else. */
export function parseLogLevel(value: string): number {
  const level = LOG_LEVELS.indexOf(value as LogLevel);
  if (level < 0) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

/**
 * A log that prints lines up to `level` with a timestamp (errors and warnings to `err`), and
 * counts rather than prints identical events (numbers aside) beyond 5 per 10 s.
 */
export function consoleLog(level: number, out: (s: string) => void, err: (s: string) => void): (l: LogLevel, m: string) => void {
  return rateLimited((l, m) => { if (LOG_LEVELS.indexOf(l) <= level) (l === "error" || l === "warn" ? err : out)(`${new Date().toISOString()} ${l}: ${m}`); });
}
