import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { instantiateCore } from "../../host/wasm/core.js";
import { corePath } from "../../host/wasm/core-source.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { summarizeWasm } from "../helpers/wasm-sections.js";

describe.each([false, true])("built core (shared memory build: %s)", (shared) => {
  const bytes = new Uint8Array(readFileSync(corePath(shared)));
  const s = summarizeWasm(bytes);

  it("imports exactly one thing: env.memory", () => {
    expect(s.imports).toEqual([{ module: "env", name: "memory", kind: 2 }]);
  });

  it("carries no active data segments, no start function and no mutable globals", () => {
    expect(s.dataSegments.filter((d) => d.mode !== 1)).toEqual([]);
    expect(s.hasStart).toBe(false);
    expect(s.mutableGlobals).toBe(0);
  });

  it("declares its memory import as shared exactly in the shared build", () => {
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
    expect(imports).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
    const mem = shared
      ? new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true })
      : new WebAssembly.Memory({ initial: 1 });
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: mem } })).not.toThrow();
  });
});

describe("instantiation", () => {
  it("writes nothing to the memory", () => {
    const memory = new WebAssembly.Memory({ initial: 4 });
    const u8 = new Uint8Array(memory.buffer);
    u8.fill(0xa5);
    for (let i = 0; i < 3; i++) instantiateCore(memory);
    expect(u8.every((b) => b === 0xa5)).toBe(true);
  });

  it("lets two devices share one memory without disturbing each other", () => {
    const mem = createGuestMemory({ guestSize: 1 << 20, devices: 2 });
    const a = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, mac: "02:00:00:00:00:0a", mtu: 9000 });
    const b = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[1], regions: mem.regions, mac: "02:00:00:00:00:0b" });
    expect(a.readConfig(5, 1)).toBe(0x0a);
    expect(b.readConfig(5, 1)).toBe(0x0b);
    expect(a.readConfig(10, 2)).toBe(9000);
    expect(b.readConfig(10, 2)).toBe(1500);
  });

  it("refuses a state block that overlaps guest RAM", () => {
    const mem = createGuestMemory({ guestSize: 1 << 20 });
    expect(() => new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.guestBase, regions: mem.regions })).toThrow(/refused/);
  });
});
