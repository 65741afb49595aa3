/**
 * A switch port over a WebSocket: links a page's switch to a host process's embedded network
 * (`virtio-net-wasm relay`), or any two switches. One frame per binary message, with its
 * virtio_net_hdr, so partial checksums and large segments cross whole:
 *
 *   byte 0     format version (1)
 *   byte 1     message type (0: frame)
 *   bytes 2-13 virtio_net_hdr (virtio 1.2, 5.1.6: flags, gso_type, hdr_len, gso_size,
 *              csum_start, csum_offset, num_buffers; little-endian, num_buffers 0)
 *   bytes 14-  the Ethernet frame
 *
 * Anything else (text, a short or oversized message, another version or type, a header that
 * points outside the frame, a GSO type without NEEDS_CSUM or size) closes the link with 1003
 * (unsupported) or 1007 (invalid payload) and is counted; neither side ever throws for it.
 * Works with the browser's, Bun's and Deno's WebSocket and with the `ws` package in Node.
 */
import { NetHdr } from "../../assembly/abi.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

export const LINK_VERSION = 1;
const TYPE_FRAME = 0;
const HEADER = 2 + NetHdr.SIZE_V1;
/** The largest frame carried: a 64 KiB large segment plus Ethernet and VLAN headers. */
export const LINK_MAX_FRAME = 65535 + 14 + 8;
/** WebSocket close codes (RFC 6455, 7.4.1). */
export const CLOSE_UNSUPPORTED = 1003;
export const CLOSE_INVALID = 1007;

/** What the port needs of a WebSocket (the standard API's subset `ws` also has). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: () => void): void;
}

export interface LinkCounters {
  sent: number;
  received: number;
  /** Messages refused (the link was closed for the first). */
  malformed: number;
  /** Frames not sent because the socket was not open. */
  notOpen: number;
}

const OPEN = 1;

export class WebSocketPort implements SwitchPort {
  readonly acceptsPartial = true;
  readonly acceptsGso = true;
  readonly counters: LinkCounters = { sent: 0, received: 0, malformed: 0, notOpen: 0 };
  /** Why the link was closed by this side, if it was. */
  closedFor: string | null = null;
  private attached = true;

  constructor(readonly name: string, private readonly sw: Switch, private readonly ws: WebSocketLike) {
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (ev) => this.onMessage(ev.data));
    ws.addEventListener("close", () => this.detach());
    sw.attach(this);
  }

  deliver(frame: NetFrame): void {
    if (this.ws.readyState !== OPEN) {
      this.counters.notOpen++;
      return;
    }
    this.ws.send(encodeLinkFrame(frame));
    this.counters.sent++;
  }

  /** Leaves the switch and closes the socket. */
  close(): void {
    this.detach();
    this.ws.close(1000, "closed");
  }

  private detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.sw.detach(this);
  }

  private onMessage(data: unknown): void {
    if (!this.attached) return;
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
      : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    const decoded = bytes ? decodeLinkFrame(bytes) : { error: "a text message", code: CLOSE_UNSUPPORTED };
    if ("error" in decoded) {
      this.counters.malformed++;
      this.closedFor = decoded.error;
      this.detach();
      this.ws.close(decoded.code, decoded.error.slice(0, 120));
      return;
    }
    this.counters.received++;
    this.sw.input(this, decoded);
  }
}

/** A frame as one link message. */
export function encodeLinkFrame(frame: NetFrame): Uint8Array {
  const out = new Uint8Array(HEADER + frame.data.length);
  const dv = new DataView(out.buffer);
  out[0] = LINK_VERSION;
  out[1] = TYPE_FRAME;
  out[2] = frame.hdr.flags;
  out[3] = frame.hdr.gsoType ?? NetHdr.GSO_NONE;
  dv.setUint16(6, frame.hdr.gsoSize ?? 0, true);
  dv.setUint16(8, frame.hdr.csumStart, true);
  dv.setUint16(10, frame.hdr.csumOffset, true);
  out.set(frame.data, HEADER);
  return out;
}

/** A link message as a frame, or why it is refused (with the close code to use). */
export function decodeLinkFrame(m: Uint8Array): NetFrame | { error: string; code: number } {
  if (m.length < 2) return { error: "message too short", code: CLOSE_INVALID };
  if (m[0] !== LINK_VERSION) return { error: `link format version ${m[0]} (this side speaks ${LINK_VERSION})`, code: CLOSE_UNSUPPORTED };
  if (m[1] !== TYPE_FRAME) return { error: `message type ${m[1]}`, code: CLOSE_UNSUPPORTED };
  const len = m.length - HEADER;
  if (len < 14) return { error: "frame shorter than an Ethernet header", code: CLOSE_INVALID };
  if (len > LINK_MAX_FRAME) return { error: `frame of ${len} bytes`, code: CLOSE_INVALID };
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const flags = m[2];
  const gsoType = m[3];
  const gsoSize = dv.getUint16(6, true);
  const csumStart = dv.getUint16(8, true);
  const csumOffset = dv.getUint16(10, true);
  const partial = (flags & NetHdr.F_NEEDS_CSUM) !== 0;
  if ((flags & ~(NetHdr.F_NEEDS_CSUM | NetHdr.F_DATA_VALID)) !== 0) return { error: `header flags 0x${flags.toString(16)}`, code: CLOSE_INVALID };
  if (partial && csumStart + csumOffset + 2 > len) return { error: "checksum offsets outside the frame", code: CLOSE_INVALID };
  const type = gsoType & ~NetHdr.GSO_ECN;
  if (type !== NetHdr.GSO_NONE) {
    if (type !== NetHdr.GSO_TCPV4 && type !== NetHdr.GSO_TCPV6 && type !== NetHdr.GSO_UDP_L4) return { error: `gso type ${gsoType}`, code: CLOSE_INVALID };
    if (!partial || gsoSize === 0) return { error: "large segment without NEEDS_CSUM or size", code: CLOSE_INVALID };
  } else if (gsoType !== NetHdr.GSO_NONE) {
    return { error: `gso type ${gsoType}`, code: CLOSE_INVALID };
  }
  return {
    data: m.slice(HEADER),
    hdr: { flags: flags & NetHdr.F_NEEDS_CSUM, csumStart, csumOffset, ...(type !== NetHdr.GSO_NONE ? { gsoType, gsoSize } : {}) },
  };
}
