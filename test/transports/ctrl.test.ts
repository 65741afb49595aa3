/**
 * The control queue through the PCI and MMIO register models, as a guest kernel reaches it:
 * queue 2 set up through the transport's registers, commands notified through its notify
 * register (the host answers them with processCtrl), their completion interrupt, and their
 * effect seen from the wire side: with promiscuous mode off and a MAC table, frames for other
 * stations are dropped; with CTRL_VLAN, tagged frames pass only for added VLANs; an announce is
 * a config interrupt with VIRTIO_NET_S_ANNOUNCE in the device config, cleared by the ack.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Ctrl, QueueIndex } from "../../assembly/abi.js";
import { CTRL_OFFER, FULL_OFFER } from "../../host/device/features.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, DEVICE_MAC, payload } from "../../host/driver/frames.js";
import { INT_CONFIG, INT_VRING, Mmio, VirtioMmioTransport } from "../../host/transports/virtio-mmio.js";
import { DEVICE_OFF, ISR_OFF, NOTIFY_OFF, VirtioPciTransport } from "../../host/transports/virtio-pci.js";
import { parseMac } from "../../host/net/gateway/wire.js";
import { fixture, type Fixture } from "../helpers/setup.js";
import { mmioDriverTransport, pciDriverTransport } from "../helpers/transport-drivers.js";

interface Rig {
  f: Fixture;
  drv: GuestDriver;
  /** The guest writes the queue's notify register. */
  notify(q: QueueIndex): void;
  /** Reads (and acknowledges) the interrupt cause: used buffer, config change. */
  takeIsr(): { vring: boolean; config: boolean };
  configStatus(): number;
}

function pciRig(): Rig {
  let t!: VirtioPciTransport;
  const f = fixture({ backend: BackendKind.VNET_HDR, features: FULL_OFFER | CTRL_OFFER, hooks: { interrupt: (q) => t.interrupt(q), configChanged: () => t.configChanged() } });
  // The host's side of a notification: the control queue is answered in place.
  t = new VirtioPciTransport(f.dev, { setIntx: () => {}, notify: (q) => { if (q === QueueIndex.CTRL) f.dev.processCtrl(); } });
  t.configWrite(0x04, 2, 0x0006); // memory space and bus master on, INTx enabled
  const drv = new GuestDriver(f.mem, pciDriverTransport(t));
  return {
    f, drv,
    notify: (q) => t.barWrite(0, NOTIFY_OFF + 4 * q, 2, q),
    takeIsr: () => { const v = t.barRead(0, ISR_OFF, 1); return { vring: (v & 1) !== 0, config: (v & 2) !== 0 }; },
    configStatus: () => t.barRead(0, DEVICE_OFF + 6, 2),
  };
}

function mmioRig(): Rig {
  let t!: VirtioMmioTransport;
  const f = fixture({ backend: BackendKind.VNET_HDR, features: FULL_OFFER | CTRL_OFFER, hooks: { interrupt: (q) => t.interrupt(q), configChanged: () => t.configChanged() } });
  t = new VirtioMmioTransport(f.dev, { setIrq: () => {}, notify: (q) => { if (q === QueueIndex.CTRL) f.dev.processCtrl(); } });
  const drv = new GuestDriver(f.mem, mmioDriverTransport(t));
  return {
    f, drv,
    notify: (q) => t.write(Mmio.QUEUE_NOTIFY, 4, q),
    takeIsr: () => {
      const v = t.read(Mmio.INTERRUPT_STATUS, 4);
      t.write(Mmio.INTERRUPT_ACK, 4, v);
      return { vring: (v & INT_VRING) !== 0, config: (v & INT_CONFIG) !== 0 };
    },
    configStatus: () => t.read(Mmio.CONFIG + 6, 2),
  };
}

const mac = parseMac;
const OTHER = mac("02:aa:bb:cc:dd:01");
const FRIEND = mac("02:aa:bb:cc:dd:02");

describe.each([["virtio-pci", pciRig], ["virtio-mmio", mmioRig]] as const)("control queue through %s", (_name, make) => {
  function up(): Rig & { cmd(cls: number, c: number, data?: ArrayLike<number>): number; delivered(dst: Uint8Array, vid?: number): boolean } {
    const r = make();
    r.drv.bringUp(FULL_OFFER | CTRL_OFFER, 64);
    expect(r.drv.queues[QueueIndex.CTRL]).toBeDefined();
    r.drv.postRx(32);
    r.notify(QueueIndex.RX);
    r.takeIsr();
    return Object.assign(r, {
      cmd: (cls: number, c: number, data: ArrayLike<number> = []) => {
        const ack = r.drv.ctrl(cls, c, Uint8Array.from(data), () => r.notify(QueueIndex.CTRL));
        // The answer comes with a used-buffer interrupt, as Linux's command path waits for.
        expect(r.takeIsr().vring).toBe(true);
        return ack;
      },
      delivered: (dst: Uint8Array, vid?: number) => {
        const frame = buildFrame({ ip: 4, l4: "udp", payload: payload(30), dstMac: dst, vlans: vid === undefined ? [] : [0x8100], vlanIds: vid === undefined ? undefined : [vid] }).frame;
        const got = r.f.dev.receive(frame, encodeVirtioHdr({}, 12));
        r.f.dev.flushRx();
        r.drv.receiveAll();
        r.drv.postRx(1);
        return got.kind === "delivered";
      },
    });
  }

  it("promiscuous off and a MAC table: frames for other stations are dropped, ours and the table's pass", () => {
    const r = up();
    expect(r.delivered(OTHER)).toBe(true);
    expect(r.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, [0])).toBe(Ctrl.OK);
    expect(r.cmd(Ctrl.CLASS_MAC, Ctrl.MAC_TABLE_SET, [1, 0, 0, 0, ...FRIEND, 0, 0, 0, 0])).toBe(Ctrl.OK);
    expect([r.delivered(DEVICE_MAC), r.delivered(FRIEND), r.delivered(OTHER)]).toEqual([true, true, false]);
    expect(r.f.dev.metrics(QueueIndex.RX).dropFiltered).toBe(1);
    expect(r.f.dev.metrics(QueueIndex.CTRL).ctrlOk).toBe(2);
  });

  it("the VLAN filter: a tagged frame passes once its VLAN is added", () => {
    const r = up();
    r.cmd(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, [0]);
    expect(r.delivered(DEVICE_MAC, 42)).toBe(false);
    expect(r.cmd(Ctrl.CLASS_VLAN, Ctrl.VLAN_ADD, [42, 0])).toBe(Ctrl.OK);
    expect([r.delivered(DEVICE_MAC, 42), r.delivered(DEVICE_MAC, 43)]).toEqual([true, false]);
  });

  it("announce: a config interrupt with VIRTIO_NET_S_ANNOUNCE set, cleared by the guest's ack", () => {
    const r = up();
    expect(r.configStatus()).toBe(1);
    expect(r.f.dev.announce()).toBe(true);
    expect(r.takeIsr().config).toBe(true);
    expect(r.configStatus()).toBe(3);
    expect(r.cmd(Ctrl.CLASS_ANNOUNCE, Ctrl.ANNOUNCE_ACK)).toBe(Ctrl.OK);
    expect(r.configStatus()).toBe(1);
  });
});
