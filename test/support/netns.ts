/**
 * Network namespaces for integration tests. Every test creates its own namespace and tap
 * inside it and talks only to addresses there (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";

/** Whether tests that need root, /dev/net/tun and iproute2 can run here, and if not why. */
export function netTestsAvailable(): { ok: boolean; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: "not Linux" };
  if (process.getuid?.() !== 0) return { ok: false, reason: "not root (tap and network namespaces need CAP_NET_ADMIN)" };
  if (!existsSync("/dev/net/tun")) return { ok: false, reason: "/dev/net/tun is missing" };
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
  } catch {
    return { ok: false, reason: "iproute2 (ip) is not installed" };
  }
  return { ok: true, reason: "" };
}

let seq = 0;

export class Netns {
  private children: ChildProcess[] = [];
  private constructor(readonly name: string) {}

  static create(): Netns {
    const name = `vnwt-${process.pid}-${seq++}`;
    execFileSync("ip", ["netns", "add", name]);
    const ns = new Netns(name);
    ns.ip(["link", "set", "lo", "up"]);
    return ns;
  }

  /** A tap name unique to this process and test (<= 15 bytes). */
  static tapName(): string {
    return `vnw${process.pid % 100000}t${seq++}`;
  }

  /** `ip -n NS ...` */
  ip(args: string[]): string {
    return execFileSync("ip", ["-n", this.name, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }

  /** Runs a command inside the namespace and returns its stdout. */
  exec(cmd: string[], timeoutMs = 10_000): string {
    return execFileSync("ip", ["netns", "exec", this.name, ...cmd], { encoding: "utf8", timeout: timeoutMs });
  }

  /** Starts a command inside the namespace; resolves with its stdout when it exits 0. */
  run(cmd: string[], timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn("ip", ["netns", "exec", this.name, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
      this.children.push(child);
      let out = "";
      let err = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.stdout.on("data", (d) => { out += d; });
      child.stderr.on("data", (d) => { err += d; });
      child.on("close", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`${cmd.join(" ")} exited ${code}: ${err.trim()}`));
      });
    });
  }

  /** Moves interface `dev` (e.g. a tap created in our namespace) into this namespace. */
  adopt(dev: string): void {
    execFileSync("ip", ["link", "set", dev, "netns", this.name]);
  }

  /**
   * The host side of a guest link on `dev`: 192.0.2.1/24 and 2001:db8::1/64 (no DAD), link up,
   * and a permanent IPv6 neighbour entry for the guest's 2001:db8::2 at `guestMac`, if given
   * (the test guests answer ARP but not neighbour solicitations).
   */
  hostSide(dev: string, guestMac?: string): void {
    this.ip(["addr", "add", "192.0.2.1/24", "dev", dev]);
    this.ip(["-6", "addr", "add", "2001:db8::1/64", "dev", dev, "nodad"]);
    this.ip(["link", "set", dev, "up"]);
    if (guestMac) this.ip(["-6", "neigh", "add", "2001:db8::2", "lladdr", guestMac, "dev", dev, "nud", "permanent"]);
  }

  /** MAC address of interface `dev` in the namespace. */
  mac(dev: string): Uint8Array {
    return Uint8Array.from(this.exec(["cat", `/sys/class/net/${dev}/address`]).trim().split(":").map((h) => parseInt(h, 16)));
  }

  /** Checksum error counters of the namespace's IPv4/IPv6 stacks (/proc/net/snmp, snmp6). */
  csumErrors(): Record<string, number> {
    const out: Record<string, number> = {};
    const snmp = this.exec(["cat", "/proc/net/snmp"]).trim().split("\n");
    for (let i = 0; i + 1 < snmp.length; i += 2) {
      const names = snmp[i].split(/\s+/);
      const values = snmp[i + 1].split(/\s+/);
      names.forEach((n, k) => { if (n === "InCsumErrors") out[`${names[0].replace(":", "")}InCsumErrors`] = Number(values[k]); });
    }
    for (const line of this.exec(["cat", "/proc/net/snmp6"]).split("\n")) {
      const [k, v] = line.trim().split(/\s+/);
      if (k?.endsWith("InCsumErrors")) out[k] = Number(v);
    }
    return out;
  }

  /** A counter from /proc/net/snmp, e.g. ("Udp", "InDatagrams"), or /proc/net/netstat ("TcpExt", ...). */
  snmp(group: string, name: string, file: "snmp" | "netstat" = "snmp"): number {
    const snmp = this.exec(["cat", `/proc/net/${file}`]).trim().split("\n");
    for (let i = 0; i + 1 < snmp.length; i += 2) {
      const names = snmp[i].split(/\s+/);
      if (names[0] !== `${group}:`) continue;
      return Number(snmp[i + 1].split(/\s+/)[names.indexOf(name)]);
    }
    throw new Error(`no ${group} ${name} in /proc/net/${file}`);
  }

  destroy(): void {
    for (const c of this.children) c.kill("SIGKILL");
    try { execFileSync("ip", ["netns", "del", this.name]); } catch { /* already gone */ }
  }
}

/** Whether the kernel can create 802.1Q interfaces (probed in a scratch namespace). */
export function vlanSupport(): { ok: boolean; reason: string } {
  if (!netTestsAvailable().ok) return netTestsAvailable();
  const ns = Netns.create();
  try {
    ns.ip(["link", "add", "vp0", "type", "veth", "peer", "name", "vp1"]);
    ns.ip(["link", "add", "link", "vp0", "name", "vp0.5", "type", "vlan", "id", "5"]);
    return { ok: true, reason: "" };
  } catch {
    return { ok: false, reason: "this kernel cannot create 802.1Q interfaces (CONFIG_VLAN_8021Q unset), so nothing on the host side can terminate a VLAN" };
  } finally {
    ns.destroy();
  }
}
