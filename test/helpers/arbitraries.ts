/** fast-check generators for frames, shared by the parser and offload property tests. */
import fc from "fast-check";
import type { Ext, FrameSpec, L4 } from "../../host/driver/frames.js";

export const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  ip: fc.constantFrom<4 | 6>(4, 6),
  l4: fc.constantFrom<L4>("tcp", "udp", "icmp"),
  payload: fc.uint8Array({ minLength: 0, maxLength: 1400 }),
  vlans: fc.array(fc.constantFrom(0x8100, 0x88a8), { maxLength: 2 }),
  ipv4OptionBytes: fc.constantFrom(0, 4, 8, 20, 40),
  ext: fc.array(fc.constantFrom<Ext>("hop", "dst", "routing", "frag"), { maxLength: 4 }),
  tcpOptionBytes: fc.constantFrom(0, 12, 40),
});

/** Split points into a buffer of up to `max` bytes: 0..7 cuts, i.e. 1..8 segments. */
export const cuts = (max: number): fc.Arbitrary<number[]> => fc.array(fc.integer({ min: 1, max }), { maxLength: 7 });
