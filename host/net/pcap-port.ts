/**
 * A capture port that writes every frame into a libpcap file on disk as it arrives (the format
 * and the in-memory variant for browsers are in pcap.ts). By default it does not take partial
 * checksums, so the switch finishes them on their way here and the capture shows what a wire
 * would carry; `raw` captures frames as the guests sent them. It is `promiscuous`: the switch
 * copies every frame to it.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { pcapFileHeader, pcapRecordHeader, SNAPLEN } from "./pcap.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

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
    writeSync(this.fd, pcapFileHeader());
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    if (this.fd < 0) return;
    writeSync(this.fd, pcapRecordHeader(frame.data.length));
    writeSync(this.fd, frame.data, 0, Math.min(frame.data.length, SNAPLEN));
    this.frames++;
  }

  close(): void {
    if (this.fd < 0) return;
    this.sw.detach(this);
    closeSync(this.fd);
    this.fd = -1;
  }
}
