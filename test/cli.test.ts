import { describe, expect, it } from "vitest";
import { main } from "../host/cli/main.js";

function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("virtio-net-wasm CLI", () => {
  it("demo: every frame arrives with a valid checksum, none computed when both guests offload", () => {
    const r = run(["demo", "--frames", "200"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/no offload[\s\S]*delivered: 200, checksums valid at B: 200\/200[\s\S]*computed by the device: 200;/);
    expect(r.out).toMatch(/checksum offload\n[\s\S]*computed by the device: 0; partial checksums handed on untouched: 200/);
  });

  it.each([
    [["demo", "--frames", "x"], /--frames must be an integer/],
    [["demo", "--frobnicate"], /Unknown option '--frobnicate'/],
    [["launch"], /unknown command "launch"/],
  ])("rejects %j with a clear message and exit code 2", (args, msg) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
  });

  it("prints help", () => {
    expect(run(["--help"])).toMatchObject({ code: 0, out: expect.stringMatching(/usage: virtio-net-wasm/) });
  });
});
