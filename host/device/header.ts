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
export function encodeVirtioHdr(h: Partial<VirtioNetHdr>, size: 10 | 12 = 12): Uint8Array {
  const v = { ...EMPTY_HDR, ...h };
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, v.flags);
  dv.setUint8(1, v.gsoType);
  dv.setUint16(2, v.hdrLen, true);
  dv.setUint16(4, v.gsoSize, true);
  dv.setUint16(6, v.csumStart, true);
  dv.setUint16(8, v.csumOffset, true);
  if (size === 12) dv.setUint16(10, v.numBuffers, true);
  return b;
}

/** Decodes a 10- or 12-byte header. */
export function decodeVirtioHdr(b: Uint8Array): VirtioNetHdr {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    flags: dv.getUint8(0),
    gsoType: dv.getUint8(1),
    hdrLen: dv.getUint16(2, true),
    gsoSize: dv.getUint16(4, true),
    csumStart: dv.getUint16(6, true),
    csumOffset: dv.getUint16(8, true),
    numBuffers: b.byteLength >= 12 ? dv.getUint16(10, true) : 0,
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
