import { describe, expect, it } from "vitest";
import { rateLimited } from "../host/cli/rate-limit.js";

describe("log rate limiting", () => {
  it("passes 5 alike lines per window, counts the rest and says so when the window is over", () => {
    let t = 0;
    const out: string[] = [];
    const log = rateLimited((_l, m) => out.push(m), 5, 10_000, () => t);
    for (let i = 0; i < 140_000; i++) { log("warn", `front-end session ended (session ${i})`); t += 0.5; }
    // 70 s of a tight reconnect loop: 5 lines per 10 s window plus one summary per window.
    expect(out.length).toBeLessThanOrEqual(8 * 6);
    expect(out.filter((m) => m.includes("not shown")).length).toBeGreaterThan(5);
    const shown = out.filter((m) => !m.includes("not shown")).length;
    const held = out.filter((m) => m.includes("not shown")).reduce((a, m) => a + Number(/\((\d+) more/.exec(m)![1]), 0);
    // Every line is either shown or counted (the last window's count is still pending).
    expect(shown + held).toBeLessThanOrEqual(140_000);
    expect(shown + held).toBeGreaterThan(140_000 - 20_000);
  });

  it("lines of other shapes are not held back by a flood", () => {
    const out: string[] = [];
    const log = rateLimited((_l, m) => out.push(m), 2, 10_000, () => 0);
    for (let i = 0; i < 10; i++) log("info", `kick ${i}`);
    log("error", "the guest's rings are malformed");
    expect(out).toEqual(["kick 0", "kick 1", "the guest's rings are malformed"]);
  });
});
