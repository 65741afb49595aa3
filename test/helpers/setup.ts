/** Builds a memory, a device on it and a driver model: the fixture most tests start from. */
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
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
  /** State blocks in the memory (default 1; the device uses the first). */
  devices?: number;
  seed?: number;
  shared?: boolean;
  /** Called on the fresh memory before the device is created (e.g. to paint a canary). */
  fill?: (u8: Uint8Array) => void;
  /**
   * Ring layout the driver model asks for (default: VNW_RING=packed in the environment, else
   * split): with "packed" the device offers RING_PACKED too, so the same tests run on both.
   */
  layout?: "split" | "packed" | "as-asked";
}

/** The ring layout tests run on: `VNW_RING=packed npm run test:packed` runs them all on packed rings. */
export const RING_LAYOUT: "split" | "packed" = process.env.VNW_RING === "packed" ? "packed" : "split";

export function fixture(opts: FixtureOptions = {}): Fixture {
  const mem = createGuestMemory({ guestSize: opts.guestSize ?? 4 << 20, holes: opts.holes, shared: opts.shared, devices: opts.devices });
  opts.fill?.(new Uint8Array(mem.memory.buffer));
  const f = { mem, irqs: { [QueueIndex.RX]: 0, [QueueIndex.TX]: 0, [QueueIndex.CTRL]: 0 }, negotiated: [], configChanges: 0 } as unknown as Fixture;
  const layout = opts.layout ?? RING_LAYOUT;
  f.dev = new VirtioNetDevice({
    ...opts,
    ...(layout === "packed" && opts.features !== undefined ? { features: opts.features | featureMask(Feature.RING_PACKED) } : {}),
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
  if (layout === "packed" && opts.features === undefined) f.dev.core.setOfferedFeatures(f.dev.state, f.dev.offeredFeatures | featureMask(Feature.RING_PACKED));
  f.drv = new GuestDriver(mem, f.dev, opts.seed ?? 1);
  f.drv.layout = layout;
  return f;
}
