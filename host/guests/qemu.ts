/**
 * Booting the small Linux guest (guest/build-guest.sh) under QEMU with its virtio-net served
 * by our vhost-user back-end. A per-boot /test.sh is appended to the initramfs as a second cpio
 * archive; the guest reports on its serial console with lines starting "VNW ".
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { cpioWithFile, GUEST_DIR } from "./image.js";
import { SerialLog } from "./serial-log.js";

export { GUEST_DIR, PACKAGE_ROOT } from "./image.js";

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
  /** Use QEMU's own virtio-net on its user-mode network (`-netdev user`, libslirp) instead of vhost-user. */
  qemuUser?: boolean;
  /** The NIC's MAC (QEMU's virtio-net-pci `mac=`). */
  mac?: string;
  memMiB?: number;
  /** Virtual CPUs (default 1). */
  cpus?: number;
  /** Queue pairs (default 1): QEMU's `-netdev ...,queues=N` and `-device virtio-net-pci,mq=on`. */
  queuePairs?: number;
  /** A QMP monitor on this unix socket path (migration, queries). */
  qmp?: string;
  /** Start paused, waiting for a migration stream at this URI (`-incoming tcp:127.0.0.1:PORT`). */
  incoming?: string;
  /** Let the guest reboot inside the same QEMU process (default: a reboot ends QEMU). */
  allowReboot?: boolean;
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
  const mq = (opts.queuePairs ?? 1) > 1;
  if (mq && (opts.qemuTap || opts.qemuUser)) throw new Error("queuePairs > 1 is for the vhost-user back-end");
  const net = opts.qemuTap
    ? ["-netdev", `tap,id=n0,ifname=${opts.qemuTap},script=no,downscript=no,vhost=off`]
    : opts.qemuUser ? ["-netdev", "user,id=n0"]
    : ["-chardev", `socket,id=c0,path=${opts.socket}`, "-netdev", `vhost-user,id=n0,chardev=c0${mq ? `,queues=${opts.queuePairs}` : ""}`];
  const props = ["virtio-net-pci", "netdev=n0", "romfile=", ...(opts.qemuTap || opts.qemuUser ? [] : ["vectors=0"]), ...(opts.mac ? [`mac=${opts.mac}`] : []), ...(mq ? ["mq=on"] : []),
    ...(opts.deviceProps ? [opts.deviceProps] : [])].join(",");
  const args = [
    "-M", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", `${mem}M`, "-smp", String(opts.cpus ?? 1), "-nographic", ...(opts.allowReboot ? [] : ["-no-reboot"]),
    "-object", `memory-backend-memfd,id=mem,size=${mem}M,share=on`, "-numa", "node,memdev=mem",
    "-kernel", join(GUEST_DIR, "vmlinuz"), "-initrd", initrd,
    "-append", `console=ttyS0 quiet panic=-1${opts.netParams ? ` vnw.net=${opts.netParams}` : ""}`,
    ...net, "-device", props,
    ...(opts.qmp ? ["-qmp", `unix:${opts.qmp},server=on,wait=off`] : []),
    ...(opts.incoming ? ["-incoming", opts.incoming] : []),
  ];
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
  // The per-boot initrd is QEMU's to read until it exits.
  child.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return new Guest(child);
}
