/**
 * An independent reference for software segmentation, written from the rules (RFC 793/9293,
 * RFC 3168 6.1.2, RFC 768, RFC 791, RFC 8200 and Linux's GSO behaviour) rather than from the
 * core: the frame's layout comes from the frame builder, not from the core's parser, and the
 * arithmetic is plain byte-array code. The device's one convention is applied too: a checksum
 * that computes to 0 is sent as 0xffff (the same value in ones' complement; RFC 768 for UDP).
 */
import { internetChecksum, pseudoHeaderSum, type BuiltFrame } from "../../host/driver/frames.js";

const FIN = 0x01;
const PSH = 0x08;
const CWR = 0x80;

/** How the reference leaves L4 checksums: complete, or partial (pseudo-header sum, NEEDS_CSUM). */
export type RefChecksum = "full" | "partial";

/** Splits the TCP or UDP datagram of `b` into frames carrying at most `mss` payload bytes each. */
export function referenceSegment(b: BuiltFrame, mss: number, csum: RefChecksum = "full"): Uint8Array[] {
  const f = b.frame;
  const tcp = b.proto === 6;
  const l4HeaderLen = tcp ? (f[b.l4Off + 12] >> 4) * 4 : 8;
  const hdrLen = b.l4Off + l4HeaderLen;
  const data = f.subarray(hdrLen, b.l3End);
  const count = Math.max(1, Math.ceil(data.length / mss));
  const inDv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const id0 = b.ip === 4 ? inDv.getUint16(b.l3Off + 4) : 0;
  const seq0 = tcp ? inDv.getUint32(b.l4Off + 4) : 0;
  const flags0 = tcp ? f[b.l4Off + 13] : 0;
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = data.subarray(i * mss, Math.min(data.length, (i + 1) * mss));
    const seg = new Uint8Array(hdrLen + chunk.length);
    seg.set(f.subarray(0, hdrLen));
    seg.set(chunk, hdrLen);
    const dv = new DataView(seg.buffer);
    if (b.ip === 4) {
      dv.setUint16(b.l3Off + 2, seg.length - b.l3Off);
      dv.setUint16(b.l3Off + 4, (id0 + i) & 0xffff);
      dv.setUint16(b.l3Off + 10, 0);
      dv.setUint16(b.l3Off + 10, nonZero(internetChecksum(seg.subarray(b.l3Off, b.l4Off))));
    } else {
      dv.setUint16(b.l3Off + 4, seg.length - b.l3Off - 40);
    }
    if (tcp) {
      dv.setUint32(b.l4Off + 4, (seq0 + i * mss) >>> 0);
      let fl = flags0;
      if (i !== count - 1) fl &= ~(FIN | PSH);
      if (i !== 0) fl &= ~CWR;
      seg[b.l4Off + 13] = fl;
    } else {
      dv.setUint16(b.l4Off + 4, seg.length - b.l4Off);
    }
    const field = b.l4Off + (tcp ? 16 : 6);
    const built: BuiltFrame = { ...b, frame: seg, l3End: seg.length };
    const pseudo = pseudoHeaderSum(built);
    dv.setUint16(field, 0);
    dv.setUint16(field, csum === "partial" ? pseudo : nonZero(internetChecksum(seg.subarray(b.l4Off), pseudo)));
    out.push(seg);
  }
  return out;
}

function nonZero(v: number): number {
  return v === 0 ? 0xffff : v;
}
