/**
 * Null-backend throughput: frames/s through the engine's TX and RX paths at 64 and 1514
 * bytes, next to the same ring loop doing only a memcpy of each frame (the floor).
 */
import { buildFrame, payload } from "../host/driver/frames.js";
import { compare, fmt, table } from "./harness.js";
import { ringBench, RING } from "./ring-loop.js";

export function frameOfSize(size: number): Uint8Array {
  // TCP/IPv4: 14 + 20 + 20 bytes of headers.
  return buildFrame({ ip: 4, l4: "tcp", payload: payload(size - 54) }).frame;
}

export function deviceBench(): void {
  const rows = [["path", "size", "engine frames/s", "memcpy floor frames/s", "engine/floor"]];
  for (const size of [64, 1514]) {
    const frame = frameOfSize(size);
    const eng = ringBench({ frame });
    const flo = ringBench({ frame });
    const sink = 8 << 20;
    const txLen = eng.frameLen;
    const res = compare({
      engine: (n) => {
        for (let r = 0; r < n; r++) {
          eng.refillTx();
          eng.dev.processTx(() => txLen);
        }
      },
      floor: (n) => {
        for (let r = 0; r < n; r++) {
          flo.refillTx();
          for (let i = 0; i < RING; i++) flo.u8.copyWithin(sink, flo.txFrames[i], flo.txFrames[i] + txLen);
        }
      },
    });
    rows.push(["TX", `${size}`, fmt(res.engine.rate * RING), fmt(res.floor.rate * RING), (res.engine.rate / res.floor.rate).toFixed(2)]);

    const rxEng = ringBench({ frame });
    const rxFlo = ringBench({ frame });
    const bufs = rxFlo.txFrames; // any guest addresses of frame size do for the floor's copies
    const rx = compare({
      engine: (n) => {
        for (let r = 0; r < n; r++) {
          rxEng.refillRx();
          for (let i = 0; i < RING; i++) rxEng.dev.receive(frame);
          rxEng.dev.flushRx();
        }
      },
      floor: (n) => {
        for (let r = 0; r < n; r++) {
          rxFlo.refillRx();
          for (let i = 0; i < RING; i++) rxFlo.u8.set(frame, bufs[i]);
        }
      },
    });
    rows.push(["RX", `${size}`, fmt(rx.engine.rate * RING), fmt(rx.floor.rate * RING), (rx.engine.rate / rx.floor.rate).toFixed(2)]);
  }
  console.log("\nNull backend, driver model, ring of 256 (frames/s; ratio = engine / memcpy-only loop, median of 5 interleaved rounds)");
  table(rows);
}
