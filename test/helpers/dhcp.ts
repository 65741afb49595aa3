/** DHCP client messages built by hand from RFC 2131/2132 (independent of the gateway). */
import { buildFrame } from "../../host/driver/frames.js";

export const BROADCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);

/** A BOOTREQUEST of message type `type` (1 DISCOVER, 3 REQUEST) from `chaddr`, with extra options. */
export function dhcpRequest(chaddr: Uint8Array, type: number, extra: number[] = []): Uint8Array {
  const opts = [53, 1, type, ...extra, 255];
  const bootp = new Uint8Array(240 + opts.length);
  const dv = new DataView(bootp.buffer);
  bootp[0] = 1; bootp[1] = 1; bootp[2] = 6;
  dv.setUint32(4, 0xdeadbeef);
  bootp.set(chaddr, 28);
  dv.setUint32(236, 0x63825363);
  bootp.set(opts, 240);
  return buildFrame({ ip: 4, l4: "udp", payload: bootp, src: [0, 0, 0, 0], dst: [255, 255, 255, 255], sport: 68, dport: 67, srcMac: chaddr, dstMac: BROADCAST }).frame;
}

/** Option `code` of a BOOTP message (the UDP payload), if present. */
export function dhcpOption(bootp: Uint8Array, code: number): number[] | undefined {
  for (let at = 240; at < bootp.length && bootp[at] !== 255;) {
    if (bootp[at] === 0) { at++; continue; }
    if (bootp[at] === code) return Array.from(bootp.subarray(at + 2, at + 2 + bootp[at + 1]));
    at += 2 + bootp[at + 1];
  }
  return undefined;
}
