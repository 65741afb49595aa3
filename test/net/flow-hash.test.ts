/**
 * The flow hash that steers frames over queue pairs: one function, run in JS for the embedded
 * network and as an eBPF program in the kernel for a multi-queue tap. The kernel runs the
 * program (BPF_PROG_TEST_RUN) over the same frames as flowHash and must agree on every one,
 * truncated and malformed frames included; both directions of a flow hash alike; and the
 * multi-queue port keeps each flow on one pair while spreading flows over all of them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BackendKind } from "../../assembly/abi.js";
import { loadSteeringProgram, runSteeringProgram } from "../../host/backends/tap-steering.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { flowHash } from "../../host/net/flow-hash.js";
import { MultiQueuePort } from "../../host/net/multi-queue-port.js";
import { Switch } from "../../host/net/switch.js";
import * as libc from "../../host/runtime/libc.js";
import { WasmSpace } from "../../host/memory/wasm-space.js";

const ip4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const ip6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const port = fc.integer({ min: 0, max: 65535 });

/** IPv4/IPv6 TCP/UDP/ICMP frames, sometimes with IPv4 options, IPv6 extension headers or VLAN tags. */
const frames = fc.record({
  ip: fc.constantFrom(4 as const, 6 as const),
  l4: fc.constantFrom("tcp" as const, "udp" as const, "icmp" as const),
  src4: ip4, dst4: ip4, src6: ip6, dst6: ip6, sport: port, dport: port,
  options: fc.constantFrom(0, 0, 4, 12),
  ext: fc.constantFrom<("hop" | "frag")[]>([], [], ["hop"], ["frag"]),
  vlan: fc.constantFrom(false, false, false, true),
  len: fc.integer({ min: 0, max: 64 }),
}).map((r) => buildFrame({
  ip: r.ip, l4: r.l4, payload: payload(r.len), src: r.ip === 4 ? r.src4 : r.src6, dst: r.ip === 4 ? r.dst4 : r.dst6,
  sport: r.sport, dport: r.dport, ipv4OptionBytes: r.ip === 4 ? r.options : 0, ext: r.ip === 6 ? r.ext : [], vlans: r.vlan ? [0x8100] : [],
}).frame);

function canLoadBpf(): string | null {
  try {
    libc.closeQuietly(loadSteeringProgram("sched-cls"));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
const bpfRefusal = canLoadBpf();

describe.skipIf(bpfRefusal !== null)(`the tap's eBPF steering program${bpfRefusal ? ` (skipped: loading eBPF needs CAP_BPF: ${bpfRefusal})` : ""}`, () => {
  it("computes exactly flowHash in the kernel, for whole, truncated and garbage frames", () => {
    const prog = loadSteeringProgram("sched-cls");
    try {
      const truncated = frames.chain((f) => fc.integer({ min: 14, max: f.length }).map((n) => f.subarray(0, n)));
      const garbage = fc.uint8Array({ minLength: 14, maxLength: 120 });
      const ethertyped = fc.tuple(fc.constantFrom(0x0800, 0x86dd), fc.uint8Array({ minLength: 0, maxLength: 90 }))
        .map(([t, rest]) => Uint8Array.of(...new Array(12).fill(2), t >> 8, t & 0xff, ...rest));
      fc.assert(fc.property(fc.oneof(frames, truncated, garbage, ethertyped), (f) => {
        // BPF_PROG_TEST_RUN refuses an IP frame shorter than its fixed IP header (a tap never
        // carries one); shorter cuts are flowHash's alone, checked below.
        const type = (f[12] << 8) | f[13];
        fc.pre(!(type === 0x0800 && f.length < 34) && !(type === 0x86dd && f.length < 54));
        expect(runSteeringProgram(prog, f)).toBe(flowHash(f));
      }), { numRuns: 600 });
    } finally {
      libc.close(prog);
    }
  });

  it("is accepted by the kernel as a tap's steering program (socket filter)", () => {
    libc.close(loadSteeringProgram());
  });
});

describe("flowHash", () => {
  it("gives both directions of a flow the same hash", () => {
    fc.assert(fc.property(fc.constantFrom(4 as const, 6 as const), fc.constantFrom("tcp" as const, "udp" as const), ip6, ip6, port, port, (ip, l4, a, b, sp, dp) => {
      const [s, d] = ip === 4 ? [a.subarray(0, 4), b.subarray(0, 4)] : [a, b];
      const there = buildFrame({ ip, l4, payload: payload(10), src: s, dst: d, sport: sp, dport: dp }).frame;
      const back = buildFrame({ ip, l4, payload: payload(30), src: d, dst: s, sport: dp, dport: sp }).frame;
      expect(flowHash(back)).toBe(flowHash(there));
    }));
  });

  it("hashes a frame cut inside its IP header or ports to 0, as a BPF load past the end ends the program", () => {
    const f = buildFrame({ ip: 4, l4: "tcp", payload: payload(0) }).frame;
    for (const n of [14, 20, 33, 34, 36]) expect(flowHash(f.subarray(0, n))).toBe(0);
    expect(flowHash(f.subarray(0, 38))).not.toBe(0);
    const g = buildFrame({ ip: 6, l4: "udp", payload: payload(0) }).frame;
    for (const n of [20, 53, 54, 57]) expect(flowHash(g.subarray(0, n))).toBe(0);
    expect(flowHash(g.subarray(0, 58))).not.toBe(0);
  });

  it("tells flows apart by their ports", () => {
    const hashes = new Set(Array.from({ length: 64 }, (_, i) => flowHash(buildFrame({ ip: 4, l4: "tcp", payload: payload(0), sport: 40000 + i, dport: 5001 }).frame)));
    expect(hashes.size).toBe(64);
  });
});

describe("MultiQueuePort", () => {
  it("keeps each flow on one active pair and spreads flows over all of them", () => {
    const space = new WasmSpace();
    const devs = [0, 1, 2].map(() => new VirtioNetDevice({ memory: space.memory, stateAddress: space.alloc(VirtioNetDevice.stateSize(), 64), regions: [], backend: BackendKind.VNET_HDR }));
    const port = new MultiQueuePort("guest", devs, new Switch());
    const flow = (i: number, reply = false) => buildFrame({ ip: 4, l4: "tcp", payload: payload(i % 7), sport: reply ? 80 : 30000 + i, dport: reply ? 30000 + i : 80, src: reply ? [198, 51, 100, 7] : [192, 0, 2, 1], dst: reply ? [192, 0, 2, 1] : [198, 51, 100, 7] }).frame;
    // Only pair 0 runs until the guest enables more.
    expect(new Set(Array.from({ length: 32 }, (_, i) => port.pairFor(flow(i))))).toEqual(new Set([0]));
    port.setActive(1, true);
    port.setActive(2, true);
    const used = new Set<number>();
    for (let i = 0; i < 64; i++) {
      const p = port.pairFor(flow(i));
      used.add(p);
      expect(port.pairFor(flow(i, true))).toBe(p);
      expect(port.pairFor(flow(i))).toBe(p);
    }
    expect(used).toEqual(new Set([0, 1, 2]));
    port.setActive(0, false);
    port.setActive(1, false);
    port.setActive(2, false);
    expect(port.pairFor(flow(1))).toBe(-1);
    port.close();
  });
});
