/** The virtio-pci modern register model against virtio 1.2, 4.1, register by register. */
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex, Status } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import {
  CAP_PCI_CFG, Common, COMMON_OFF, DEVICE_OFF, ISR_OFF, MSIX_PBA_OFF, NO_VECTOR, NOTIFY_OFF, PciCap, VirtioPciTransport,
} from "../../host/transports/virtio-pci.js";
import { fixture } from "../helpers/setup.js";
import { pciDriverTransport } from "../helpers/transport-drivers.js";

function setup() {
  const intx: boolean[] = [];
  const msi: [bigint, number][] = [];
  const notified: number[] = [];
  let t!: VirtioPciTransport;
  const f = fixture({
    backend: BackendKind.VNET_HDR, mac: "52:54:00:ab:cd:ef",
    hooks: { interrupt: (q) => t.interrupt(q), configChanged: () => t.configChanged() },
  });
  t = new VirtioPciTransport(f.dev, { setIntx: (l) => intx.push(l), msi: (a, d) => msi.push([a, d]), notify: (q) => notified.push(q) });
  return { f, t, intx, msi, notified };
}

/** Walks the capability list from 0x34 as a driver does: [offset, id, cfg_type, bar, offset, length]. */
function capabilities(t: VirtioPciTransport): number[][] {
  const out: number[][] = [];
  for (let at = t.configRead(0x34, 1), n = 0; at !== 0 && n < 48; at = t.configRead(at + 1, 1), n++) {
    const id = t.configRead(at, 1);
    out.push(id === 0x09
      ? [at, id, t.configRead(at + 3, 1), t.configRead(at + 4, 1), t.configRead(at + 8, 4), t.configRead(at + 12, 4)]
      : [at, id]);
  }
  return out;
}

const common = (t: VirtioPciTransport, off: number, size: 1 | 2 | 4) => t.barRead(0, COMMON_OFF + off, size);
const setCommon = (t: VirtioPciTransport, off: number, size: 1 | 2 | 4, v: number) => t.barWrite(0, COMMON_OFF + off, size, v);

describe("virtio-pci modern: configuration space (virtio 1.2, 4.1.2 and 4.1.4)", () => {
  it("ids: vendor 0x1af4, device 0x1041, revision 1, network class, subsystem = device id, INTA", () => {
    const { t } = setup();
    expect(t.configRead(0x00, 2)).toBe(0x1af4);
    expect(t.configRead(0x02, 2)).toBe(0x1041);
    expect(t.configRead(0x08, 1)).toBe(1);
    expect(t.configRead(0x0b, 1)).toBe(0x02);
    expect(t.configRead(0x2e, 2)).toBe(1);
    expect(t.configRead(0x06, 2) & 0x10).toBe(0x10);
    expect(t.configRead(0x3d, 1)).toBe(1);
    t.configWrite(0x00, 4, 0);
    expect(t.configRead(0x00, 2)).toBe(0x1af4);
  });

  it("the capability list holds common, notify, ISR, device and PCI_CFG structures, then MSI-X", () => {
    const { t } = setup();
    const caps = capabilities(t);
    expect(caps.map((c) => c[1])).toEqual([0x09, 0x09, 0x09, 0x09, 0x09, 0x11]);
    const byType = new Map(caps.filter((c) => c[1] === 0x09).map((c) => [c[2], c]));
    expect(byType.get(PciCap.COMMON)!.slice(3)).toEqual([0, COMMON_OFF, 0x3c]);
    expect(byType.get(PciCap.NOTIFY)!.slice(3, 5)).toEqual([0, NOTIFY_OFF]);
    expect(byType.get(PciCap.ISR)!.slice(3, 5)).toEqual([0, ISR_OFF]);
    expect(byType.get(PciCap.DEVICE)!.slice(3, 5)).toEqual([0, DEVICE_OFF]);
    expect(byType.has(PciCap.PCI_CFG)).toBe(true);
    const notify = byType.get(PciCap.NOTIFY)![0];
    expect(t.configRead(notify + 2, 1)).toBe(20); // cap_len includes notify_off_multiplier
    expect(t.configRead(notify + 16, 4)).toBe(4);
    const msix = caps.at(-1)![0];
    expect(t.configRead(msix + 2, 2) & 0x7ff).toBe(3); // table size - 1: four vectors (config + 3 queues)
    expect(t.configRead(msix + 4, 4)).toBe(0x000 | 1); // table in BAR 1 at 0
  });

  it("BAR sizing: all ones reads back the size mask (16 KiB, 4 KiB, unused BARs 0); an address decodes to (bar, offset)", () => {
    const { t } = setup();
    t.configWrite(0x10, 4, 0xffff_ffff);
    t.configWrite(0x14, 4, 0xffff_ffff);
    t.configWrite(0x18, 4, 0xffff_ffff);
    expect(t.configRead(0x10, 4)).toBe(0xffff_c000);
    expect(t.configRead(0x14, 4)).toBe(0xffff_f000);
    expect(t.configRead(0x18, 4)).toBe(0);
    t.configWrite(0x10, 4, 0xfe00_0000);
    t.configWrite(0x14, 4, 0xfe01_0000);
    expect(t.barAt(0xfe00_1000)).toEqual({ bar: 0, offset: ISR_OFF });
    expect(t.barAt(0xfe01_0010)).toEqual({ bar: 1, offset: 0x10 });
    expect(t.barAt(0xfe00_4000)).toBeUndefined();
  });

  it("the PCI_CFG access capability reads and writes BAR registers through configuration space", () => {
    const { t } = setup();
    t.configWrite(CAP_PCI_CFG + 4, 1, 0); // bar 0
    t.configWrite(CAP_PCI_CFG + 8, 4, COMMON_OFF + Common.NUM_QUEUES);
    t.configWrite(CAP_PCI_CFG + 12, 4, 2);
    expect(t.configRead(CAP_PCI_CFG + 16, 4)).toBe(3);
    t.configWrite(CAP_PCI_CFG + 8, 4, COMMON_OFF + Common.QUEUE_SELECT);
    t.configWrite(CAP_PCI_CFG + 16, 4, 1);
    expect(common(t, Common.QUEUE_SELECT, 2)).toBe(1);
  });
});

describe("virtio-pci modern: common configuration (4.1.4.3)", () => {
  it("num_queues 3 (RX, TX, control); feature windows; queue_size defaults to the maximum and 0 for a queue that does not exist", () => {
    const { f, t } = setup();
    expect(common(t, Common.NUM_QUEUES, 2)).toBe(3);
    setCommon(t, Common.DEVICE_FEATURE_SELECT, 4, 1);
    expect(common(t, Common.DEVICE_FEATURE, 4)).toBe(Number(f.dev.offeredFeatures >> 32n));
    setCommon(t, Common.QUEUE_SELECT, 2, QueueIndex.TX);
    expect(common(t, Common.QUEUE_SIZE, 2)).toBe(1024);
    expect(common(t, Common.QUEUE_NOTIFY_OFF, 2)).toBe(QueueIndex.TX);
    setCommon(t, Common.QUEUE_SELECT, 2, QueueIndex.CTRL);
    expect(common(t, Common.QUEUE_SIZE, 2)).toBe(64);
    expect(common(t, Common.QUEUE_NOTIFY_OFF, 2)).toBe(QueueIndex.CTRL);
    setCommon(t, Common.QUEUE_SELECT, 2, 3);
    expect(common(t, Common.QUEUE_SIZE, 2)).toBe(0);
  });

  it("a queue size that is not a power of 2 is refused at enable: queue_enable stays 0", () => {
    const { f, t } = setup();
    const drv = new GuestDriver(f.mem, pciDriverTransport(t));
    drv.negotiate(featureMask(Feature.VERSION_1));
    setCommon(t, Common.QUEUE_SELECT, 2, 0);
    setCommon(t, Common.QUEUE_SIZE, 2, 100);
    setCommon(t, Common.QUEUE_DESC, 4, 0x10000);
    setCommon(t, Common.QUEUE_ENABLE, 2, 1);
    expect(common(t, Common.QUEUE_ENABLE, 2)).toBe(0);
  });

  it("INTx: a used buffer sets ISR bit 0 and asserts the line; reading ISR clears both; the command register can mask it", () => {
    const { f, t, intx } = setup();
    const drv = new GuestDriver(f.mem, pciDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC), 64);
    drv.send(buildFrame({ ip: 4, l4: "udp", payload: payload(100) }).frame);
    t.barWrite(0, NOTIFY_OFF + 4 * QueueIndex.TX, 2, QueueIndex.TX);
    f.dev.collectTx();
    expect(intx.at(-1)).toBe(true);
    expect(t.barRead(0, ISR_OFF, 1)).toBe(1);
    expect(intx.at(-1)).toBe(false);
    expect(t.barRead(0, ISR_OFF, 1)).toBe(0);
    t.configWrite(0x04, 2, 0x0400 | 0x0006); // INTx disable
    t.interrupt(QueueIndex.RX);
    expect(intx.at(-1)).toBe(false);
  });

  it("MSI-X: per-queue vectors, messages with the table's address and data, masking with a pending bit, the config vector", () => {
    const { f, t, msi } = setup();
    const drv = new GuestDriver(f.mem, pciDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS), 64);
    const msixCap = capabilities(t).at(-1)![0];
    t.configWrite(msixCap + 2, 2, 0x8000); // enable
    for (let v = 0; v < 3; v++) {
      t.barWrite(1, 16 * v, 4, 0xfee0_0000 + v * 0x1000);
      t.barWrite(1, 16 * v + 4, 4, 0);
      t.barWrite(1, 16 * v + 8, 4, 0x40 + v);
      t.barWrite(1, 16 * v + 12, 4, 0); // unmask
    }
    setCommon(t, Common.CONFIG_MSIX_VECTOR, 2, 0);
    setCommon(t, Common.QUEUE_SELECT, 2, QueueIndex.TX);
    setCommon(t, Common.QUEUE_MSIX_VECTOR, 2, 2);
    expect(common(t, Common.QUEUE_MSIX_VECTOR, 2)).toBe(2);
    setCommon(t, Common.QUEUE_SELECT, 2, QueueIndex.RX);
    setCommon(t, Common.QUEUE_MSIX_VECTOR, 2, 9); // no such vector
    expect(common(t, Common.QUEUE_MSIX_VECTOR, 2)).toBe(NO_VECTOR);
    setCommon(t, Common.QUEUE_MSIX_VECTOR, 2, 1);

    t.interrupt(QueueIndex.TX);
    expect(msi).toEqual([[0xfee0_2000n, 0x42]]);
    t.barWrite(1, 16 * 1 + 12, 4, 1); // mask vector 1
    t.interrupt(QueueIndex.RX);
    expect(msi).toHaveLength(1);
    expect(t.barRead(1, MSIX_PBA_OFF, 4)).toBe(2);
    t.barWrite(1, 16 * 1 + 12, 4, 0);
    expect(msi.at(-1)).toEqual([0xfee0_1000n, 0x41]);
    expect(t.barRead(1, MSIX_PBA_OFF, 4)).toBe(0);
    f.dev.setLinkUp(false);
    expect(msi.at(-1)).toEqual([0xfee0_0000n, 0x40]);
    expect(common(t, Common.CONFIG_GENERATION, 1)).toBe(1);
  });

  it("brings the device up through the registers (as virtio_pci_modern does) and moves a frame each way; status 0 resets vectors and queues", () => {
    const { f, t, notified } = setup();
    const drv = new GuestDriver(f.mem, pciDriverTransport(t));
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM), 128);
    expect(f.dev.status & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
    const frame = buildFrame({ ip: 6, l4: "tcp", payload: payload(300) }).frame;
    drv.send(frame);
    t.barWrite(0, NOTIFY_OFF + 4 * QueueIndex.TX, 2, QueueIndex.TX);
    expect(notified).toEqual([QueueIndex.TX]);
    expect(Buffer.from(f.dev.collectTx()[0].frame).equals(Buffer.from(frame))).toBe(true);
    drv.postRx(2);
    f.dev.receive(frame, new Uint8Array(12));
    f.dev.flushRx();
    expect(Buffer.from(drv.receiveAll()[0].frame).equals(Buffer.from(frame))).toBe(true);
    expect([0, 1, 2, 3, 4, 5].map((i) => t.barRead(0, DEVICE_OFF + i, 1))).toEqual([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    setCommon(t, Common.QUEUE_SELECT, 2, 0);
    setCommon(t, Common.QUEUE_MSIX_VECTOR, 2, 1);
    setCommon(t, Common.DEVICE_STATUS, 1, 0);
    expect(common(t, Common.DEVICE_STATUS, 1)).toBe(0);
    expect(common(t, Common.QUEUE_ENABLE, 2)).toBe(0);
    expect(common(t, Common.QUEUE_MSIX_VECTOR, 2)).toBe(NO_VECTOR);
    expect(common(t, Common.QUEUE_SIZE, 2)).toBe(1024);
  });
});
