import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Feature, ParseField } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { cuts, frameSpec } from "../helpers/arbitraries.js";
import { buildFrame, payload, type BuiltFrame } from "../../host/driver/frames.js";
import { fixture } from "../helpers/setup.js";

const f = fixture({ guestSize: 16 << 20 });
f.drv.negotiate(featureMask(Feature.VERSION_1));

interface Parsed { l3Kind: number; l3Off: number; l4Proto: number; l4Off: number; fragment: number; vlanTags: number; l3End: number; pseudoDstOff: number }

/** Parses `frame` split at `at` through the core's tool export. */
function parse(frame: Uint8Array, at: number[] = []): Parsed {
  const points = [0, ...at.filter((c) => c > 0 && c < frame.length).sort((a, b) => a - b), frame.length];
  const pieces: Uint8Array[] = [];
  for (let i = 0; i + 1 < points.length; i++) if (points[i + 1] > points[i]) pieces.push(frame.subarray(points[i], points[i + 1]));
  if (pieces.length === 0) pieces.push(frame);
  const list = f.drv.alloc(16 * pieces.length, 8);
  const dv = new DataView(new ArrayBuffer(16 * pieces.length));
  pieces.forEach((p, i) => {
    const gpa = f.drv.alloc(Math.max(p.length, 1), 1);
    f.drv.write(gpa, p);
    dv.setBigUint64(16 * i, gpa, true);
    dv.setBigUint64(16 * i + 8, BigInt(p.length), true);
  });
  f.drv.write(list, new Uint8Array(dv.buffer));
  const ptr = f.dev.core.parseGuestFrame(f.dev.state, list, pieces.length, frame.length);
  expect(ptr).not.toBe(0);
  const v = new DataView(f.mem.memory.buffer, ptr, 4 * ParseField.COUNT);
  const g = (i: ParseField) => v.getUint32(4 * i, true);
  return {
    l3Kind: g(ParseField.L3_KIND), l3Off: g(ParseField.L3_OFF), l4Proto: g(ParseField.L4_PROTO),
    l4Off: g(ParseField.L4_OFF), fragment: g(ParseField.FRAGMENT), vlanTags: g(ParseField.VLAN_TAGS),
    l3End: g(ParseField.L3_END), pseudoDstOff: g(ParseField.PSEUDO_DST_OFF),
  };
}

const UNKNOWN = { l3Kind: 0, l3Off: 0, l4Proto: 255, l4Off: 0, fragment: 0, l3End: 0, pseudoDstOff: 0 };

function expected(b: BuiltFrame, vlans: number): Parsed {
  return {
    l3Kind: b.ip, l3Off: b.l3Off, l4Proto: b.proto, l4Off: b.l4Off, fragment: 0, vlanTags: vlans, l3End: b.l3End,
    pseudoDstOff: b.finalDstOff ?? b.l3Off + (b.ip === 4 ? 16 : 24),
  };
}

describe("frame parser", () => {
  it("finds L3/L4 offsets for any frame (VLAN/QinQ, IPv4 options, IPv6 extension headers) split anywhere", () => {
    fc.assert(fc.property(frameSpec, cuts(200), (spec, at) => {
      const b = buildFrame(spec);
      expect(parse(b.frame, at)).toEqual(expected(b, spec.vlans?.length ?? 0));
    }), { numRuns: 400 });
  });

  it("ignores Ethernet padding after the IP datagram", () => {
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(4), padding: 12 });
    expect(parse(b.frame)).toEqual(expected(b, 0));
  });

  it("yields unknown, never partial offsets, for every truncation of a frame", () => {
    for (const spec of [
      { ip: 4 as const, l4: "tcp" as const, payload: payload(10), ipv4OptionBytes: 8, vlans: [0x88a8, 0x8100] },
      { ip: 6 as const, l4: "udp" as const, payload: payload(10), ext: ["hop", "routing", "dst"] as ("hop" | "routing" | "dst")[] },
    ]) {
      const b = buildFrame(spec);
      for (let len = 0; len < b.l3End; len++) {
        const p = parse(b.frame.subarray(0, len), [len >> 1]);
        // The IP header claims more bytes than are there: the datagram is unusable.
        expect({ ...p, vlanTags: 0 }).toEqual({ ...UNKNOWN, vlanTags: 0 });
      }
    }
  });

  const bad = (mutate: (b: Uint8Array, l3: number) => void, ip: 4 | 6 = 4) => {
    const b = buildFrame({ ip, l4: "tcp", payload: payload(40), ext: ip === 6 ? ["hop"] : [] });
    const frame = b.frame.slice();
    mutate(frame, b.l3Off);
    return parse(frame);
  };

  it.each([
    ["IPv4 IHL below 5", (b: Uint8Array, l3: number) => { b[l3] = 0x44; }],
    ["IPv4 IHL beyond the frame", (b: Uint8Array, l3: number) => { b[l3] = 0x4f; b[l3 + 2] = 0; b[l3 + 3] = 24; }],
    ["IPv4 total length beyond the frame", (b: Uint8Array, l3: number) => { b[l3 + 2] = 0x40; }],
    ["IPv4 total length below the header", (b: Uint8Array, l3: number) => { b[l3 + 2] = 0; b[l3 + 3] = 10; }],
    ["IP version not 4 in an IPv4 frame", (b: Uint8Array, l3: number) => { b[l3] = 0x65; }],
  ])("rejects %s", (_n, mutate) => {
    expect(bad(mutate)).toMatchObject(UNKNOWN);
  });

  it.each([
    ["IPv6 payload length beyond the frame", (b: Uint8Array, l3: number) => { b[l3 + 4] = 0x7f; }],
    ["IPv6 jumbogram (payload length 0)", (b: Uint8Array, l3: number) => { b[l3 + 4] = 0; b[l3 + 5] = 0; }],
    ["an extension header running past the datagram", (b: Uint8Array, l3: number) => { b[l3 + 41] = 200; }],
  ])("rejects %s", (_n, mutate) => {
    expect(bad(mutate, 6)).toMatchObject({ l4Proto: 255, l4Off: 0 });
  });

  it("gives up after a bounded walk of extension headers", () => {
    const b = buildFrame({ ip: 6, l4: "udp", payload: payload(8), ext: ["hop", "dst", "dst", "dst", "dst", "dst", "dst", "dst"] });
    expect(parse(b.frame)).toMatchObject({ l3Kind: 6, l4Proto: 17 });
    const c = buildFrame({ ip: 6, l4: "udp", payload: payload(8), ext: ["hop", "dst", "dst", "dst", "dst", "dst", "dst", "dst", "dst"] });
    expect(parse(c.frame)).toMatchObject({ l4Proto: 255, l4Off: 0 });
  });

  it("gives up on more than three VLAN tags", () => {
    const b = buildFrame({ ip: 4, l4: "udp", payload: payload(8), vlans: [0x88a8, 0x8100, 0x8100, 0x8100] });
    expect(parse(b.frame)).toMatchObject(UNKNOWN);
  });

  it("marks IPv4 fragments (more-fragments flag, or an offset)", () => {
    for (const flags of [0x2000, 0x0010, 0x2010]) {
      const p = bad((b, l3) => { b[l3 + 6] = flags >> 8; b[l3 + 7] = flags & 0xff; });
      expect(p).toMatchObject({ l3Kind: 4, fragment: 1 });
    }
  });

  it("marks IPv6 fragments, but not atomic fragments (offset 0, M clear)", () => {
    const b = buildFrame({ ip: 6, l4: "udp", payload: payload(8), ext: ["frag"] });
    expect(parse(b.frame)).toMatchObject({ fragment: 0, l4Proto: 17 });
    const frame = b.frame.slice();
    frame[b.l3Off + 40 + 3] = 1; // M flag
    expect(parse(frame)).toMatchObject({ fragment: 1 });
  });

  describe("the pseudo-header's destination under a source route (RFC 791 3.1, RFC 8200 8.1)", () => {
    const hops = [Uint8Array.of(192, 0, 2, 9), Uint8Array.of(198, 51, 100, 20)];
    const hops6 = [2, 3].map((k) => Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), k));

    it("an IPv4 loose source route under way: its last address", () => {
      const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(20), sourceRoute: hops, ipv4OptionBytes: 4 });
      expect(parse(b.frame).pseudoDstOff).toBe(b.finalDstOff);
      expect(b.finalDstOff).toBe(b.l3Off + 20 + 4 + 3 + 4);
    });

    it("a strict source route (SSRR) likewise", () => {
      const b = buildFrame({ ip: 4, l4: "udp", payload: payload(20), sourceRoute: hops });
      const frame = b.frame.slice();
      frame[b.l3Off + 20] = 137;
      expect(parse(frame).pseudoDstOff).toBe(b.finalDstOff);
    });

    it("an exhausted route (pointer past the last address): the header's destination", () => {
      const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(20), sourceRoute: hops });
      const frame = b.frame.slice();
      frame[b.l3Off + 22] = 4 + 4 * hops.length;
      expect(parse(frame).pseudoDstOff).toBe(b.l3Off + 16);
    });

    it("malformed options (a length running past the header) end the walk at the header's destination", () => {
      const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(20), sourceRoute: hops });
      const frame = b.frame.slice();
      frame[b.l3Off + 21] = 40;
      expect(parse(frame)).toMatchObject({ l4Proto: 6, pseudoDstOff: b.l3Off + 16 });
    });

    it("an IPv6 segment routing header with segments left: segment list[0]", () => {
      const b = buildFrame({ ip: 6, l4: "tcp", payload: payload(20), sourceRoute: hops6, ext: ["hop"] });
      expect(parse(b.frame).pseudoDstOff).toBe(b.l3Off + 40 + 8 + 8);
    });

    it("type 0 and type 2 routing headers: the last address; none left or RPL (type 3): the header's", () => {
      const b = buildFrame({ ip: 6, l4: "udp", payload: payload(20), sourceRoute: hops6 });
      const srh = b.l3Off + 40;
      for (const [type, left, want] of [[0, 2, srh + 8 + 32], [2, 1, srh + 8 + 32], [4, 0, b.l3Off + 24], [3, 2, b.l3Off + 24]]) {
        const frame = b.frame.slice();
        frame[srh + 2] = type;
        frame[srh + 3] = left;
        expect(parse(frame).pseudoDstOff, `routing type ${type}, segments left ${left}`).toBe(want);
      }
    });

    it("a routing header with segments left that runs past the datagram is refused", () => {
      const b = buildFrame({ ip: 6, l4: "udp", payload: payload(4), sourceRoute: hops6 });
      const frame = b.frame.slice();
      frame[b.l3Off + 41] = 30;
      expect(parse(frame)).toMatchObject({ l4Proto: 255, l4Off: 0 });
    });
  });

  it("reports unknown for non-IP ethertypes (ARP)", () => {
    const arp = new Uint8Array(42);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(parse(arp)).toMatchObject(UNKNOWN);
  });
});
