/**
 * TapPort's error branches without root or a tap: a stand-in TapIo scripts what writev and
 * readv return (bytes, -EAGAIN, -ENOBUFS, -EIO) and reads/writes the core's iovecs in the Wasm
 * memory itself (nativeBase 0: iovec addresses are Wasm addresses).
 */
import { constants } from "node:os";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { TapPort, type TapIo } from "../../host/io/tap-port.js";
import { EPOLLIN, EPOLLOUT } from "../../host/runtime/libc.js";
import { gather, scatter } from "../helpers/iovecs.js";
import { fixture } from "../helpers/setup.js";

const { EAGAIN, ENOBUFS, EIO } = constants.errno;
const HDR = 12;

/** A tap whose next results are scripted; a number is -errno, a frame is what the kernel hands over. */
class ScriptedTap implements TapIo {
  readonly name = "scripted0";
  readonly vnetHdr = true;
  readonly written: Uint8Array[] = [];
  writes: number[] = [];
  reads: (Uint8Array | number)[] = [];

  constructor(private readonly memory: WebAssembly.Memory) {}

  writev(iov: bigint, n: number): number {
    const r = this.writes.shift();
    if (r !== undefined && r < 0) return r;
    const frame = gather(this.memory, iov, n);
    this.written.push(frame);
    return frame.length;
  }

  readv(iov: bigint, n: number): number {
    const r = this.reads.shift() ?? -EAGAIN;
    if (typeof r === "number") return r;
    return scatter(this.memory, iov, n, r);
  }
}

function setup() {
  const f = fixture({ backend: BackendKind.VNET_HDR });
  f.drv.bringUp(featureMask(Feature.VERSION_1, Feature.MAC), 64);
  const tap = new ScriptedTap(f.mem.memory);
  return { f, tap, port: new TapPort(f.dev, tap, 0n) };
}

const frame = (n: number) => buildFrame({ ip: 4, l4: "udp", payload: payload(20 + n, n) }).frame;
/** A frame as the kernel hands it over: a zero virtio_net_hdr, then the frame. */
const fromKernel = (n: number) => { const b = new Uint8Array(HDR + frame(n).length); b.set(frame(n), HDR); return b; };

describe("TapPort's error branches (a scripted tap, no root)", () => {
  it("TX: EAGAIN keeps the frame on the ring and waits for EPOLLOUT; the next pump sends it once", () => {
    const { f, tap, port } = setup();
    f.drv.send(frame(1));
    tap.writes = [-EAGAIN];
    expect(port.pumpTx()).toBe("tap-full");
    expect(port.stats.tapFull).toBe(1);
    expect(port.tapEvents() & EPOLLOUT).toBe(EPOLLOUT);
    expect(tap.written).toHaveLength(0);
    expect(f.drv.usedPending(QueueIndex.TX)).toBe(false);
    expect(port.pumpTx()).toBe("empty");
    expect(tap.written.map((w) => w.subarray(HDR))).toEqual([frame(1)]);
    expect(port.tapEvents() & EPOLLOUT).toBe(0);
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(1);
  });

  it("TX: ENOBUFS drops the frame as a NIC would (used, not an error); the next frame goes out", () => {
    const { f, tap, port } = setup();
    f.drv.send(frame(1));
    f.drv.send(frame(2));
    tap.writes = [-ENOBUFS];
    expect(port.pumpTx()).toBe("empty");
    expect(port.stats.tapWriteErrors).toBe(0);
    expect(tap.written.map((w) => w.subarray(HDR))).toEqual([frame(2)]);
    expect(f.drv.takeUsed(QueueIndex.TX)).toHaveLength(2);
  });

  it("TX: any other error is a tap fault, counted and named", () => {
    const { f, tap, port } = setup();
    f.drv.send(frame(1));
    tap.writes = [-EIO];
    expect(port.pumpTx()).toBe("tap-error");
    expect(port.stats).toMatchObject({ tapWriteErrors: 1, lastError: "writev: EIO" });
  });

  it("TX: a budget stops the pump with work pending", () => {
    const { f, port } = setup();
    for (let i = 0; i < 5; i++) f.drv.send(frame(i));
    expect(port.pumpTx(2)).toBe("budget");
    expect(port.workPending).toBe(true);
    expect(port.pumpTx(2)).toBe("budget");
    expect(port.pumpTx(2)).toBe("empty");
    expect(port.workPending).toBe(false);
    expect(port.moved).toBe(5);
  });

  it("RX: EAGAIN gives the buffer back (drained); the frame read later lands in it", () => {
    const { f, tap, port } = setup();
    f.drv.postRx(1);
    tap.reads = [-EAGAIN];
    expect(port.pumpRx()).toBe("drained");
    expect(f.drv.usedPending(QueueIndex.RX)).toBe(false);
    tap.reads = [fromKernel(3)];
    // The one buffer is filled; the pump then stops for want of another.
    expect(port.pumpRx()).toBe("no-buffers");
    expect(f.drv.receiveAll().map((r) => r.frame)).toEqual([frame(3)]);
  });

  it("RX: a read error is a tap fault, counted and named; the guest's buffer is not used", () => {
    const { f, tap, port } = setup();
    f.drv.postRx(1);
    tap.reads = [-EIO];
    expect(port.pumpRx()).toBe("tap-error");
    expect(port.stats).toMatchObject({ tapReadErrors: 1, lastError: "readv: EIO" });
    expect(f.drv.usedPending(QueueIndex.RX)).toBe(false);
  });

  it("RX: without guest buffers the tap is not watched for input until the guest posts some", () => {
    const { f, tap, port } = setup();
    tap.reads = [fromKernel(1)];
    expect(port.pumpRx()).toBe("no-buffers");
    expect(port.tapEvents() & EPOLLIN).toBe(0);
    f.drv.postRx(2);
    port.buffersPosted();
    expect(port.tapEvents() & EPOLLIN).toBe(EPOLLIN);
    expect(port.pumpRx()).toBe("drained");
    expect(f.drv.receiveAll().map((r) => r.frame)).toEqual([frame(1)]);
  });

  it("refuses a device whose backend kind does not match the tap's header", () => {
    const f = fixture({ backend: BackendKind.PLAIN });
    expect(() => new TapPort(f.dev, new ScriptedTap(f.mem.memory), 0n)).toThrow(/must be VNET_HDR for tap scripted0/);
  });
});
