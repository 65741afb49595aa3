/**
 * Software segmentation throughput, null backend: 64 KiB TCP/IPv4 TSO frames from the guest
 * (gso_size 1448) split by the core into 45 frames each, for a plain backend (every segment's
 * checksum computed over its payload) and for a virtio_net_hdr backend without TSO (checksums
 * left partial: headers only). The floor is a memcpy of the same bytes in one JS call per
 * frame, i.e. what any copying segmenter would at least pay. Gbit/s of frame bytes.
 */
import { BackendKind, Feature, NetHdr } from "../assembly/abi.js";
import { featureMask } from "../host/device/features.js";
import { buildFrame, payload } from "../host/driver/frames.js";
import { compare, fmt, table } from "./harness.js";
import { ringBench } from "./ring-loop.js";

const RING = 64;
const MSS = 1448;
const FEATURES = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX, Feature.HOST_TSO4);

export function segmentBench(): void {
  const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(65535 - 40), csum: "partial" });
  const hdr = { flags: NetHdr.F_NEEDS_CSUM, gsoType: NetHdr.GSO_TCPV4, gsoSize: MSS, csumStart: b.l4Off, csumOffset: 16 };
  const plain = ringBench({ frame: b.frame, hdr, features: FEATURES, backend: BackendKind.PLAIN, ring: RING });
  const partial = ringBench({ frame: b.frame, hdr, features: FEATURES, backend: BackendKind.VNET_HDR, backendGso: 0, ring: RING });
  const floor = ringBench({ frame: b.frame, hdr, features: FEATURES, ring: RING });
  const sink = floor.txFrames[RING - 1] + b.frame.length + 4096;
  let segments = 0;
  const res = compare({
    "segment, checksums computed": (n) => {
      for (let r = 0; r < n; r++) { plain.refillTx(); segments += plain.dev.processTx(() => 0); }
    },
    "segment, checksums partial": (n) => {
      for (let r = 0; r < n; r++) { partial.refillTx(); partial.dev.processTx(() => 0); }
    },
    "memcpy floor": (n) => {
      for (let r = 0; r < n; r++) {
        floor.refillTx();
        for (let i = 0; i < RING; i++) floor.u8.copyWithin(sink, floor.txFrames[i], floor.txFrames[i] + b.frame.length);
      }
    },
  });
  const perRound = RING * b.frame.length * 8;
  const frames = Math.ceil((b.frame.length - b.l4Off - 20) / MSS);
  if (segments === 0) throw new Error("segmentation bench produced no frames");
  const rows = [["path", "Gbit/s", "frames/s", "vs memcpy floor"]];
  for (const [name, r] of Object.entries(res)) {
    rows.push([name, (r.rate * perRound / 1e9).toFixed(1), name.startsWith("memcpy") ? "-" : fmt(r.rate * RING * frames), (r.rate / res["memcpy floor"].rate).toFixed(2)]);
  }
  console.log(`\nSoftware segmentation, null backend: 64 KiB TSO frames -> ${frames} x ${MSS}-byte segments (ring ${RING}; median of 5 interleaved rounds)`);
  table(rows);
}
if (process.argv[1]?.endsWith("segment.js")) segmentBench();
