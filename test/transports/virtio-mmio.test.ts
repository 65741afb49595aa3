/** The virtio-mmio v2 register model against virtio 1.2, 4.2, register by register. */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { INT_CONFIG, INT_VRING, Mmio, MMIO_MAGIC, VirtioMmioTransport } from "../../host/transports/virtio-mmio.js";
import { fixture } from "../helpers/setup.js";
import { mmioDriverTransport } from "../helpers/transport-drivers.js";

function setup() {
  const irq: boolean[] = [];
  const notified: number[] = [];
  let t!: VirtioMmioTransport;
  const f = fixture({
    backend: BackendKind.VNET_HDR, mac: "52:54:00:ab:cd:ef",
    hooks: { interrupt: (q) => t.interrupt(q), configChanged: () => t.configChanged() },
  });
  t = new VirtioMmioTransport(f.dev, { setIrq: (l) => irq.push(l), notify: (q) => notified.push(q) });
  return { f, t, irq, notified };
}

describe("virtio-mmio v2 registers (virtio 1.2, 4.2.2)", () => {
  it("identifies itself: magic 'virt', version 2, device id 1, vendor; writes to them are ignored", () => {
    const { t } = setup();
    expect(t.read(Mmio.MAGIC, 4)).toBe(MMIO_MAGIC);
    expect(t.read(Mmio.VERSION, 4)).toBe(2);
    expect(t.read(Mmio.DEVICE_ID, 4)).toBe(1);
    expect(t.read(Mmio.VENDOR_ID, 4)).toBe(0x554d4551);
    t.write(Mmio.VERSION, 4, 1);
    expect(t.read(Mmio.VERSION, 4)).toBe(2);
    // No shared memory regions: length reads all ones.
    expect(t.read(Mmio.SHM_LEN_LOW, 4)).toBe(0xffff_ffff);
  });

  it("registers are 32-bit only: narrower or unaligned accesses read 0 and write nothing", () => {
    const { t } = setup();
    expect(t.read(Mmio.MAGIC, 2)).toBe(0);
    expect(t.read(Mmio.MAGIC + 1, 4)).toBe(0);
    t.write(Mmio.QUEUE_NUM, 2, 64);
    expect(t.read(Mmio.QUEUE_NUM_MAX, 4)).toBe(1024);
  });

  it("device features through the select window: word 0, word 1, nothing beyond", () => {
    const { f, t } = setup();
    const offered = f.dev.offeredFeatures;
    t.write(Mmio.DEVICE_FEATURES_SEL, 4, 0);
    expect(t.read(Mmio.DEVICE_FEATURES, 4)).toBe(Number(offered & 0xffff_ffffn));
    t.write(Mmio.DEVICE_FEATURES_SEL, 4, 1);
    expect(t.read(Mmio.DEVICE_FEATURES, 4)).toBe(Number(offered >> 32n));
    expect(t.read(Mmio.DEVICE_FEATURES, 4) & 1).toBe(1); // VERSION_1 is bit 32
    t.write(Mmio.DEVICE_FEATURES_SEL, 4, 2);
    expect(t.read(Mmio.DEVICE_FEATURES, 4)).toBe(0);
  });

  it("driver features in two words reach the device; FEATURES_OK reads back set, or clear when refused", () => {
    const { f, t } = setup();
    t.write(Mmio.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER);
    const want = featureMask(Feature.VERSION_1, Feature.CSUM, Feature.MAC);
    t.write(Mmio.DRIVER_FEATURES_SEL, 4, 0);
    t.write(Mmio.DRIVER_FEATURES, 4, Number(want & 0xffff_ffffn));
    t.write(Mmio.DRIVER_FEATURES_SEL, 4, 1);
    t.write(Mmio.DRIVER_FEATURES, 4, Number(want >> 32n));
    expect(f.dev.core.driverFeatures(f.dev.state)).toBe(want);
    t.write(Mmio.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    expect(t.read(Mmio.STATUS, 4) & Status.FEATURES_OK).toBe(Status.FEATURES_OK);

    const g = setup();
    g.t.write(Mmio.STATUS, 4, 3);
    g.t.write(Mmio.DRIVER_FEATURES_SEL, 4, 0);
    g.t.write(Mmio.DRIVER_FEATURES, 4, 1 << Feature.GUEST_TSO4); // without GUEST_CSUM: refused
    g.t.write(Mmio.STATUS, 4, 3 | Status.FEATURES_OK);
    expect(g.t.read(Mmio.STATUS, 4) & Status.FEATURES_OK).toBe(0);
  });

  it("queue registers: max size, a queue that does not exist, addresses in halves, ready, frozen once ready", () => {
    const { t } = setup();
    t.write(Mmio.QUEUE_SEL, 4, 7);
    expect(t.read(Mmio.QUEUE_NUM_MAX, 4)).toBe(0);
    t.write(Mmio.QUEUE_SEL, 4, QueueIndex.TX);
    expect(t.read(Mmio.QUEUE_NUM_MAX, 4)).toBe(1024);
    expect(t.read(Mmio.QUEUE_READY, 4)).toBe(0);
    t.write(Mmio.QUEUE_DESC_LOW, 4, 0x1234_5000);
    t.write(Mmio.QUEUE_DESC_HIGH, 4, 0x1);
    expect(t.read(Mmio.QUEUE_DESC_LOW, 4)).toBe(0x1234_5000);
    expect(t.read(Mmio.QUEUE_DESC_HIGH, 4)).toBe(1);
  });

  it("brings the device up through the registers and moves frames both ways, with notifications and the interrupt line", () => {
    const { f, t, irq, notified } = setup();
    const drv = new GuestDriver(f.mem, mmioDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM), 64);
    expect(f.dev.status & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
    t.write(Mmio.QUEUE_SEL, 4, QueueIndex.RX);
    expect(t.read(Mmio.QUEUE_READY, 4)).toBe(1);
    // Frozen: the address of a ready queue no longer changes.
    t.write(Mmio.QUEUE_DESC_LOW, 4, 0);
    expect(t.read(Mmio.QUEUE_DESC_LOW, 4)).not.toBe(0);

    const frame = buildFrame({ ip: 4, l4: "udp", payload: payload(200) }).frame;
    drv.send(frame);
    t.write(Mmio.QUEUE_NOTIFY, 4, QueueIndex.TX);
    expect(notified).toEqual([QueueIndex.TX]);
    const out = f.dev.collectTx();
    expect(Buffer.from(out[0].frame).equals(Buffer.from(frame))).toBe(true);
    expect(t.read(Mmio.INTERRUPT_STATUS, 4) & INT_VRING).toBe(INT_VRING);
    expect(irq.at(-1)).toBe(true);
    t.write(Mmio.INTERRUPT_ACK, 4, INT_VRING);
    expect(t.read(Mmio.INTERRUPT_STATUS, 4)).toBe(0);
    expect(irq.at(-1)).toBe(false);

    drv.postRx(4);
    f.dev.receive(frame, new Uint8Array(12));
    f.dev.flushRx();
    expect(irq.at(-1)).toBe(true);
    expect(Buffer.from(drv.receiveAll()[0].frame).equals(Buffer.from(frame))).toBe(true);
  });

  it("device config: the MAC byte by byte, link status; a link change raises a config interrupt and bumps the generation", () => {
    const { f, t, irq } = setup();
    const drv = new GuestDriver(f.mem, mmioDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS), 16);
    expect([0, 1, 2, 3, 4, 5].map((i) => t.read(Mmio.CONFIG + i, 1))).toEqual([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
    expect(t.read(Mmio.CONFIG + 6, 2)).toBe(1);
    const gen = t.read(Mmio.CONFIG_GENERATION, 4);
    f.dev.setLinkUp(false);
    expect(t.read(Mmio.CONFIG + 6, 2)).toBe(0);
    expect(t.read(Mmio.CONFIG_GENERATION, 4)).toBe(gen + 1);
    expect(t.read(Mmio.INTERRUPT_STATUS, 4) & INT_CONFIG).toBe(INT_CONFIG);
    expect(irq.at(-1)).toBe(true);
  });

  it("status 0 resets the device and the transport: queues not ready, sizes back to max, interrupts cleared", () => {
    const { f, t, irq } = setup();
    const drv = new GuestDriver(f.mem, mmioDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC), 16);
    t.interrupt(0);
    t.write(Mmio.STATUS, 4, 0);
    expect(t.read(Mmio.STATUS, 4)).toBe(0);
    t.write(Mmio.QUEUE_SEL, 4, 0);
    expect(t.read(Mmio.QUEUE_READY, 4)).toBe(0);
    expect(t.read(Mmio.INTERRUPT_STATUS, 4)).toBe(0);
    expect(irq.at(-1)).toBe(false);
  });
});
