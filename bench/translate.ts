/**
 * Cost of checksum-offload translation per frame: TX (guest NEEDS_CSUM → backend header) and
 * RX (backend header → guest header), for virtio_net_hdr and tun_hdr backends, next to the
 * same path with no checksum work (flags 0) and with software completion (plain backend).
 */
import { BackendKind, Feature, NetHdr, TunHdr } from "../assembly/abi.js";
import { encodeTunHdr, encodeVirtioHdr } from "../host/device/header.js";
import { featureMask } from "../host/device/features.js";
import { buildFrame, payload } from "../host/driver/frames.js";
import { compare, table } from "./harness.js";
import { ringBench, RING } from "./ring-loop.js";

const FEATURES = featureMask(Feature.VERSION_1, Feature.MAC, Feature.CSUM, Feature.GUEST_CSUM, Feature.EVENT_IDX);

export function translateBench(): void {
  const rows = [["direction", "size", "no csum ns", "vnet_hdr ns", "tun_hdr ns", "software ns"]];
  for (const size of [64, 1514]) {
    const b = buildFrame({ ip: 4, l4: "tcp", payload: payload(size - 54), csum: "partial" });
    const partial = { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: 16 };
    const txRing = (backend: BackendKind, hdr: typeof partial | undefined) => {
      const r = ringBench({ frame: b.frame, hdr, backend, features: FEATURES });
      return (n: number) => { for (let i = 0; i < n; i++) { r.refillTx(); r.dev.processTx(() => 0); } };
    };
    const tx = compare({
      none: txRing(BackendKind.VNET_HDR, undefined),
      vnet: txRing(BackendKind.VNET_HDR, partial),
      tun: txRing(BackendKind.TUN_HDR, partial),
      soft: txRing(BackendKind.PLAIN, partial),
    });
    const ns = (r: { rate: number }) => (1e9 / (r.rate * RING)).toFixed(0);
    rows.push(["TX", `${size}`, ns(tx.none), ns(tx.vnet), ns(tx.tun), ns(tx.soft)]);

    const rxRing = (backend: BackendKind, header: Uint8Array | undefined, features = FEATURES) => {
      const r = ringBench({ frame: b.frame, backend, features });
      return (n: number) => {
        for (let i = 0; i < n; i++) {
          r.refillRx();
          for (let k = 0; k < RING; k++) r.dev.receive(b.frame, header);
          r.dev.flushRx();
        }
      };
    };
    const rx = compare({
      none: rxRing(BackendKind.VNET_HDR, encodeVirtioHdr({})),
      vnet: rxRing(BackendKind.VNET_HDR, encodeVirtioHdr(partial)),
      tun: rxRing(BackendKind.TUN_HDR, encodeTunHdr({ flags: TunHdr.F_TCP_CSUM })),
      // A guest without GUEST_CSUM: the device finishes the checksum in its buffer.
      soft: rxRing(BackendKind.VNET_HDR, encodeVirtioHdr(partial), featureMask(Feature.VERSION_1, Feature.MAC)),
    });
    rows.push(["RX", `${size}`, ns(rx.none), ns(rx.vnet), ns(rx.tun), ns(rx.soft)]);
  }
  console.log("\nPer-frame device time by header kind (ns/frame, whole path incl. ring work; RX includes the JS copy into guest buffers)");
  table(rows);
}
