/**
 * The embedded demo: two guests (driver models) with virtio-net devices on one Wasm memory,
 * wired back to back in-process through their virtio_net_hdr ports. Guest A negotiates
 * checksum offload the way Linux does; guest B first negotiates nothing, then offloads.
 * Every frame B receives is checked against an independent checksum.
 */
import { BackendKind, Feature, NetHdr, QueueIndex } from "../../assembly/abi.js";
import { featureList, featureMask } from "../device/features.js";
import { VirtioNetDevice } from "../device/virtio-net.js";
import { createGuestMemory } from "../memory/layout.js";
import { GuestDriver } from "../driver/guest-driver.js";
import { buildFrame, completePartial, l4ChecksumValid, payload } from "../driver/frames.js";

export interface DemoOptions {
  frames: number;
  log: (line: string) => void;
}

const LINUX_LIKE = featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS, Feature.MTU, Feature.CSUM,
  Feature.GUEST_CSUM, Feature.EVENT_IDX, Feature.INDIRECT_DESC);
const MINIMAL = featureMask(Feature.VERSION_1, Feature.MAC);

/** Runs the demo; returns false if any delivered frame had a bad checksum. */
export function runDemo(opts: DemoOptions): boolean {
  const { log } = opts;
  const mem = createGuestMemory({ guestSize: 8 << 20, devices: 2 });
  // Each guest gets its own half of guest RAM.
  const half = mem.guestSize / 2;
  const regions = [0, 1].map((i) => [{ gpa: 0n, size: half, wasm: mem.guestBase + i * half }]);
  const devs = [0, 1].map((i) => new VirtioNetDevice({
    memory: mem.memory, stateAddress: mem.stateAddresses[i], regions: regions[i],
    mac: `52:54:00:00:00:0${i + 1}`, backend: BackendKind.VNET_HDR,
  }));
  const guests = [0, 1].map((i) => new GuestDriver({ memory: mem.memory, regions: regions[i] }, devs[i], i + 1));
  log(`two virtio-net devices in one ${(mem.memory.buffer.byteLength / 2 ** 20).toFixed(0)} MiB Wasm memory (state blocks at ${mem.stateAddresses.join(", ")})`);

  let allValid = true;
  for (const [phase, bFeatures] of [["guest B negotiates no offload", MINIMAL], ["guest B negotiates checksum offload", LINUX_LIKE]] as const) {
    guests[0].bringUp(LINUX_LIKE, 256);
    guests[1].bringUp(bFeatures, 256);
    log("");
    log(`— ${phase}`);
    log(`  A negotiated: ${featureList(devs[0].negotiatedFeatures).join(" ")}`);
    log(`  B negotiated: ${featureList(devs[1].negotiatedFeatures).join(" ")}`);
    let delivered = 0;
    let valid = 0;
    let sent = 0;
    // Counters survive device reset (like Firecracker's): report this phase's deltas.
    const txA0 = devs[0].metrics(QueueIndex.TX);
    const rxB0 = devs[1].metrics(QueueIndex.RX);
    while (sent < opts.frames) {
      const batch = Math.min(128, opts.frames - sent);
      guests[1].postRx(batch);
      const specs = Array.from({ length: batch }, (_, k) => buildFrame({
        ip: (sent + k) % 2 ? 6 : 4, l4: (sent + k) % 3 ? "tcp" : "udp", payload: payload(64 + ((sent + k) * 37) % 1336), csum: "partial",
      }));
      // Guest A sends with partial checksums, as Linux does once CSUM is negotiated.
      for (const b of specs) guests[0].send(b.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: b.l4Off, csumOffset: b.csumField } });
      // The port between them carries virtio_net_hdr: A's TX becomes B's RX, nothing copied twice.
      for (const out of devs[0].collectTx()) devs[1].receive(out.frame, out.header);
      devs[1].flushRx();
      guests[0].takeUsed(QueueIndex.TX);
      const received = guests[1].receiveAll();
      if (received.length !== batch) log(`  ! ${batch - received.length} frames of this batch were dropped`);
      for (const [k, rx] of received.entries()) {
        delivered++;
        const b = specs[k];
        // A guest with GUEST_CSUM finishes the sum itself if asked to (NEEDS_CSUM); check as it would.
        let frame = rx.frame;
        if (rx.hdr.flags & NetHdr.F_NEEDS_CSUM) frame = completePartial(frame, rx.hdr.csumStart, rx.hdr.csumOffset);
        if (l4ChecksumValid(b, frame)) valid++;
      }
      sent += batch;
    }
    const txA = devs[0].metrics(QueueIndex.TX);
    const rxB = devs[1].metrics(QueueIndex.RX);
    const computed = txA.csumSoftware - txA0.csumSoftware + rxB.csumSoftware - rxB0.csumSoftware;
    const untouched = rxB.csumOffloaded - rxB0.csumOffloaded;
    log(`  A→B frames sent: ${sent}, delivered: ${delivered}, checksums valid at B: ${valid}/${delivered}`);
    log(`  checksums computed by the device: ${computed}; partial checksums handed on untouched: ${untouched}`);
    if (valid !== delivered || delivered !== sent) allValid = false;
    for (const d of devs) d.setStatus(0);
  }
  return allValid;
}
