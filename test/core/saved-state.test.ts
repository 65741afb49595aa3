/**
 * Saving and restoring a device (VirtioNetDevice.saveState / restore): a device that negotiated,
 * carried traffic and was programmed through its control queue is saved mid-stream; a device
 * restored from the bytes into a fresh state block over the same guest RAM carries on where the
 * first stopped (the driver model does not notice), with its receive filter, MAC, offloads and
 * counters; and bytes that are not a saved state, or do not fit, are refused with a clear error.
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Ctrl, QueueIndex, RxMode } from "../../assembly/abi.js";
import { CTRL_OFFER, FULL_OFFER } from "../../host/device/features.js";
import { encodeVirtioHdr } from "../../host/device/header.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { SavedStateError } from "../../host/device/saved-state.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { fixture } from "../helpers/setup.js";

const OFFER = FULL_OFFER | CTRL_OFFER;
const OTHER = Uint8Array.of(2, 0xaa, 0xbb, 0xcc, 0xdd, 1);

function running() {
  const f = fixture({ features: OFFER, backend: BackendKind.VNET_HDR, guestSize: 4 << 20, devices: 2 });
  f.drv.bringUp(OFFER, 64);
  f.drv.postRx(16);
  f.dev.processCtrl();
  const ctrl = (cls: number, cmd: number, data: number[], dev: VirtioNetDevice) => f.drv.ctrl(cls, cmd, Uint8Array.from(data), () => dev.processCtrl());
  expect(ctrl(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, [0], f.dev)).toBe(Ctrl.OK);
  expect(ctrl(Ctrl.CLASS_MAC, Ctrl.MAC_ADDR_SET, [...OTHER], f.dev)).toBe(Ctrl.OK);
  return { f, ctrl };
}

const frame = (n: number, dst?: Uint8Array) => buildFrame({ ip: 4, l4: "udp", payload: payload(60 + n), dstMac: dst }).frame;

describe("saved device state", () => {
  it("a restored device carries on where the saved one stopped: rings, filter, MAC, counters", () => {
    const { f, ctrl } = running();
    // Traffic both ways, leaving RX buffers the device holds and TX frames queued.
    for (let i = 0; i < 5; i++) f.drv.send(frame(i));
    expect(f.dev.collectTx()).toHaveLength(5);
    expect(f.dev.receive(frame(1, OTHER), encodeVirtioHdr({}, 12)).kind).toBe("delivered");
    f.dev.flushRx();
    for (let i = 0; i < 3; i++) f.drv.send(frame(10 + i));
    const saved = f.dev.saveState();
    const before = { tx: f.dev.metrics(QueueIndex.TX), rx: f.dev.metrics(QueueIndex.RX), mode: f.dev.rxMode, mac: f.dev.mac };

    // A fresh state block over the same guest RAM (as an emulator restoring a snapshot would).
    const again = VirtioNetDevice.restore({ memory: f.mem.memory, stateAddress: f.mem.stateAddresses[1], regions: f.mem.regions, backend: BackendKind.VNET_HDR }, saved);
    expect({ mode: again.rxMode, mac: again.mac }).toEqual({ mode: before.mode, mac: before.mac });
    expect(again.negotiatedFeatures).toBe(f.dev.negotiatedFeatures);
    expect(again.metrics(QueueIndex.TX)).toEqual(before.tx);
    // The three frames queued before the save come out of the restored device, then new ones.
    expect(again.collectTx().map((o) => o.frame.length)).toEqual([10, 11, 12].map((i) => frame(i).length));
    f.drv.send(frame(20));
    expect(again.collectTx()).toHaveLength(1);
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(9);
    // RX: the filter still drops frames for others; ours arrive in the guest's buffers.
    expect(again.receive(frame(2, Uint8Array.of(2, 9, 9, 9, 9, 9)), encodeVirtioHdr({}, 12)).kind).toBe("dropped");
    expect(again.receive(frame(3, OTHER), encodeVirtioHdr({}, 12)).kind).toBe("delivered");
    again.flushRx();
    expect(f.drv.receiveMerged().map((g) => g.frame.length)).toEqual([frame(1).length, frame(3).length]);
    // The control queue carries on too.
    expect(ctrl(Ctrl.CLASS_RX, Ctrl.RX_PROMISC, [1], again)).toBe(Ctrl.OK);
    expect(again.rxMode & RxMode.PROMISC).toBe(RxMode.PROMISC);
  });

  it("refuses what is not a saved state, another format or core layout, a damaged record, rings outside the memory", () => {
    const { f } = running();
    const saved = f.dev.saveState();
    const opts = { memory: f.mem.memory, stateAddress: f.mem.stateAddresses[1], regions: f.mem.regions, backend: BackendKind.VNET_HDR };
    const tampered = (at: number, v: number) => { const b = saved.slice(); new DataView(b.buffer).setUint32(at, v, true); return b; };
    const refusal = (bytes: Uint8Array, o = opts) => {
      try {
        VirtioNetDevice.restore(o, bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(SavedStateError);
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(refusal(new Uint8Array(10))).toMatch(/truncated/);
    expect(refusal(tampered(0, 0x12345678))).toMatch(/bad magic/);
    expect(refusal(tampered(4, 2))).toMatch(/format 2/);
    expect(refusal(tampered(8, 3))).toMatch(/core layout 3/);
    expect(refusal(saved.subarray(0, saved.length - 1))).toMatch(/truncated/);
    // The core's record claims 200 unicast filter entries.
    const coreAt = 36 + 40 * 3 + 4;
    expect(refusal(tampered(coreAt + 40 + 4, 200))).toMatch(/damaged/);
    // Another memory whose guest RAM is too small for the rings.
    const small = createGuestMemory({ guestSize: 4096 });
    expect(refusal(saved, { memory: small.memory, stateAddress: small.stateAddresses[0], regions: small.regions, backend: BackendKind.VNET_HDR })).toMatch(/does not match this memory/);
    expect(refusal(saved)).toBe("accepted");
  });
});
