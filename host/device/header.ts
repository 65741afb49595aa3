/** virtio_net_hdr (virtio 1.2, 5.1.6) and OpenBSD tun_hdr as plain objects, and their byte forms. */
import { NetHdr, TunHdr } from "../../assembly/abi.js";

export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Only in the 12-byte form. */
  numBuffers: number;
}

export const EMPTY_HDR: Readonly<VirtioNetHdr> = Object.freeze({
  flags: 0, gsoType: NetHdr.GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 0,
});

/** Encodes a header in its 12-byte (default) or 10-byte legacy form, little-endian. */
export function encodeVirtioHdr(h: Partial<VirtioNetHdr>, size: 10 | 12 = 12, into?: Uint8Array): Uint8Array {
  // Per frame on the switch's path: no intermediate object, and `into` (>= size bytes) saves the allocation.
  const b = into ? into.subarray(0, size) : new Uint8Array(size);
  const u16 = (o: number, v: number) => { b[o] = v & 0xff; b[o + 1] = (v >> 8) & 0xff; };
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? NetHdr.GSO_NONE;
  u16(2, h.hdrLen ?? 0);
  u16(4, h.gsoSize ?? 0);
  u16(6, h.csumStart ?? 0);
  u16(8, h.csumOffset ?? 0);
  if (size === 12) u16(10, h.numBuffers ?? 0);
  return b;
}

/** Decodes a 10- or 12-byte header. */
export function decodeVirtioHdr(b: Uint8Array): VirtioNetHdr {
  const u16 = (o: number) => b[o] | (b[o + 1] << 8);
  return {
    flags: b[0],
    gsoType: b[1],
    hdrLen: u16(2),
    gsoSize: u16(4),
    csumStart: u16(6),
    csumOffset: u16(8),
    numBuffers: b.byteLength >= 12 ? u16(10) : 0,
  };
}

export interface TunHeader {
  flags: number;
  vtag: number;
  mss: number;
}

/** Encodes struct tun_hdr (8 bytes, host order: little-endian on the machines we run on). */
export function encodeTunHdr(h: Partial<TunHeader>): Uint8Array {
  const b = new Uint8Array(TunHdr.SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, h.flags ?? 0, true);
  dv.setUint16(4, h.vtag ?? 0, true);
  dv.setUint16(6, h.mss ?? 0, true);
  return b;
}

export function decodeTunHdr(b: Uint8Array): TunHeader {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { flags: dv.getUint16(0, true), vtag: dv.getUint16(4, true), mss: dv.getUint16(6, true) };
}
