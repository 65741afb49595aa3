/**
 * Boots the 32-bit Debian guest (guest/build-guest.sh i386) headless in v86 under Node, with
 * Debian's SeaBIOS (package `seabios`; v86's npm package ships no BIOS) and its eth0 either on
 * this engine (V86VirtioNet) or on v86's own virtio-net bridged to the same switch (for the
 * side-by-side benchmark). Serial output is collected; lines "VNW key value" become markers.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { captureV86Exports, v86NotifyPorts, V86VirtioNet, type V86Like } from "../emulators/v86.js";
import type { NetFrame, Switch, SwitchPort } from "../net/switch.js";
import { cpioWithFile, PACKAGE_ROOT } from "./image.js";
import { SerialLog } from "./serial-log.js";

export const I386_GUEST_DIR = process.env.VNW_GUEST_I386_DIR ?? join(PACKAGE_ROOT, ".guest", "i386");
export const SEABIOS = "/usr/share/seabios/bios.bin";
export const VGABIOS = "/usr/share/seabios/vgabios-stdvga.bin";

/** Whether a v86 guest can be booted here, and if not, why. */
export function v86GuestAvailable(): { ok: boolean; reason: string } {
  if (!existsSync(SEABIOS)) return { ok: false, reason: `no BIOS at ${SEABIOS} (apt-get install seabios)` };
  if (!existsSync(join(I386_GUEST_DIR, "vmlinuz"))) return { ok: false, reason: `no i386 guest in ${I386_GUEST_DIR} (run guest/build-guest.sh i386)` };
  try {
    createRequire(import.meta.url).resolve("v86");
  } catch {
    return { ok: false, reason: "the v86 package is not installed" };
  }
  return { ok: true, reason: "" };
}

export interface V86Guest extends Pick<SerialLog, "lines" | "markers" | "waitFor"> {
  /** The adapter (engine mode), or null when v86's own device runs (builtin mode). */
  net: V86VirtioNet | null;
  /** Frames v86's own virtio-net code sent (its "net0-send" bus event). */
  v86Sent(): number;
  /** Device-side time (ms) in v86's own virtio-net code for the builtin mode's frames. */
  builtinMs(): number;
  /** v86's snapshot of the whole machine (save_state), this engine's device state in it. */
  save(): Promise<ArrayBuffer>;
  stop(): void;
}

/** v86's own NIC on the switch: frames it sends enter the switch; frames for it go on v86's bus. */
class V86BusPort implements SwitchPort {
  readonly acceptsPartial = false;
  constructor(readonly name: string, private readonly bus: { send(ev: string, data: unknown): void }) {}
  deliver(frame: NetFrame): void { this.bus.send("net0-receive", frame.data.slice()); }
}

/**
 * Boots the guest, or with `restore` resumes a snapshot `save()` took (same machine: a fresh
 * emulator, the adapter attached, then v86's restore_state).
 */
export async function bootV86Guest(opts: { script: string; network: Switch; mode: "engine" | "builtin"; mac?: string; features?: bigint; restore?: ArrayBuffer }): Promise<V86Guest> {
  const require = createRequire(import.meta.url);
  const v86Dir = dirname(require.resolve("v86"));
  const { V86 } = (await import("v86")) as unknown as { V86: new (o: Record<string, unknown>) => V86Emulator };
  const wasmBytes = readFileSync(join(v86Dir, "v86.wasm"));
  const hook = captureV86Exports(wasmBytes);
  const initrd = Buffer.concat([readFileSync(join(I386_GUEST_DIR, "base.cpio.gz")), gzipSync(cpioWithFile("test.sh", `#!/bin/sh\n${opts.script}\n`))]);
  const buf = (b: Buffer) => ({ buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) });
  const emulator = new V86({
    bios: buf(readFileSync(SEABIOS)), vga_bios: buf(readFileSync(VGABIOS)),
    bzimage: buf(readFileSync(join(I386_GUEST_DIR, "vmlinuz"))), initrd: buf(initrd),
    cmdline: "console=ttyS0 cryptomgr.notests noisapnp pnpbios=off quiet panic=-1",
    memory_size: 128 << 20, autostart: false, disable_keyboard: true, disable_mouse: true,
    net_device: { type: "virtio", relay_url: "" }, wasm_fn: hook.wasm_fn,
  });
  await new Promise<void>((r) => emulator.add_listener("emulator-loaded", () => r()));
  const exports = await hook.exports;
  let net: V86VirtioNet | null = null;
  let sent = 0;
  let builtinMs = 0;
  emulator.add_listener("net0-send", () => { sent++; });
  if (opts.mode === "engine") {
    net = new V86VirtioNet(emulator as unknown as V86Like, exports, { network: opts.network, name: "v86 guest", features: opts.features });
  } else {
    const bus = emulator.bus;
    const port = new V86BusPort("v86 builtin", bus);
    opts.network.attach(port);
    emulator.add_listener("net0-send", (data: Uint8Array) => {
      opts.network.input(port, { data: new Uint8Array(data), hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
    });
    // Device-side time of v86's own code: its notification handlers (descriptor walk, frame
    // copy, the bus, and whatever the network answers synchronously), as the adapter's are timed.
    const v86 = (emulator as unknown as V86Like).v86;
    for (const p of v86NotifyPorts(v86.cpu.devices.virtio_net!.virtio)) {
      const entry = v86.cpu.io.ports[p];
      const orig = entry.write16;
      entry.write16 = (v: number) => {
        const t0 = performance.now();
        orig.call(entry, v);
        builtinMs += performance.now() - t0;
      };
    }
  }
  const log = new SerialLog();
  emulator.add_listener("serial0-output-byte", (b: number) => log.feed(String.fromCharCode(b)));
  if (opts.restore) await emulator.restore_state(opts.restore);
  emulator.run();
  return {
    net,
    lines: log.lines,
    markers: () => log.markers(),
    waitFor: (re, ms) => log.waitFor(re, ms),
    v86Sent: () => sent,
    builtinMs: () => builtinMs,
    save: () => emulator.save_state(),
    stop: () => { void emulator.destroy?.(); },

  };
}

interface V86Emulator {
  add_listener(ev: string, fn: (...a: never[]) => void): void;
  run(): void;
  save_state(): Promise<ArrayBuffer>;
  restore_state(state: ArrayBuffer): Promise<void>;
  destroy?(): Promise<void>;
  bus: { send(ev: string, data: unknown): void };
}
