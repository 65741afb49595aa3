/**
 * `virtio-net-wasm web` in Chromium (headless, playwright-core, Debian's binary): the page
 * boots two Debian i386 guests in v86 with their NICs on this engine, in the page; guest A gets
 * a lease from the page's gateway, pings it, and pings guest B; both negotiated offloads v86's
 * own device never offers; the page's frames/s chart has data; the console has no errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWeb, type WebServer } from "../../host/cli/web.js";
import { chromiumUnavailable, withPage } from "./chromium.js";

const why = chromiumUnavailable(true);

interface GuestView { name: string; markers: Record<string, string>; features: string[]; lines: string[] }
interface PageState { guests: GuestView[]; done: boolean; error: string | null; samples: number[] }

describe.skipIf(why !== "")(`the web page: v86 guests on this NIC in Chromium${why ? ` (skipped: ${why})` : ""}`, () => {
  let web: WebServer;
  beforeAll(async () => { web = await startWeb(0); });
  afterAll(async () => { await web?.close(); });

  it("two guests get leases, ping the gateway and each other, with offloads negotiated, and the page shows it", async () => {
    await withPage(async (page, errors) => {
      await page.goto(`http://127.0.0.1:${web.port}/`);
      // A plain projection: the page's state holds the adapters themselves.
      const state = async () => page.evaluate(() => {
        const v = (window as unknown as { vnw: PageState }).vnw;
        return { done: v.done, error: v.error, samples: v.samples, guests: v.guests.map((g) => ({ name: g.name, markers: g.markers, features: g.features, lines: g.lines })) };
      });
      await page.waitForFunction(() => (window as unknown as { vnw?: PageState }).vnw !== undefined, undefined, { timeout: 20_000 });
      for (let i = 0; i < 240; i++) {
        const s = await state();
        if (s.error || s.done) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      const s = await state();
      const tail = s.guests.map((g) => `${g.name}:\n${g.lines.slice(-10).join("\n")}`).join("\n");
      expect(s.error, s.error ?? "").toBeNull();
      expect(s.done, tail).toBe(true);
      const [a, b] = s.guests;
      expect(a.markers.lease).toMatch(/^10\.215\.0\.1\d\d$/);
      expect(b.markers.lease).toMatch(/^10\.215\.0\.1\d\d$/);
      expect(a.markers.gwping).toBe("ok");
      expect(a.markers.peer).toMatch(/^ok/);
      for (const g of [a, b]) expect(g.features).toEqual(expect.arrayContaining(["csum", "guest_csum", "mrg_rxbuf", "event_idx"]));
      await new Promise((r) => setTimeout(r, 1200));
      expect(Math.max(...(await state()).samples)).toBeGreaterThan(0);
      expect(await page.textContent("#guests")).toMatch(/10\.215\.0\.1\d\d/);
      expect(errors, errors.join("\n")).toEqual([]);
    });
  }, 180_000);
});
