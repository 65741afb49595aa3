/**
 * A capture port: writes every frame the switch floods or forwards to it into a standard
 * libpcap file (Ethernet link type) that tcpdump, Wireshark and tshark read. By default it is a
 * port that does not take partial checksums, so the switch finishes them on their way here and
 * the capture shows what a wire would carry; `raw` captures frames as the guests sent them.
 * Add it with `promiscuous`: a switch delivers only flooded frames to a port it has not learned,
 * so the switch copies every frame to a promiscuous port.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

const SNAPLEN = 65535;
const LINKTYPE_ETHERNET = 1;

export class PcapPort implements SwitchPort {
  readonly name: string;
  readonly acceptsPartial: boolean;
  /** Large segments are recorded whole, as a capture on a host with GRO/TSO shows them. */
  readonly acceptsGso = true;
  readonly promiscuous = true;
  private fd: number;
  /** Frames written. */
  frames = 0;

  constructor(private readonly sw: Switch, readonly path: string, opts: { raw?: boolean } = {}) {
    this.name = `pcap:${path}`;
    this.acceptsPartial = opts.raw === true;
    this.fd = openSync(path, "w");
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0); // microsecond timestamps, little-endian
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, h);
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    if (this.fd < 0) return;
    const now = Date.now();
    const len = Math.min(frame.data.length, SNAPLEN);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(now / 1000), 0);
    rec.writeUInt32LE((now % 1000) * 1000, 4);
    rec.writeUInt32LE(len, 8);
    rec.writeUInt32LE(frame.data.length, 12);
    writeSync(this.fd, rec);
    writeSync(this.fd, frame.data, 0, len);
    this.frames++;
  }

  close(): void {
    if (this.fd < 0) return;
    this.sw.detach(this);
    closeSync(this.fd);
    this.fd = -1;
  }
}
