/** Builds a memory, a device on it and a driver model: the fixture most tests start from. */
import { QueueIndex } from "../../assembly/abi.js";
import { createGuestMemory, type GuestHole, type GuestMemory } from "../../host/memory/layout.js";
import { VirtioNetDevice, type DeviceOptions } from "../../host/device/virtio-net.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";

export interface Fixture {
  mem: GuestMemory;
  dev: VirtioNetDevice;
  drv: GuestDriver;
  /** Interrupts raised per queue. */
  irqs: Record<QueueIndex, number>;
  /** Features reported through the negotiated hook. */
  negotiated: bigint[];
  configChanges: number;
}

export interface FixtureOptions extends Omit<Partial<DeviceOptions>, "memory" | "stateAddress" | "regions"> {
  guestSize?: number;
  holes?: GuestHole[];
  seed?: number;
  shared?: boolean;
  /** Called on the fresh memory before the device is created (e.g. to paint a canary). */
  fill?: (u8: Uint8Array) => void;
}

export function fixture(opts: FixtureOptions = {}): Fixture {
  const mem = createGuestMemory({ guestSize: opts.guestSize ?? 4 << 20, holes: opts.holes, shared: opts.shared });
  opts.fill?.(new Uint8Array(mem.memory.buffer));
  const f = { mem, irqs: { [QueueIndex.RX]: 0, [QueueIndex.TX]: 0, [QueueIndex.CTRL]: 0 }, negotiated: [], configChanges: 0 } as unknown as Fixture;
  f.dev = new VirtioNetDevice({
    ...opts,
    memory: mem.memory,
    stateAddress: mem.stateAddresses[0],
    regions: mem.regions,
    hooks: {
      interrupt: (q) => { f.irqs[q]++; },
      negotiated: (feat) => { f.negotiated.push(feat); },
      configChanged: () => { f.configChanges++; },
      ...opts.hooks,
    },
  });
  f.drv = new GuestDriver(mem, f.dev, opts.seed ?? 1);
  return f;
}
