/**
 * Where the small Linux guests (guest/build-guest.sh) live and how a per-boot script is added to
 * their initramfs: appended as a second cpio archive, which the kernel unpacks over the first.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (from source: host/guests/; from the bundle: dist/). */
function packageRoot(): string {
  for (const rel of ["../../", "../"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(p, "guest", "build-guest.sh"))) return p;
  }
  return fileURLToPath(new URL("../../", import.meta.url));
}

export const PACKAGE_ROOT = packageRoot();
export const GUEST_DIR = process.env.VNW_GUEST_DIR ?? join(PACKAGE_ROOT, ".guest");

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

