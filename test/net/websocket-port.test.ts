/**
 * The WebSocket link between two switches (in this process, through `ws` on 127.0.0.1): frames
 * cross both ways with their offload metadata (partial checksum offsets, large segments whole);
 * a guest on one side gets DHCP from the gateway on the other; anything malformed closes the
 * link with 1003 or 1007 and is counted, and the serving side goes on serving.
 */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { NetHdr } from "../../assembly/abi.js";
import { buildFrame, decodeFrame, payload } from "../../host/driver/frames.js";
import { startRelay, type Relay } from "../../host/cli/relay.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";
import { Switch, type NetFrame, type SwitchPort } from "../../host/net/switch.js";
import { decodeLinkFrame, encodeLinkFrame, WebSocketPort, type WebSocketLike } from "../../host/net/websocket-port.js";
import { dhcpRequest } from "../helpers/dhcp.js";

class Recorder implements SwitchPort {
  readonly acceptsPartial = true;
  readonly acceptsGso = true;
  got: NetFrame[] = [];
  constructor(readonly name: string) {}
  deliver(f: NetFrame): void { this.got.push({ data: f.data.slice(), hdr: { ...f.hdr } }); }
}

const until = async (cond: () => boolean, ms = 3000) => {
  for (const t0 = Date.now(); !cond(); ) {
    if (Date.now() - t0 > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};
const MAC = Uint8Array.of(0x52, 0x54, 0, 0, 0x0c, 1);

describe("the WebSocket link", () => {
  let relay: Relay | null = null;
  afterEach(async () => {
    await relay?.close();
    await relay?.network.close();
    relay = null;
  });

  async function linked() {
    relay = await startRelay("127.0.0.1", 0, embeddedNetwork({ subnet: "198.51.100.0" }));
    const far = new Recorder("far guest");
    relay.network.sw.attach(far);
    const sw = new Switch();
    const ws = new WebSocket(`ws://127.0.0.1:${relay.port}/`);
    await new Promise((r) => ws.once("open", r));
    const link = new WebSocketPort("link", sw, ws as unknown as WebSocketLike);
    const near = new Recorder("near guest");
    sw.attach(near);
    await until(() => relay!.links.size === 1);
    return { sw, ws, link, near, far };
  }

  it("a guest on the page side gets a DHCP offer from the host's gateway across the link", async () => {
    const { sw, near } = await linked();
    sw.input(near, { data: dhcpRequest(MAC, 1), hdr: { flags: 0, csumStart: 0, csumOffset: 0 } });
    await until(() => near.got.some((f) => decodeFrame(f.data).ip?.sport === 67));
    expect(relay!.network.gateway.counters.dhcpOffers).toBe(1);
  });

  it("carries partial checksums and large segments whole, both ways", async () => {
    const { sw, near, far } = await linked();
    const big = buildFrame({ ip: 4, l4: "tcp", payload: payload(30000), csum: "partial", srcMac: MAC, dstMac: Uint8Array.of(2, 0, 0, 0, 0, 9) });
    const hdr = { flags: NetHdr.F_NEEDS_CSUM, csumStart: big.l4Off, csumOffset: big.csumField, gsoType: NetHdr.GSO_TCPV4, gsoSize: 1448 };
    sw.input(near, { data: big.frame, hdr });
    await until(() => far.got.length > 0);
    expect(far.got[0].hdr).toEqual(hdr);
    expect(Buffer.compare(far.got[0].data, big.frame)).toBe(0);
    relay!.network.sw.input(far, { data: big.frame.map((b, i) => (i < 6 ? MAC[i] : i < 12 ? [2, 0, 0, 0, 0, 9][i - 6] : b)), hdr });
    await until(() => near.got.some((f) => f.data.length === big.frame.length));
    expect(near.got.find((f) => f.data.length === big.frame.length)!.hdr).toEqual(hdr);
  });

  it.each([
    ["another version", () => Uint8Array.of(2, 0, ...new Array(30).fill(0)), 1003],
    ["another message type", () => Uint8Array.of(1, 7, ...new Array(30).fill(0)), 1003],
    ["a runt", () => Uint8Array.of(1, 0, 0, 0), 1007],
    ["checksum offsets past the frame", () => { const m = encodeLinkFrame({ data: new Uint8Array(60), hdr: { flags: 1, csumStart: 50, csumOffset: 16 } }); return m; }, 1007],
    ["a GSO type without NEEDS_CSUM", () => encodeLinkFrame({ data: new Uint8Array(60), hdr: { flags: 0, csumStart: 0, csumOffset: 0, gsoType: 1, gsoSize: 100 } }), 1007],
    ["an unknown GSO type", () => encodeLinkFrame({ data: new Uint8Array(60), hdr: { flags: 1, csumStart: 14, csumOffset: 6, gsoType: 9, gsoSize: 100 } }), 1007],
  ])("refuses %s with its close code, counts it, and keeps serving others", async (_name, message, code) => {
    const { ws } = await linked();
    const closed = new Promise<number>((r) => ws.once("close", (c) => r(c)));
    ws.send(message());
    expect(await closed).toBe(code);
    await until(() => relay!.links.size === 0);
    expect(relay!.refused).toBe(1);
    // The relay still takes a new link.
    const again = new WebSocket(`ws://127.0.0.1:${relay!.port}/`);
    await new Promise((r) => again.once("open", r));
    await until(() => relay!.links.size === 1);
    again.close();
  });

  it("a text message is refused as unsupported", async () => {
    const { ws } = await linked();
    const closed = new Promise<number>((r) => ws.once("close", (c) => r(c)));
    ws.send("hello");
    expect(await closed).toBe(1003);
  });

  it("decodes what it encodes", () => {
    const f = buildFrame({ ip: 6, l4: "udp", payload: payload(100), csum: "partial" });
    const hdr = { flags: NetHdr.F_NEEDS_CSUM, csumStart: f.l4Off, csumOffset: f.csumField };
    expect(decodeLinkFrame(encodeLinkFrame({ data: f.frame, hdr }))).toEqual({ data: f.frame, hdr });
  });
});
