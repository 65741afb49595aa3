/**
 * Tap throughput: frames/s and Gbit/s through a real tap in a network namespace, TX and RX at
 * 64 and 1514 bytes, next to a minimal loop doing the same writev/readv calls with no engine
 * (the syscall floor). Needs root and /dev/net/tun. Runs unchanged under Node, Bun
 * (`bun dist/bench/tap.js`) and Deno (`deno run --allow-all dist/bench/tap.js`).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BackendKind, Feature, NetHdr } from "../assembly/abi.js";
import { encodeVirtioHdr } from "../host/device/header.js";
import { LinuxTap } from "../host/backends/tap-linux.js";
import { featureMask } from "../host/device/features.js";
import { TapPort } from "../host/io/tap-port.js";
import * as libc from "../host/runtime/libc.js";
import { buildFrame, payload } from "../host/driver/frames.js";
import { Netns, netTestsAvailable } from "../test/support/netns.js";
import { table } from "./harness.js";
import { ringBench, RING } from "./ring-loop.js";

const FEATURES = featureMask(Feature.VERSION_1, Feature.MAC, Feature.EVENT_IDX);
const ROUNDS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
const runtime = g.Bun ? `bun ${g.Bun.version}` : g.Deno ? `deno ${g.Deno.version.deno}` : `node ${process.version}`;

function frameOf(size: number): Uint8Array {
  // UDP/IPv4 to a MAC that is not the tap's: the kernel drops it right after the tap.
  return buildFrame({ ip: 4, l4: "udp", payload: payload(size - 42), dstMac: Uint8Array.of(2, 0, 0, 0, 0, 0x99) }).frame;
}

/** Writes an iovec array [vnet header, frame] into Wasm memory for the bare syscall loops. */
function bareIovecs(u8: Uint8Array, nativeBase: bigint, at: number, frameAt: number, frameLen: number, hdrAt: number): bigint {
  const dv = new DataView(u8.buffer);
  dv.setBigUint64(at, nativeBase + BigInt(hdrAt), true);
  dv.setBigUint64(at + 8, 12n, true);
  dv.setBigUint64(at + 16, nativeBase + BigInt(frameAt), true);
  dv.setBigUint64(at + 24, BigInt(frameLen), true);
  return nativeBase + BigInt(at);
}

function timeIt(fn: () => number): number {
  const t0 = performance.now();
  const frames = fn();
  return frames / ((performance.now() - t0) / 1000);
}

/**
 * TX of 64 KiB TSO frames (gso_size 1448) into the tap: handed to the kernel whole in one
 * writev (what TSO buys), and split by the core into 46 writevs (a tap without the offload),
 * next to bare writevs of the same GSO frame.
 */
async function gsoRows(ns: Netns, rows: string[][]): Promise<void> {
  const ring = 64;
  const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(65535 - 40), csum: "partial", dstMac: Uint8Array.of(2, 0, 0, 0, 0, 0x99) });
  const hdr = { flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1448, csumStart: b.l4Off, csumOffset: 16 };
  const features = FEATURES | featureMask(Feature.CSUM, Feature.HOST_TSO4);
  const whole = ringBench({ frame: b.frame, hdr, backend: BackendKind.VNET_HDR, features, nativeBase: libc.memoryAddress, ring });
  const split = ringBench({ frame: b.frame, hdr, backend: BackendKind.VNET_HDR, features, nativeBase: libc.memoryAddress, ring, backendGso: 0 });
  const taps = [whole, split].map((x) => {
    const tap = LinuxTap.open(Netns.tapName());
    ns.adopt(tap.name);
    ns.ip(["link", "set", tap.name, "up", "txqueuelen", "20000"]);
    const port = new TapPort(x.dev, tap, libc.memoryAddress(x.dev.memory));
    port.tap.applyNegotiated(x.dev.negotiatedFeatures);
    return { tap, port };
  });
  const nb = libc.memoryAddress(whole.dev.memory);
  const hdrAt = whole.guestBase + 0x0f00;
  whole.u8.set(encodeVirtioHdr(hdr), hdrAt);
  const iov = bareIovecs(whole.u8, nb, whole.guestBase + 0x0f80, whole.txFrames[0], b.frame.length, hdrAt);
  const ROUND_COUNT = 40;
  const r: number[][] = [[], [], []];
  for (let k = 0; k < ROUNDS; k++) {
    r[0].push(timeIt(() => { for (let i = 0; i < ROUND_COUNT; i++) { whole.refillTx(); taps[0].port.pumpTx(ring); } return ROUND_COUNT * ring; }));
    r[1].push(timeIt(() => { for (let i = 0; i < ROUND_COUNT; i++) { split.refillTx(); taps[1].port.pumpTx(ring * 64); } return ROUND_COUNT * ring; }));
    r[2].push(timeIt(() => { for (let i = 0; i < ROUND_COUNT * ring; i++) libc.writev(taps[0].tap.fd, iov, 2); return ROUND_COUNT * ring; }));
  }
  const [w, s, bare] = r.map(median);
  const gbit = (x: number) => ((x * b.frame.length * 8) / 1e9).toFixed(2);
  rows.push(["TX TSO whole", "64K", w.toFixed(0), gbit(w), bare.toFixed(0), (w / bare).toFixed(2)]);
  rows.push(["TX TSO split", "64K", s.toFixed(0), gbit(s), bare.toFixed(0), (s / bare).toFixed(2)]);
  for (const t of taps) t.tap.close();
}

export async function tapBench(): Promise<void> {
  const ok = netTestsAvailable();
  if (!ok.ok) {
    console.log(`\nTap throughput: skipped (${ok.reason})`);
    return;
  }
  const ns = Netns.create();
  const blaster = fileURLToPath(new URL("../../bench/udp-blast.mjs", import.meta.url).href.replace("/dist/bench/../../", "/"));
  const rows = [["dir", "size", "engine frames/s", "engine Gbit/s", "bare syscalls frames/s", "engine/bare"]];
  try {
    for (const size of [64, 1514]) {
      const frame = frameOf(size);
      const b = ringBench({ frame, backend: BackendKind.VNET_HDR, features: FEATURES, nativeBase: libc.memoryAddress });
      const nativeBase = libc.memoryAddress(b.dev.memory);
      const tap = LinuxTap.open(Netns.tapName());
      ns.adopt(tap.name);
      ns.ip(["addr", "add", "192.0.2.1/24", "dev", tap.name]);
      ns.ip(["link", "set", tap.name, "up", "txqueuelen", "20000"]);
      ns.ip(["neigh", "add", "192.0.2.2", "lladdr", "52:54:00:12:34:56", "dev", tap.name, "nud", "permanent"]);
      const port = new TapPort(b.dev, tap, nativeBase);
      port.tap.applyNegotiated(b.dev.negotiatedFeatures);
      const u8 = b.u8;
      const hdrAt = b.guestBase + 0x0f00;
      u8.fill(0, hdrAt, hdrAt + 12);
      const txIov = bareIovecs(u8, nativeBase, b.guestBase + 0x0f80, b.txFrames[0], frame.length, hdrAt);

      // TX: 256-frame rounds, engine (ring, header, iovecs, writev) vs bare writev of the same bytes.
      const ROUND_COUNT = 200;
      const txEngine: number[] = [];
      const txBare: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        txEngine.push(timeIt(() => {
          for (let i = 0; i < ROUND_COUNT; i++) { b.refillTx(); port.pumpTx(RING); }
          return ROUND_COUNT * RING;
        }));
        txBare.push(timeIt(() => {
          for (let i = 0; i < ROUND_COUNT * RING; i++) libc.writev(tap.fd, txIov, 2);
          return ROUND_COUNT * RING;
        }));
      }
      const te = median(txEngine);
      const tb = median(txBare);
      rows.push(["TX", `${size}`, te.toFixed(0), ((te * size * 8) / 1e9).toFixed(2), tb.toFixed(0), (te / tb).toFixed(2)]);

      // RX: fill the tap's queue from the namespace, then time the drain.
      const N = 20000;
      const rxBufAt = b.guestBase + 0x100000;
      const rxIov = bareIovecs(u8, nativeBase, b.guestBase + 0x0fc0, rxBufAt, 2048, hdrAt);
      const blast = () => execFileSync("ip", ["netns", "exec", ns.name, process.execPath, blaster, "192.0.2.2", "9", String(N), String(size - 42)]);
      const rxEngine: number[] = [];
      const rxBare: number[] = [];
      // Buffers posted and not yet used: refill (all 256 heads, in order) only when none are left.
      let posted = 0;
      for (let r = 0; r < ROUNDS; r++) {
        blast();
        rxEngine.push(timeIt(() => {
          let got = 0;
          for (;;) {
            if (posted === 0) { b.refillRx(); posted = RING; }
            const before = port.rxPackets;
            const stop = port.pumpRx(posted);
            const n = port.rxPackets - before;
            got += n;
            posted -= n;
            if (stop === "drained") return got;
            if (stop !== "budget" && stop !== "no-buffers") throw new Error(`RX pump stopped: ${stop}`);
          }
        }));
        blast();
        rxBare.push(timeIt(() => {
          let got = 0;
          while (libc.readv(tap.fd, rxIov, 2) > 0) got++;
          return got;
        }));
      }
      const re = median(rxEngine);
      const rb = median(rxBare);
      rows.push(["RX", `${size}`, re.toFixed(0), ((re * size * 8) / 1e9).toFixed(2), rb.toFixed(0), (re / rb).toFixed(2)]);
      tap.close();
    }
    await gsoRows(ns, rows);
  } finally {
    ns.destroy();
  }
  console.log(`\nTap throughput (${runtime}), one thread, real tap in a namespace; medians of ${ROUNDS} interleaved runs`);
  console.log("(TSO rows: frames/s are 64 KiB frames from the guest; \"split\" = the core segments them into 46 writevs)");
  table(rows);
}

if (process.argv[1]?.endsWith("tap.js")) await tapBench();
