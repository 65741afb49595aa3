/**
 * The published types, as a TypeScript user meets them: a small consumer project importing the
 * built package ("virtio-net-wasm" and "virtio-net-wasm/testing") by name, type-checked by tsc
 * without skipLibCheck under the settings bundlers, Deno and Node's own ESM use. A control
 * run puts one `const enum` back into the declarations and expects TS2748, so the check is
 * known to catch what it is for.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

const CONSUMER = `
import {
  BackendKind, Feature, QueueIndex, VirtioNetDevice, createGuestMemory, embeddedNetwork, featureMask, type DeviceOptions, type PortForward,
} from "virtio-net-wasm";
import { GuestDriver, buildFrame, l4ChecksumValid, payload, type SendOptions } from "virtio-net-wasm/testing";

const mem = createGuestMemory({ guestSize: 1 << 20, devices: 1 });
const options: DeviceOptions = {
  memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, backend: BackendKind.VNET_HDR,
};
const dev = new VirtioNetDevice(options);
const guest = new GuestDriver(mem, dev, 1);
guest.bringUp(featureMask(Feature.VERSION_1, Feature.CSUM), 256);
const send: SendOptions = { separateHeader: true };
const built = buildFrame({ ip: 4, l4: "udp", payload: payload(100) });
guest.send(built.frame, send);
const tx: QueueIndex = QueueIndex.TX;
export const sent: number = dev.metrics(tx).packets;
export const valid: boolean = l4ChecksumValid(built);
const forward: PortForward = { proto: "tcp", hostPort: 8080, guestAddr: [10, 215, 0, 10], guestPort: 80 };
export const net = embeddedNetwork({ subnet: "10.215.0.0", uplink: { forwards: [forward] } });
`;

/** [moduleResolution, module] pairs a consumer commonly compiles with. */
const SETTINGS = [["bundler", "esnext"], ["node16", "node16"], ["nodenext", "nodenext"]] as const;

let dir = "";

/** A project with the package installed as npm would lay it out (its package.json and declarations). */
function project(): string {
  const d = mkdtempSync(join(tmpdir(), "vnw-consumer-"));
  const pkg = join(d, "node_modules", "virtio-net-wasm");
  mkdirSync(join(pkg, "dist"), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(pkg, "package.json"));
  cpSync(join(ROOT, "dist", "types"), join(pkg, "dist", "types"), { recursive: true });
  mkdirSync(join(d, "node_modules", "@types"), { recursive: true });
  symlinkSync(join(ROOT, "node_modules", "@types", "node"), join(d, "node_modules", "@types", "node"));
  writeFileSync(join(d, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(join(d, "consumer.ts"), CONSUMER);
  return d;
}

/** tsc's diagnostics for the consumer ("" when it type-checks). */
function typecheck(at: string, moduleResolution: string, module: string): string {
  try {
    execFileSync(process.execPath, [TSC, "--noEmit", "--strict", "--isolatedModules", "--verbatimModuleSyntax",
      "--moduleResolution", moduleResolution, "--module", module, "--target", "es2022", "--types", "node", "consumer.ts"],
    { cwd: at, stdio: "pipe" });
    return "";
  } catch (e) {
    return String((e as { stdout?: Buffer }).stdout ?? e);
  }
}

describe("published types", () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, "dist", "types", "host", "index.d.ts"))) throw new Error("dist/types missing: run npm run build first");
    dir = project();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [resolution, module] of SETTINGS) {
    it(`a consumer type-checks with isolatedModules, verbatimModuleSyntax, moduleResolution ${resolution}`, () => {
      expect(typecheck(dir, resolution, module)).toBe("");
    }, 60_000);
  }

  it("no declaration the package publishes is an ambient const enum", () => {
    const abi = readFileSync(join(dir, "node_modules/virtio-net-wasm/dist/types/assembly/abi.d.ts"), "utf8");
    expect(abi).toMatch(/declare enum Feature\b/);
    expect(abi).not.toMatch(/const enum/);
  });

  it("control: a const enum in the declarations fails the same check with TS2748", () => {
    const control = project();
    try {
      const abi = join(control, "node_modules/virtio-net-wasm/dist/types/assembly/abi.d.ts");
      writeFileSync(abi, readFileSync(abi, "utf8").replace("declare enum BackendKind", "declare const enum BackendKind"));
      expect(typecheck(control, "bundler", "esnext")).toMatch(/TS2748/);
    } finally {
      rmSync(control, { recursive: true, force: true });
    }
  }, 60_000);
});
