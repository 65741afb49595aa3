/**
 * The libpcap file format (Ethernet link type) that tcpdump, Wireshark and tshark read, and a
 * capture port that keeps the file in memory: for a browser page (download it as a Blob) or
 * any host without a file to write. PcapPort (pcap-port.ts) writes the same bytes to a file.
 *
 * A capture port is `promiscuous` (the switch copies every frame to it). By default it does not
 * take partial checksums, so the switch finishes them on their way here and the capture shows
 * what a wire would carry; `raw` captures frames as the guests sent them.
 */
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

export const SNAPLEN = 65535;
const LINKTYPE_ETHERNET = 1;

/** The 24-byte file header: microsecond timestamps, little-endian, version 2.4. */
export function pcapFileHeader(): Uint8Array {
  const h = new Uint8Array(24);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0xa1b2c3d4, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, SNAPLEN, true);
  dv.setUint32(20, LINKTYPE_ETHERNET, true);
  return h;
}

/** A record's 16-byte header for a frame of `length` bytes captured at `nowMs`. */
export function pcapRecordHeader(length: number, nowMs = Date.now()): Uint8Array {
  const r = new Uint8Array(16);
  const dv = new DataView(r.buffer);
  dv.setUint32(0, Math.floor(nowMs / 1000), true);
  dv.setUint32(4, (nowMs % 1000) * 1000, true);
  dv.setUint32(8, Math.min(length, SNAPLEN), true);
  dv.setUint32(12, length, true);
  return r;
}

/** A capture port whose file grows in memory. */
export class PcapCapture implements SwitchPort {
  readonly name: string;
  readonly acceptsPartial: boolean;
  /** Large segments are recorded whole, as a capture on a host with GRO/TSO shows them. */
  readonly acceptsGso = true;
  readonly promiscuous = true;
  frames = 0;
  private chunks: Uint8Array[] = [pcapFileHeader()];
  private attached = true;

  constructor(private readonly sw: Switch, opts: { raw?: boolean; name?: string } = {}) {
    this.name = opts.name ?? "pcap";
    this.acceptsPartial = opts.raw === true;
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    if (!this.attached) return;
    this.chunks.push(pcapRecordHeader(frame.data.length), frame.data.slice(0, SNAPLEN));
    this.frames++;
  }

  /** The capture so far, as a pcap file. */
  bytes(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of this.chunks) { out.set(c, at); at += c.length; }
    return out;
  }

  /** The capture so far as a Blob (application/vnd.tcpdump.pcap), e.g. for a download link. */
  blob(): Blob {
    return new Blob([this.bytes()], { type: "application/vnd.tcpdump.pcap" });
  }

  close(): void {
    if (!this.attached) return;
    this.attached = false;
    this.sw.detach(this);
  }
}
