/**
 * A removed guest memory region is gone for everything the device holds: RX chains it pooled
 * (MRG_RXBUF) or a TX frame it is half-way through segmenting must not be written or read
 * there afterwards (after vhost-user REM_MEM_REG + ADD_MEM_REG the same Wasm range may hold
 * another guest's memory).
 */
import { describe, expect, it } from "vitest";
import { BackendKind, Code, Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { fixture } from "../helpers/setup.js";

const PAINT = 0xa5;

describe("removing a guest memory region", () => {
  it("pooled RX chains in the removed region are never written", () => {
    // Two regions around a hole; the rings sit in the first, most buffers in the second.
    const f = fixture({ guestSize: 4 << 20, holes: [{ start: 0x20000, end: 0x30000 }], backend: BackendKind.VNET_HDR,
      features: featureMask(Feature.VERSION_1, Feature.MRG_RXBUF) });
    f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.MRG_RXBUF), 64);
    // Push the buffers past the first region (the rings stay in it).
    while (f.drv.alloc(256) < 0x20000 - 1100);
    f.drv.postRx(60, { parts: [1000] });
    const second = f.mem.regions[1];
    const hdr = new Uint8Array(12);
    // The device takes chains for a frame, then the backend has nothing: they stay pooled.
    expect(f.dev.rxNext()).toBeGreaterThan(0);
    f.dev.rxAbort();
    expect(f.dev.removeRegion(second.gpa)).toBe(true);
    const u8 = new Uint8Array(f.mem.memory.buffer);
    u8.fill(PAINT, second.wasm, second.wasm + second.size);
    for (let i = 0; i < 10; i++) f.dev.receive(buildFrame({ ip: 4, l4: "udp", payload: payload(1400, i) }).frame, hdr);
    f.dev.flushRx();
    const touched = u8.subarray(second.wasm, second.wasm + second.size).findIndex((b) => b !== PAINT);
    expect(touched, `byte ${touched} of the removed region was written`).toBe(-1);
  });

  it("a TX frame half-way through software segmentation is finished, not continued into the removed region", () => {
    const f = fixture({ guestSize: 4 << 20, holes: [{ start: 0x20000, end: 0x30000 }], backend: BackendKind.PLAIN,
      features: featureMask(Feature.VERSION_1, Feature.CSUM, Feature.HOST_TSO4) });
    f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.CSUM, Feature.HOST_TSO4), 64);
    // Push the frame's buffers past the first region.
    while (f.drv.alloc(256) < 0x20000 - 1100);
    const bf = buildFrame({ ip: 4, l4: "tcp", payload: payload(20000), csum: "partial" });
    f.drv.send(bf.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: bf.l4Off, csumOffset: 16 } });
    const second = f.mem.regions[1];
    let sent = 0;
    // Two segments go out, then the backend pushes back and the region goes away.
    f.dev.processTx(() => (sent++ < 2 ? 1500 : Code.RETRY));
    expect(sent).toBe(3);
    expect(f.dev.removeRegion(second.gpa)).toBe(true);
    const seen: number[] = [];
    f.dev.processTx((iov, n) => {
      for (const p of f.dev.iovecs(iov, n)) if (p.addr < second.wasm + second.size && p.addr + p.len > second.wasm) seen.push(p.addr);
      return 1500;
    });
    expect(seen).toEqual([]);
    // The chain came back (used) once: the guest gets its buffer back.
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
  });
});
