/**
 * The embedded network's flags, shared by `vhost-user` (without --tap) and `relay`: --net, the
 * uplink's --no-uplink and --forward. Each parser throws an Error whose message is the usage error.
 */
import type { PortForward } from "../net/uplink.js";

export interface NetworkFlags {
  net?: string;
  "no-uplink"?: boolean;
  forward?: string[];
}

/** Checks the flags: a /24 network address, forwards that parse and have an uplink to go through. */
export function parseNetworkFlags(v: NetworkFlags): { subnet: string; uplink: boolean; forwards: PortForward[] } {
  const subnet = v.net ?? "10.215.0.0";
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet) || subnet.split(".").some((x) => Number(x) > 255)) {
    throw new Error(`--net must be an IPv4 /24 network address such as 10.215.0.0, got "${subnet}"`);
  }
  if (v["no-uplink"] && v.forward) throw new Error("--forward needs the uplink (drop --no-uplink)");
  return { subnet, uplink: !v["no-uplink"], forwards: (v.forward ?? []).map(parseForward) };
}

/** Parses `[tcp|udp]:[HOSTADDR:]HOSTPORT:GUESTADDR:GUESTPORT` (QEMU's hostfwd, with ':' after the protocol). */
export function parseForward(spec: string): PortForward {
  const parts = spec.split(":");
  const bad = (why: string) => new Error(`--forward ${spec}: ${why} (want [tcp|udp]:[HOSTADDR:]HOSTPORT:GUESTADDR:GUESTPORT)`);
  let proto: "tcp" | "udp" = "tcp";
  if (parts[0] === "tcp" || parts[0] === "udp") proto = parts.shift() as "tcp" | "udp";
  else if (/^[a-z]+$/i.test(parts[0])) throw bad(`protocol must be tcp or udp, not "${parts[0]}"`);
  if (parts.length !== 3 && parts.length !== 4) throw bad("wrong number of fields");
  const port = (s: string) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw bad(`"${s}" is not a port`);
    return n;
  };
  const addr = (s: string) => {
    const a = s.split(".").map(Number);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(s) || a.some((x) => x > 255)) throw bad(`"${s}" is not an IPv4 address`);
    return a;
  };
  const hostAddr = parts.length === 4 ? addr(parts.shift()!) : [127, 0, 0, 1];
  return { proto, hostAddr, hostPort: port(parts[0]), guestAddr: addr(parts[1]), guestPort: port(parts[2]) };
}
