/**
 * Fuzzing the v86 adapter where it touches guest memory: a stand-in for v86 (its virtio
 * register file, its I/O port table, its PCI config space with the notify capability, and one
 * Wasm memory holding the guest's RAM at an offset, as v86 0.5's does) driven by the driver
 * model with random features, ring layouts and sizes, frames both ways through the embedded
 * network (the gateway answers), guest-side ring mutations and driver resets (new rings: the
 * adapter must follow). After every case: nothing outside v86's guest RAM and the state block it
 * allocated changed, every range reported to jit_dirty_cache lies in guest RAM, nothing threw.
 */
import { describe, expect, it } from "vitest";
import { Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { V86VirtioNet, type V86Like, type V86Virtio, type V86WasmExports } from "../../host/emulators/v86.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";
import { GuestDriver, rng, type DriverTransport } from "../../host/driver/guest-driver.js";
import { buildFrame, type L4 } from "../../host/driver/frames.js";

const CASES = Math.max(20, Math.floor(Number(process.env.VNW_FUZZ_CASES ?? 2000) / 20));
const SEED = Number(process.env.VNW_FUZZ_SEED ?? 1);
const RAM = 2 << 20;
const RAM_AT = 1 << 20; // v86's guest RAM inside its memory
const HEAP = 64 << 10; // where the stand-in's v86_malloc hands out memory
const NOTIFY_BAR = 0xc000;

/** PCI config space with a capability list holding VIRTIO_PCI_CAP_NOTIFY_CFG (multiplier 4, offset 0x10). */
function pciSpace(): Uint8Array {
  const ps = new Uint8Array(256);
  new DataView(ps.buffer).setUint32(0x10, NOTIFY_BAR | 1, true);
  ps[0x34] = 0x40;
  ps.set([0x09, 0, 20, 2, 0], 0x40);
  new DataView(ps.buffer).setUint32(0x48, 0x10, true);
  new DataView(ps.buffer).setUint32(0x50, 4, true);
  return ps;
}

/** The canary pattern, made once. */
const CANARY = new Uint8Array(RAM_AT + RAM).map((_, i) => (i * 131 + 17) & 0xff);
/** v86's I/O port table (the adapter replaces the two notify entries; they are reset per case). */
const PORTS = Array.from({ length: 0x10000 }, () => ({ write16: (_v: number) => {}, write8: (_v: number) => {} }));
/** What the cases reached, summed. */
const reached = { txPackets: 0, rxPackets: 0, syncs: 0, ctrl: 0 };

function fuzzCase(seed: number): void {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const memory = new WebAssembly.Memory({ initial: (RAM_AT + RAM) / 65536 });
  const u8 = new Uint8Array(memory.buffer);
  u8.set(CANARY);
  const canary = CANARY;
  const dirty: [number, number][] = [];
  let heap = HEAP;
  const wasm: V86WasmExports = {
    memory,
    v86_malloc: (n) => { const at = heap; heap += (n + 15) & ~15; return at; },
    jit_dirty_cache: (a, b) => { dirty.push([a, b]); },
  };
  const queues = [0, 1, 2].map(() => ({ size: 0, enabled: false, desc_addr: 0, avail_addr: 0, used_addr: 0 }));
  const virtio: V86Virtio = {
    device_feature: new Uint32Array(2), driver_feature: new Uint32Array(2), device_status: 0, queues, pci_space: pciSpace(),
    raise_irq: () => {},
  };
  const ports = PORTS;
  const emulator: V86Like = { v86: { cpu: { mem8: new Uint8Array(memory.buffer, RAM_AT, RAM), io: { ports }, devices: { virtio_net: { virtio, mac: Uint8Array.of(2, 0, 0, 0, 0, 9) } } } } };
  const net = embeddedNetwork({ subnet: "198.51.100.0" });
  const adapter = new V86VirtioNet(emulator, wasm, { network: net.sw });
  const stateRange: [number, number] = [HEAP, heap];
  // The driver model programs v86's registers as the guest's driver would through its BARs.
  const transport: DriverTransport = {
    setStatus: (v) => { virtio.device_status = v; return v; },
    setDriverFeatures: (f) => { virtio.driver_feature[0] = Number(f & 0xffff_ffffn); virtio.driver_feature[1] = Number(f >> 32n); return true; },
    configureQueue: (q, size, desc, avail, used) => { Object.assign(queues[q], { size, desc_addr: Number(desc), avail_addr: Number(avail), used_addr: Number(used) }); return 0; },
    enableQueue: (q, on) => { queues[q].enabled = on; return 0; },
  };
  const regions = [{ gpa: 0n, size: 0xa0000, wasm: RAM_AT }, { gpa: 0x100000n, size: RAM - 0x100000, wasm: RAM_AT + 0x100000 }];
  const notify = (q: QueueIndex) => ports[NOTIFY_BAR + 0x10 + 4 * q].write16(q);
  const offered = (BigInt(virtio.device_feature[1]) << 32n) | BigInt(virtio.device_feature[0]);
  for (let boot = int(1, 3); boot > 0; boot--) {
    const drv = new GuestDriver({ memory, regions }, transport, seed + boot);
    let want = 0n;
    for (const f of [Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX, Feature.MRG_RXBUF, Feature.INDIRECT_DESC, Feature.HOST_TSO4, Feature.GUEST_TSO4, Feature.MAC,
      Feature.CTRL_VQ, Feature.CTRL_RX, Feature.CTRL_VLAN, Feature.CTRL_MAC_ADDR, Feature.GUEST_ANNOUNCE, Feature.RING_PACKED]) {
      if (r() < 0.7) want |= featureMask(f);
    }
    if (!(want & featureMask(Feature.CTRL_VQ))) want &= ~featureMask(Feature.CTRL_RX, Feature.CTRL_VLAN, Feature.CTRL_MAC_ADDR, Feature.GUEST_ANNOUNCE);
    drv.negotiate(want & offered);
    try { drv.setupQueues(pick([16, 64, 256])); } catch { break; }
    drv.start();
    try { drv.postRx(int(0, 32), { parts: [pick([60, 1526, 4096])], indirect: r() < 0.2 }); } catch { /* RAM full */ }
    notify(QueueIndex.RX);
    for (let n = int(0, 10); n > 0; n--) {
      const frame = r() < 0.5
        ? buildFrame({ ip: pick([4, 6] as const), l4: pick<L4>(["icmp", "udp", "tcp"]), payload: new Uint8Array(int(0, 1400)), srcMac: Uint8Array.of(2, 0, 0, 0, 0, 9), dstMac: r() < 0.5 ? net.gateway.mac : undefined, dst: net.gateway.ip, csum: pick(["full", "partial"] as const) }).frame
        : new Uint8Array(int(14, 200)).map(() => int(0, 255));
      try { drv.send(frame, { splits: [int(1, frame.length + 12)], indirect: r() < 0.2 }); } catch { break; }
    }
    // Where a hostile or broken guest would scribble: its own rings.
    for (let m = r() < 0.4 ? int(1, 4) : 0; m > 0; m--) {
      const q = drv.queues[pick(drv.queues[QueueIndex.CTRL] ? [QueueIndex.RX, QueueIndex.TX, QueueIndex.CTRL] : [QueueIndex.RX, QueueIndex.TX])];
      const dv = new DataView(memory.buffer);
      const at = drv.wasm(pick([q.desc + BigInt(16 * int(0, q.size - 1)), q.avail + 2n, q.avail + 4n]));
      dv.setUint16(at, int(0, 0xffff), true);
    }
    // Control commands (the MAC one changes v86's config space through the adapter).
    if (drv.queues[QueueIndex.CTRL]) {
      for (let n = int(0, 4); n > 0; n--) {
        const data = new Uint8Array(pick([0, 1, 2, 6, 14, int(0, 40)])).map(() => (r() < 0.5 ? int(0, 2) : int(0, 255)));
        try { drv.queueCtrl(int(0, 6), int(0, 5), data, { splits: [int(1, data.length + 1)] }); } catch { break; }
      }
      if (r() < 0.2) adapter.announce();
      notify(QueueIndex.CTRL);
      drv.takeUsed(QueueIndex.CTRL);
    }
    notify(QueueIndex.TX);
    notify(QueueIndex.RX);
    drv.takeUsed(QueueIndex.RX);
    drv.takeUsed(QueueIndex.TX);
    // A driver reset: status 0, then new rings next boot (the adapter re-syncs on DRIVER_OK).
    transport.setStatus(0);
  }
  const ramStart = RAM_AT;
  const ramEnd = RAM_AT + RAM;
  for (const [a, b] of dirty) {
    if (a < 0 || b > RAM || a > b) throw new Error(`seed ${seed}: jit_dirty_cache(${a}, ${b}) outside guest RAM`);
  }
  reached.txPackets += adapter.dev.metrics(QueueIndex.TX).packets;
  reached.rxPackets += adapter.dev.metrics(QueueIndex.RX).packets;
  reached.syncs += adapter.counters.syncs;
  reached.ctrl += adapter.dev.metrics(QueueIndex.CTRL).packets;
  net.sw.detach(adapter.port);
  const a32 = new Uint32Array(memory.buffer);
  const c32 = new Uint32Array(canary.buffer);
  for (let w = 0; w < a32.length; w++) {
    if (a32[w] === c32[w]) continue;
    for (let i = 4 * w; i < 4 * w + 4; i++) {
    if (u8[i] === canary[i]) continue;
    if (i >= ramStart && i < ramEnd) continue;
    if (i >= stateRange[0] && i < stateRange[1]) continue;
    throw new Error(`seed ${seed}: byte ${i} outside v86's guest RAM and the adapter's state block was written`);
    }
  }
}

describe("v86 adapter fuzzing", () => {
  it(`${CASES} cases from seed ${SEED}: nothing outside guest RAM and the state block written, dirty ranges in guest RAM`, async () => {
    const t0 = performance.now();
    for (let i = 0; i < CASES; i++) {
      fuzzCase(SEED * 1_000_003 + i);
      // Long runs yield now and then, so vitest's worker can still report to its parent.
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    const s = (performance.now() - t0) / 1000;
    console.log(`v86 adapter fuzz: ${CASES} cases in ${s.toFixed(1)} s (${(CASES / s).toFixed(0)} cases/s); reached ${JSON.stringify(reached)}`);
    // The cases get through the adapter into the data path, and through driver resets.
    expect(reached.txPackets).toBeGreaterThan(CASES);
    expect(reached.rxPackets).toBeGreaterThan(0);
    expect(reached.syncs).toBeGreaterThan(CASES);
    expect(reached.ctrl).toBeGreaterThan(CASES / 4);
  }, 3_600_000);
});
