/**
 * `virtio-net-wasm vhost-user` without a tap: the guest's device is a port of the embedded
 * network. Needs no root and no tap: the real CLI in a child process, the front-end model
 * as QEMU, and the guest-side stack doing DHCP and pinging the gateway.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Feature } from "../../assembly/abi.js";
import { featureMask, hasFeature } from "../../host/device/features.js";
import { ProtocolFeature, readU64, Req } from "../../host/vhost-user/protocol.js";
import { decodeFrame, payload } from "../../host/driver/frames.js";
import { dhcpOption, dhcpRequest } from "../helpers/dhcp.js";
import { GUEST_MAC } from "./guest-stack.js";
import { Session } from "./session.js";

const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.CSUM, Feature.GUEST_CSUM);

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("vhost-user on the embedded network (no tap, no root)", () => {
  it("the guest gets a DHCP lease and pings the gateway; checksums are valid", async () => {
    const socket = `/tmp/vnw-embedded-${process.pid}.sock`;
    const pcap = `/tmp/vnw-embedded-${process.pid}.pcap`;
    let log = "";
    const child = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--net", "198.51.100.0", "--dns", "198.51.100.53", "--pcap", pcap], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => { log += d; });
    child.stderr!.on("data", (d) => { log += d; });
    const exited = new Promise((r) => child.on("exit", r));
    const session = new Session(FEATURES, { ramSize: 16 << 20, seed: 9 });
    const stack = session.stack;
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
      expect(log).toMatch(/embedded network: gateway 198\.51\.100\.1\/24/);
      await session.start(socket, FEATURES, 128);

      stack.sendRaw(dhcpRequest(GUEST_MAC, 1));
      const offer = await stack.waitFor((r) => r.decoded.ip?.dport === 68, 3000, "DHCP offer");
      const yiaddr = Array.from(offer.decoded.ip!.payload.subarray(16, 20));
      expect(dhcpOption(offer.decoded.ip!.payload, 53)).toEqual([2]);
      stack.sendRaw(dhcpRequest(GUEST_MAC, 3, [50, 4, ...yiaddr, 54, 4, 198, 51, 100, 1]));
      const ack = await stack.waitFor((r) => r.decoded.ip?.dport === 68 && dhcpOption(r.decoded.ip.payload, 53)?.[0] === 5, 3000, "DHCP ack");
      expect(dhcpOption(ack.decoded.ip!.payload, 3)).toEqual([198, 51, 100, 1]);
      expect(dhcpOption(ack.decoded.ip!.payload, 6)).toEqual([198, 51, 100, 53]);

      stack.arpRequest([198, 51, 100, 1], yiaddr);
      const arp = await stack.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2, 3000, "ARP reply");
      stack.hostMac = arp.frame.slice(22, 28);
      stack.send({ ip: 4, l4: "icmp", src: yiaddr, dst: [198, 51, 100, 1], payload: payload(56), icmpSeq: 3 });
      const echo = await stack.waitFor((r) => r.decoded.ip?.proto === 1 && r.decoded.ip.icmpType === 0, 3000, "echo reply");
      expect(decodeFrame(echo.frame).ip!.src).toEqual(Uint8Array.of(198, 51, 100, 1));
      expect(decodeFrame(echo.frame).ip!.dst).toEqual(Uint8Array.from(yiaddr));
      expect(stack.bad).toEqual([]);
    } finally {
      await session.end();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
    // --pcap: the capture has the exchange; decoded by tshark where it is installed.
    let tshark = true;
    try { execFileSync("tshark", ["--version"], { stdio: "ignore" }); } catch { tshark = false; }
    if (tshark) {
      const protos = execFileSync("tshark", ["-r", pcap, "-T", "fields", "-e", "frame.protocols"], { encoding: "utf8" });
      expect(protos).toMatch(/eth:ethertype:ip:udp:dhcp[\s\S]*eth:ethertype:arp[\s\S]*eth:ethertype:ip:icmp/);
    }
  }, 20_000);
});

/**
 * Runs `body` with two front-end-model guests on one back-end process (two sockets, one
 * switch): guest i has MAC 02:00:00:00:00:(at.mac + i) and 198.51.100.(at.ip + i); the back-end must exit 0 after.
 */
async function withTwoGuests(tag: string, extraArgs: string[], at: { mac: number; ip: number }, body: (guests: Session[], offered: bigint[]) => Promise<void>): Promise<void> {
  const sockets = [0, 1].map((i) => `/tmp/vnw-${tag}-${process.pid}-${i}.sock`);
  const child = spawn(process.execPath, [cli, "vhost-user", "--socket", sockets[0], "--socket", sockets[1], "--net", "198.51.100.0", ...extraArgs], { stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  const guests: Session[] = [];
  try {
    for (let i = 0; i < 100 && !sockets.every(existsSync); i++) await sleep(50);
    const offered: bigint[] = [];
    for (const [i, socket] of sockets.entries()) {
      const g = new Session(FEATURES, { ramSize: 16 << 20, seed: at.ip + 10 + i, mac: Uint8Array.of(2, 0, 0, 0, 0, at.mac + i), ip4: [198, 51, 100, at.ip + i] });
      guests.push(g);
      offered.push(await g.start(socket, FEATURES, 128));
    }
    await body(guests, offered);
  } finally {
    for (const g of guests) await g.end();
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }
}

describe.skipIf(process.platform !== "linux" || !existsSync(cli))("several guests on one back-end process", () => {
  it("two sockets, one switch: the guests reach each other and the gateway", async () => {
    await withTwoGuests("two", [], { mac: 0x10, ip: 10 }, async (guests) => {
      const [a, b] = guests.map((g) => g.stack);
      a.arpRequest([198, 51, 100, 11]);
      const arp = await a.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2, 3000, "B's ARP reply");
      a.hostMac = arp.frame.slice(22, 28);
      expect(Array.from(a.hostMac)).toEqual([2, 0, 0, 0, 0, 0x11]);
      // A TCP-sized UDP datagram with a partial checksum from A (offloads on) reaches B intact.
      const data = payload(1400, 3);
      a.send({ ip: 4, l4: "udp", src: [198, 51, 100, 10], dst: [198, 51, 100, 11], dport: 7777, payload: data });
      const got = await b.waitFor((r) => r.decoded.ip?.proto === 17 && r.decoded.ip.dport === 7777, 3000, "A's datagram at B");
      expect(Array.from(got.decoded.ip!.payload)).toEqual(Array.from(data));
      // Between two offload-capable guests the checksum stays partial: nobody computed it.
      expect(got.partial).toBe(true);
      a.send({ ip: 4, l4: "icmp", src: [198, 51, 100, 10], dst: [198, 51, 100, 11], payload: payload(56), icmpSeq: 7 });
      await a.waitFor((r) => r.decoded.ip?.proto === 1 && r.decoded.ip.icmpType === 0 && r.decoded.ip.src[3] === 11, 3000, "B's echo reply");
      b.arpRequest([198, 51, 100, 1]);
      await b.waitFor((r) => r.decoded.ethertype === 0x0806 && r.frame[21] === 2 && r.frame[31] === 1, 3000, "the gateway's ARP reply to B");
      expect([...a.bad, ...b.bad]).toEqual([]);
    });
  }, 20_000);

  it("SEND_RARP after a migration: the moved MAC is announced on the switch, which learns where it is", async () => {
    await withTwoGuests("rarp", ["--no-uplink"], { mac: 0x20, ip: 20 }, async (guests, offered) => {
      // GUEST_ANNOUNCE is offered for the front-end to do (it keeps the control queue).
      for (const o of offered) expect(hasFeature(o, Feature.GUEST_ANNOUNCE)).toBe(true);
      const [a, b] = guests;
      const protocol = readU64((await a.fe.request(Req.GET_PROTOCOL_FEATURES, new Uint8Array(0), [], true))!);
      expect((protocol >> BigInt(ProtocolFeature.RARP)) & 1n).toBe(1n);
      // A's guest arrived by migration with the MAC 02:00:00:00:00:77 (QEMU: the guest lacks GUEST_ANNOUNCE).
      const moved = Uint8Array.of(2, 0, 0, 0, 0, 0x77);
      const msg = new Uint8Array(8);
      msg.set(moved);
      await a.fe.request(Req.SEND_RARP, msg);
      const rarp = await b.stack.waitFor((r) => r.decoded.ethertype === 0x8035, 3000, "the RARP at B");
      expect(Array.from(rarp.frame.subarray(0, 12))).toEqual([255, 255, 255, 255, 255, 255, ...moved]);
      expect((rarp.frame[20] << 8) | rarp.frame[21]).toBe(3); // request reverse
      expect(Array.from(rarp.frame.subarray(32, 38))).toEqual(Array.from(moved)); // target: itself
      // The switch learned the MAC on A's port: a unicast to it goes to A (and only there).
      a.stack.received.length = 0;
      const probe = new Uint8Array(60);
      probe.set(moved, 0);
      probe.set(Uint8Array.of(2, 0, 0, 0, 0, 0x21), 6);
      probe[12] = 0x88;
      probe[13] = 0xb5; // local experimental ethertype
      b.stack.sendRaw(probe);
      await a.stack.waitFor((r) => r.decoded.ethertype === 0x88b5, 3000, "B's frame to the moved MAC at A");
    });
  }, 20_000);
});
