/** `npm start`'s demo with real guests: its own checks must pass, and its counters say something. */
import { describe, expect, it } from "vitest";
import { main } from "../../host/cli/main.js";
import { guestAvailable } from "../../host/guests/qemu.js";

const avail = guestAvailable();

describe.skipIf(!avail.ok)(`virtio-net-wasm demo with real guests${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  it("two guests get leases, ping the gateway, move 4 MiB with matching sha256, nobody computes their checksums, and one fetches a page from the host", async () => {
    const out: string[] = [];
    const code = await main(["demo"], (s) => out.push(s), (s) => out.push(s));
    const text = out.join("\n");
    expect(code).toBe(0);
    expect(text).toMatch(/guest A: DHCP lease 10\.215\.0\.10 router 10\.215\.0\.1/);
    expect(text).toMatch(/guest B: DHCP lease 10\.215\.0\.11 router 10\.215\.0\.1/);
    expect(text).toMatch(/sha256 matches on both ends/);
    const untouched = Number(text.match(/computed by nobody\): (\d+)/)![1]);
    // 4 MiB of TCP with partial checksums, mostly as 64 KiB TSO segments carried whole.
    const whole = Number(text.match(/carried whole between the guests, never split: (\d+)/)![1]);
    expect(whole).toBeGreaterThan(20);
    expect(untouched).toBeGreaterThan(whole);
    // The uplink: guest B fetched the demo's page from the host's loopback through the gateway.
    expect(text).toMatch(/fetched the page \(\d+ bytes, sha256 matches\)/);
    // Frames to the host went out complete: the switch finished what reached the gateway partial.
    expect(text).toMatch(/uplink: \d+ frames to the host, \d+ back/);
  }, 180_000);
});
