/** fast-check generators for frames, shared by the parser and offload property tests. */
import fc from "fast-check";
import type { Ext, FrameSpec, L4 } from "../../host/driver/frames.js";

const address = fc.uint8Array({ minLength: 16, maxLength: 16 });

/** A source route under way (IPv4 LSRR, IPv6 segment routing), or none: checksums use its final destination. */
export const sourceRoute = fc.option(fc.array(address, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 3 });

/** Fits a generated source route to the spec: 4-byte addresses for IPv4, NOPs giving way within 40 option bytes. */
export function fitRoute<S extends Pick<FrameSpec, "ip" | "sourceRoute" | "ipv4OptionBytes">>(s: S): S {
  if (!s.sourceRoute) return s;
  const route = s.ip === 4 ? Array.from(s.sourceRoute, (a) => Uint8Array.from(a).subarray(0, 4)) : s.sourceRoute;
  const routeBytes = (3 + 4 * route.length + 3) & ~3;
  const nops = s.ipv4OptionBytes ?? 0;
  return { ...s, sourceRoute: route, ipv4OptionBytes: s.ip === 4 && nops + routeBytes > 40 ? 0 : nops };
}

export const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  ip: fc.constantFrom<4 | 6>(4, 6),
  l4: fc.constantFrom<L4>("tcp", "udp", "icmp"),
  payload: fc.uint8Array({ minLength: 0, maxLength: 1400 }),
  vlans: fc.array(fc.constantFrom(0x8100, 0x88a8), { maxLength: 2 }),
  ipv4OptionBytes: fc.constantFrom(0, 4, 8, 20, 40),
  ext: fc.array(fc.constantFrom<Ext>("hop", "dst", "routing", "frag"), { maxLength: 4 }),
  tcpOptionBytes: fc.constantFrom(0, 12, 40),
  sourceRoute,
}).map(fitRoute);

/** Split points into a buffer of up to `max` bytes: 0..7 cuts, i.e. 1..8 segments. */
export const cuts = (max: number): fc.Arbitrary<number[]> => fc.array(fc.integer({ min: 1, max }), { maxLength: 7 });
