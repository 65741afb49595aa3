/**
 * What the receivers of a partial checksum do, written from the spec rather than from the
 * core: the guest or a virtio_net_hdr backend sums from csum_start to the end of the packet
 * and stores the complement at csum_start + csum_offset (virtio 1.2, 5.1.6.2); an OpenBSD
 * backend given TUN_H_TCP_CSUM/UDP_CSUM does the same at the TCP/UDP header.
 */
import { onesSum } from "../../host/testing/frames.js";

export function completePartial(frame: Uint8Array, start: number, off: number): Uint8Array {
  const out = frame.slice();
  const v = ~onesSum(out.subarray(start)) & 0xffff;
  out[start + off] = v >> 8;
  out[start + off + 1] = v & 0xff;
  return out;
}

/** Bytes of `a` and `b` that differ, outside the listed [offset, length] ranges. */
export function diffOutside(a: Uint8Array, b: Uint8Array, skip: [number, number][]): number[] {
  const out: number[] = [];
  if (a.length !== b.length) return [-1];
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !skip.some(([o, l]) => i >= o && i < o + l)) out.push(i);
  }
  return out;
}
