/**
 * Debian's Chromium, headless, through playwright-core (no browser download), for the browser
 * tests: whether it can run here, and a page whose console errors and uncaught exceptions are
 * collected.
 */
import { existsSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { v86GuestAvailable } from "../../host/guests/v86.js";

export const CHROMIUM = "/usr/bin/chromium";
let playwright: typeof import("playwright-core") | null = null;
try { playwright = await import("playwright-core"); } catch { playwright = null; }

/** Why Chromium tests cannot run here ("" if they can); with `v86`, also the i386 guest. */
export function chromiumUnavailable(v86 = false): string {
  if (!existsSync(CHROMIUM)) return `no ${CHROMIUM} (apt-get install chromium)`;
  if (!playwright) return "playwright-core is not installed";
  const g = v86 ? v86GuestAvailable() : { ok: true, reason: "" };
  return g.ok ? "" : g.reason;
}

/** Runs `fn` with a fresh page in a fresh headless Chromium; `errors` collects console errors and page exceptions. */
export async function withPage<T>(fn: (page: Page, errors: string[]) => Promise<T>): Promise<T> {
  const browser: Browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    return await fn(page, errors);
  } finally {
    await browser.close();
  }
}
