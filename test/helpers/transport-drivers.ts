/**
 * The driver model's DriverTransport implemented through transport registers, the way a guest
 * kernel's virtio_pci_modern / virtio_mmio code programs them, so the same driver model brings
 * the device up through the PCI or MMIO register model instead of calling it directly.
 */
import type { QueueIndex } from "../../assembly/abi.js";
import type { DriverTransport } from "../../host/driver/guest-driver.js";
import { Common, COMMON_OFF, type VirtioPciTransport } from "../../host/transports/virtio-pci.js";
import { Mmio, type VirtioMmioTransport } from "../../host/transports/virtio-mmio.js";

const lo = (v: bigint) => Number(v & 0xffff_ffffn);
const hi = (v: bigint) => Number(v >> 32n);

export function pciDriverTransport(t: VirtioPciTransport): DriverTransport {
  const w = (off: number, size: 1 | 2 | 4, v: number) => t.barWrite(0, COMMON_OFF + off, size, v);
  const r = (off: number, size: 1 | 2 | 4) => t.barRead(0, COMMON_OFF + off, size);
  return {
    setStatus(v) { w(Common.DEVICE_STATUS, 1, v); return r(Common.DEVICE_STATUS, 1); },
    setDriverFeatures(f) {
      w(Common.DRIVER_FEATURE_SELECT, 4, 0); w(Common.DRIVER_FEATURE, 4, lo(f));
      w(Common.DRIVER_FEATURE_SELECT, 4, 1); w(Common.DRIVER_FEATURE, 4, hi(f));
      return true;
    },
    configureQueue(q: QueueIndex, size, desc, avail, used) {
      w(Common.QUEUE_SELECT, 2, q);
      w(Common.QUEUE_SIZE, 2, size);
      w(Common.QUEUE_DESC, 4, lo(desc)); w(Common.QUEUE_DESC + 4, 4, hi(desc));
      w(Common.QUEUE_DRIVER, 4, lo(avail)); w(Common.QUEUE_DRIVER + 4, 4, hi(avail));
      w(Common.QUEUE_DEVICE, 4, lo(used)); w(Common.QUEUE_DEVICE + 4, 4, hi(used));
      return 0;
    },
    enableQueue(q: QueueIndex, on) {
      w(Common.QUEUE_SELECT, 2, q);
      if (on) w(Common.QUEUE_ENABLE, 2, 1);
      return r(Common.QUEUE_ENABLE, 2) === (on ? 1 : 0) ? 0 : -1;
    },
  };
}

export function mmioDriverTransport(t: VirtioMmioTransport): DriverTransport {
  return {
    setStatus(v) { t.write(Mmio.STATUS, 4, v); return t.read(Mmio.STATUS, 4); },
    setDriverFeatures(f) {
      t.write(Mmio.DRIVER_FEATURES_SEL, 4, 0); t.write(Mmio.DRIVER_FEATURES, 4, lo(f));
      t.write(Mmio.DRIVER_FEATURES_SEL, 4, 1); t.write(Mmio.DRIVER_FEATURES, 4, hi(f));
      return true;
    },
    configureQueue(q: QueueIndex, size, desc, avail, used) {
      t.write(Mmio.QUEUE_SEL, 4, q);
      t.write(Mmio.QUEUE_NUM, 4, size);
      t.write(Mmio.QUEUE_DESC_LOW, 4, lo(desc)); t.write(Mmio.QUEUE_DESC_HIGH, 4, hi(desc));
      t.write(Mmio.QUEUE_DRIVER_LOW, 4, lo(avail)); t.write(Mmio.QUEUE_DRIVER_HIGH, 4, hi(avail));
      t.write(Mmio.QUEUE_DEVICE_LOW, 4, lo(used)); t.write(Mmio.QUEUE_DEVICE_HIGH, 4, hi(used));
      return 0;
    },
    enableQueue(q: QueueIndex, on) {
      t.write(Mmio.QUEUE_SEL, 4, q);
      if (on) t.write(Mmio.QUEUE_READY, 4, 1);
      return t.read(Mmio.QUEUE_READY, 4) === (on ? 1 : 0) ? 0 : -1;
    },
  };
}
