/**
 * A guest in a browser page reaches a guest in the host process through the WebSocket relay:
 * the page (Chromium, playwright-core) boots one v86 guest whose switch joins the relay's
 * network (no gateway in the page: the relay's serves DHCP); a v86 guest in this process sits
 * on that network. The page's guest sends 1 MiB by TCP; both ends' sha256 must match and neither
 * kernel may count a checksum error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRelay, type Relay } from "../../host/cli/relay.js";
import { startWeb, type WebServer } from "../../host/cli/web.js";
import { bootV86Guest, type V86Guest } from "../../host/guests/v86.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";
import { dhcpScript } from "../../host/guests/shell.js";
import { chromiumUnavailable, withPage } from "./chromium.js";

const why = chromiumUnavailable(true);
const HOST_GUEST = "10.215.0.220";

describe.skipIf(why !== "")(`a page guest and a host-process guest through the relay${why ? ` (skipped: ${why})` : ""}`, () => {
  let relay: Relay;
  let web: WebServer;
  let hostGuest: V86Guest;
  beforeAll(async () => {
    relay = await startRelay("127.0.0.1", 0, embeddedNetwork({ subnet: "10.215.0.0" }));
    web = await startWeb(0, "127.0.0.1", {
      scripts: {
        a: `${dhcpScript()}
dd if=/dev/urandom of=/tmp/d bs=65536 count=16 2>/dev/null
echo "VNW sent $(sha256sum /tmp/d | cut -d' ' -f1)"
for i in $(seq 1 60); do nc ${HOST_GUEST} 5000 < /tmp/d 2>/dev/null && break; sleep 0.5; done
echo "VNW csumerr $(csumerr Tcp)"
echo "VNW done"`,
      },
    });
    hostGuest = await bootV86Guest({
      network: relay.network.sw, mode: "engine",
      script: `${dhcpScript()}
ip addr add ${HOST_GUEST}/24 dev eth0
nc -l -p 5000 > /tmp/r
echo "VNW received $(sha256sum /tmp/r | cut -d' ' -f1)"
echo "VNW csumerr $(csumerr Tcp)"`,
    });
  }, 60_000);
  afterAll(async () => {
    hostGuest?.stop();
    await web?.close();
    await relay?.close();
    await relay?.network.close();
  });

  it("1 MiB by TCP from the page's guest to the host process's guest, sha256 equal, no checksum errors", async () => {
    await withPage(async (page, errors) => {
      await page.goto(`http://127.0.0.1:${web.port}/?guests=1&relay=${encodeURIComponent(`ws://127.0.0.1:${relay.port}/`)}`);
      await page.waitForFunction(() => (window as unknown as { vnw?: { done: boolean; error: string | null } }).vnw?.done || (window as unknown as { vnw?: { error: string | null } }).vnw?.error, undefined, { timeout: 150_000, polling: 500 });
      const s = await page.evaluate(() => {
        const v = (window as unknown as { vnw: { error: string | null; guests: { markers: Record<string, string>; lines: string[] }[] } }).vnw;
        return { error: v.error, markers: v.guests[0].markers, lines: v.guests[0].lines.slice(-10) };
      });
      expect(s.error).toBeNull();
      await hostGuest.waitFor(/VNW csumerr/, 60_000);
      expect(s.markers.lease, s.lines.join("\n")).toMatch(/^10\.215\.0\.1\d\d$/);
      expect(hostGuest.markers().get("received")).toBe(s.markers.sent);
      expect(s.markers.csumerr).toBe("0");
      expect(hostGuest.markers().get("csumerr")).toBe("0");
      expect(relay.network.gateway.counters.dhcpAcks).toBeGreaterThanOrEqual(2);
      expect(errors, errors.join("\n")).toEqual([]);
    });
  }, 200_000);
});
