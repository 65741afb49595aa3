import { describe, expect, it } from "vitest";
import { main } from "../host/cli/main.js";

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("virtio-net-wasm CLI", () => {
  it("demo: every frame arrives with a valid checksum, none computed when both guests offload", async () => {
    const r = await run(["demo", "--in-process", "--frames", "200"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/no offload[\s\S]*delivered: 200, checksums valid at B: 200\/200[\s\S]*computed by the device: 200;/);
    expect(r.out).toMatch(/checksum offload\n[\s\S]*computed by the device: 0; partial checksums handed on untouched: 200/);
  });

  it.each([
    [["demo", "--in-process", "--frames", "x"], /--frames must be an integer/],
    [["demo", "--frobnicate"], /Unknown option '--frobnicate'/],
    [["launch"], /unknown command "launch"/],
    [["vhost-user", "--tap", "x"], /--socket PATH is required/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--net", "10.1.2"], /--net must be an IPv4 \/24/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--tap", "t", "--dns", "10.0.0.1"], /--dns, --net6, --pcap, --forward and --no-uplink apply to the embedded network/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--forward", "tcp:8080:10.215.0.10"], /--forward tcp:8080:10.215.0.10: wrong number of fields/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--forward", "sctp:1:10.215.0.10:80"], /protocol must be tcp or udp, not "sctp"/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--forward", "tcp:70000:10.215.0.10:80"], /"70000" is not a port/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--forward", "udp:8080:10.215.0.300:80"], /"10.215.0.300" is not an IPv4 address/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--no-uplink", "--forward", "tcp:8080:10.215.0.10:80"], /--forward needs the uplink/],
    [["relay"], /--listen ADDR:PORT is required/],
    [["relay", "--listen", "127.0.0.1:0", "--log-level", "loud"], /--log-level must be one of error, warn, info, debug/],
    [["relay", "--listen", "127.0.0.1:0", "--net", "10.1.2"], /--net must be an IPv4 \/24/],
    [["relay", "--listen", "127.0.0.1:0", "--no-uplink", "--forward", "tcp:8080:10.215.0.10:80"], /--forward needs the uplink/],
    [["relay", "--listen", "127.0.0.1:0", "--forward", "tcp:8080"], /--forward tcp:8080: wrong number of fields/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--net6", "2001:db8:zz::"], /bad IPv6 address/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--offloads", "host_tso4"], /prerequisite/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--pcap", "/nonexistent-dir/x.pcap"], /--pcap \/nonexistent-dir\/x.pcap: ENOENT/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--tap", "t", "--mtu", "9"], /--mtu must be 68..65535/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--tap", "t", "--offloads", "csum,turbo"], /unknown feature "turbo"/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--tap", "t", "--log-level", "loud"], /--log-level must be one of/],
    [["vhost-user", "--socket", "/tmp/x.sock", "--tap", "t", "--csum-policy", "maybe"], /--csum-policy must be/],
  ])("rejects %j with a clear message and exit code 2", async (args, msg) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
  });

  it("prints help, including the QEMU command line for vhost-user", async () => {
    expect(await run(["--help"])).toMatchObject({ code: 0, out: expect.stringMatching(/usage: virtio-net-wasm/) });
    expect(await run(["vhost-user", "--help"])).toMatchObject({ code: 0, out: expect.stringMatching(/-netdev vhost-user,id=n0,chardev=c0/) });
  });
});

describe("--forward", () => {
  it("parses QEMU's hostfwd forms", async () => {
    const { parseForward } = await import("../host/cli/network-flags.js");
    expect(parseForward("tcp:8080:10.215.0.10:80")).toEqual({ proto: "tcp", hostAddr: [127, 0, 0, 1], hostPort: 8080, guestAddr: [10, 215, 0, 10], guestPort: 80 });
    expect(parseForward("udp:0.0.0.0:5353:10.215.0.11:53")).toEqual({ proto: "udp", hostAddr: [0, 0, 0, 0], hostPort: 5353, guestAddr: [10, 215, 0, 11], guestPort: 53 });
    expect(parseForward("2222:10.215.0.10:22")).toMatchObject({ proto: "tcp", hostPort: 2222, guestPort: 22 });
  });
});

describe("vhost-user --help", () => {
  it("states the default offer as FULL_OFFER_LIST says it", async () => {
    const { FULL_OFFER_LIST } = await import("../host/device/features.js");
    const r = await run(["vhost-user", "--help"]);
    const listed = r.out.match(/--offloads LIST[^(]*\(default: ([^)]*)\)/)![1].replace(/\s+/g, "");
    expect(listed).toBe(FULL_OFFER_LIST);
  });
});
