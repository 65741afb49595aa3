/** ICMP echo (RFC 792) for the gateway: the reply to a ping of its address. */
import type { Checksummer } from "../checksummer.js";
import { ETH_SRC, IP4, IP4_DST, IP4_SRC, IP4_TOTAL_LEN, IP4_TTL, setIpv4Checksum, TTL } from "./wire.js";

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** The echo reply to the echo request `f` (IPv4 header of `ihl` bytes), from `ip`/`mac`. */
export function echoReply(csum: Checksummer, f: Uint8Array, ihl: number, ip: number[], mac: Uint8Array): Uint8Array {
  const totalLen = (f[IP4_TOTAL_LEN] << 8) | f[IP4_TOTAL_LEN + 1];
  const r = f.slice(0, IP4 + totalLen);
  r.set(f.subarray(ETH_SRC, ETH_SRC + 6), 0);
  r.set(mac, ETH_SRC);
  r.set(f.subarray(IP4_SRC, IP4_SRC + 4), IP4_DST);
  r.set(ip, IP4_SRC);
  r[IP4_TTL] = TTL;
  const icmp = IP4 + ihl;
  r[icmp] = ICMP_ECHO_REPLY;
  r[icmp + 2] = r[icmp + 3] = 0;
  const c = csum.checksum(r, icmp, r.length - icmp);
  r[icmp + 2] = c >> 8;
  r[icmp + 3] = c & 0xff;
  setIpv4Checksum(csum, r, ihl);
  return r;
}
