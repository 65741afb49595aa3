/**
 * Booting the small Linux guest (guest/build-guest.sh) under QEMU with its virtio-net served
 * by our vhost-user back-end. A per-boot /test.sh is appended to the initramfs as a second cpio
 * archive; the guest reports on its serial console with lines starting "VNW ".
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** The package root (from source: host/testing/; from the bundle: dist/). */
function packageRoot(): string {
  for (const rel of ["../../", "../"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(p, "guest", "build-guest.sh"))) return p;
  }
  return fileURLToPath(new URL("../../", import.meta.url));
}

export const PACKAGE_ROOT = packageRoot();
export const GUEST_DIR = process.env.VNW_GUEST_DIR ?? join(PACKAGE_ROOT, ".guest");

/** Whether a real guest can be booted here (QEMU and a built guest image), and if not why. */
export function guestAvailable(): { ok: boolean; reason: string } {
  try {
    execFileSync("qemu-system-x86_64", ["--version"], { stdio: "ignore" });
  } catch {
    return { ok: false, reason: "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)" };
  }
  if (!existsSync(join(GUEST_DIR, "vmlinuz")) || !existsSync(join(GUEST_DIR, "base.cpio.gz"))) {
    return { ok: false, reason: `no guest image in ${GUEST_DIR} (run guest/build-guest.sh)` };
  }
  return { ok: true, reason: "" };
}

/** A newc cpio archive holding one executable file (enough for /test.sh). */
export function cpioWithFile(name: string, content: string): Buffer {
  const entry = (n: string, body: Buffer, mode: number) => {
    const hdr = "070701" + [0, mode, 0, 0, 1, 0, body.length, 0, 0, 0, 0, n.length + 1, 0].map((v) => v.toString(16).padStart(8, "0")).join("");
    const head = Buffer.from(hdr + n + "\0");
    const pad1 = Buffer.alloc((4 - (head.length % 4)) % 4);
    const pad2 = Buffer.alloc((4 - (body.length % 4)) % 4);
    return Buffer.concat([head, pad1, body, pad2]);
  };
  const out = Buffer.concat([entry(name, Buffer.from(content), 0o100755), entry("TRAILER!!!", Buffer.alloc(0), 0)]);
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

export interface BootOptions {
  socket: string;
  /** Shell script the guest runs after bringing eth0 up. */
  script: string;
  /** Extra -device virtio-net-pci properties, e.g. "csum=off,guest_csum=off". */
  deviceProps?: string;
  /** virtio_net module parameters, e.g. "csum=0,gso=0". */
  netParams?: string;
  /** Use QEMU's own virtio-net on this tap (`-netdev tap,vhost=off`) instead of vhost-user. */
  qemuTap?: string;
  /** The NIC's MAC (QEMU's virtio-net-pci `mac=`). */
  mac?: string;
  memMiB?: number;
  /** Let the guest reboot inside the same QEMU process (default: a reboot ends QEMU). */
  allowReboot?: boolean;
}

/**
 * A guest's console as lines: waits for a line matching a pattern, and reads "VNW key value"
 * lines as markers. Shared by the QEMU and v86 guests.
 */
export class SerialLog {
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  private buf = "";

  /** Appends console output (any chunking). */
  feed(text: string): void {
    this.buf += text;
    let i: number;
    while ((i = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, i).replace(/\r$/, "");
      this.buf = this.buf.slice(i + 1);
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        const m = line.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    }
  }

  /** Resolves with the first output line (past or future) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    for (const l of this.lines) {
      const m = l.match(re);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`guest did not print ${re} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-15).join("\n")}`)), timeoutMs);
      this.waiters.push({ re, resolve: (m) => { clearTimeout(t); resolve(m); } });
    });
  }

  /** All "VNW key value" lines as a map. */
  markers(): Map<string, string> {
    const m = new Map<string, string>();
    for (const l of this.lines) {
      const x = l.match(/VNW (\S+)\s*(.*)$/);
      if (x) m.set(x[1], x[2]);
    }
    return m;
  }
}

/** A QEMU guest: its process and its console. */
export class Guest extends SerialLog {
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    super();
    child.stdout!.on("data", (d) => this.feed(String(d)));
    child.stderr!.on("data", (d) => this.feed(String(d)));
    this.exited = new Promise((r) => child.on("exit", (code) => r(code)));
  }
}

export function boot(opts: BootOptions): Guest {
  const dir = mkdtempSync(join(tmpdir(), "vnw-guest-"));
  const initrd = join(dir, "initrd");
  writeFileSync(initrd, Buffer.concat([readFileSync(join(GUEST_DIR, "base.cpio.gz")), gzipSync(cpioWithFile("test.sh", `#!/bin/sh\n${opts.script}\n`))]));
  const mem = opts.memMiB ?? 256;
  const net = opts.qemuTap
    ? ["-netdev", `tap,id=n0,ifname=${opts.qemuTap},script=no,downscript=no,vhost=off`]
    : ["-chardev", `socket,id=c0,path=${opts.socket}`, "-netdev", "vhost-user,id=n0,chardev=c0"];
  const props = ["virtio-net-pci", "netdev=n0", "romfile=", ...(opts.qemuTap ? [] : ["vectors=0"]), ...(opts.mac ? [`mac=${opts.mac}`] : []),
    ...(opts.deviceProps ? [opts.deviceProps] : [])].join(",");
  const args = [
    "-M", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", `${mem}M`, "-smp", "1", "-nographic", ...(opts.allowReboot ? [] : ["-no-reboot"]),
    "-object", `memory-backend-memfd,id=mem,size=${mem}M,share=on`, "-numa", "node,memdev=mem",
    "-kernel", join(GUEST_DIR, "vmlinuz"), "-initrd", initrd,
    "-append", `console=ttyS0 quiet panic=-1${opts.netParams ? ` vnw.net=${opts.netParams}` : ""}`,
    ...net, "-device", props,
  ];
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
  // The per-boot initrd is QEMU's to read until it exits.
  child.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return new Guest(child);
}
