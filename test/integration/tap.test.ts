/**
 * The tap backend with the real Linux kernel as the judge: the driver model is the guest on
 * one side of a tap, a network namespace's stack on the other. The kernel must accept every
 * packet the guest sends (its checksum error counters stay at zero and its sockets receive the
 * data), and every packet the guest receives must carry a valid or correctly flagged checksum.
 * Run once for a guest that negotiates CSUM/GUEST_CSUM and once for one that negotiates none.
 */
import { fileURLToPath } from "node:url";
import type { DataQueue } from "../../host/device/virtio-net.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { LinuxTap } from "../../host/backends/tap-linux.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { DeviceLock } from "../../host/device/device-lock.js";
import { TapLoop } from "../../host/io/tap-loop.js";
import { TapWorker } from "../../host/io/tap-worker.js";
import { TapPort } from "../../host/io/tap-port.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { memoryAddress } from "../../host/runtime/libc.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { payload } from "../../host/driver/frames.js";
import { GuestStack, GUEST4, GUEST6, GUEST_MAC, HOST4, HOST6, VLAN_GUEST4, VLAN_HOST4, type Received } from "./guest-stack.js";
import { Netns, netTestsAvailable, vlanSupport } from "../support/netns.js";

const helper = fileURLToPath(new URL("./host-helper.mjs", import.meta.url));
const avail = netTestsAvailable();
const vlan = vlanSupport();
const BASE = featureMask(Feature.VERSION_1, Feature.MAC, Feature.STATUS, Feature.MTU, Feature.EVENT_IDX, Feature.INDIRECT_DESC);
const OFFLOAD = featureMask(Feature.CSUM, Feature.GUEST_CSUM);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ipText = (a: number[]) => (a.length === 4 ? a.join(".") : "2001:db8::" + a[15]);

type Mode = "single-threaded loop" | "Worker";

interface Env {
  ns: Netns;
  tap: LinuxTap;
  dev: VirtioNetDevice;
  port: TapPort<LinuxTap>;
  loop?: TapLoop;
  worker?: TapWorker;
  stack: GuestStack;
}

async function setup(features: bigint, mode: Mode): Promise<Env> {
  const ns = Netns.create();
  const shared = mode === "Worker";
  const mem = createGuestMemory({ guestSize: 16 << 20, shared });
  const nativeBase = memoryAddress(mem.memory);
  const tap = LinuxTap.open(Netns.tapName());
  ns.adopt(tap.name);
  const env = { ns, tap } as Env;
  const onRxInterrupt = () => setImmediate(() => env.stack.poll());
  env.dev = new VirtioNetDevice({
    memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, nativeBase,
    mac: GUEST_MAC, backend: tap.vnetHdr ? BackendKind.VNET_HDR : BackendKind.PLAIN,
    lock: shared ? new DeviceLock(mem.memory, mem.hostAddresses[0]) : undefined,
    hooks: {
      // Control side: the tap's offloads follow what the guest negotiated.
      negotiated: (f) => env.port.tap.applyNegotiated(f),
      interrupt: (q) => { if (q === QueueIndex.RX) onRxInterrupt(); },
    },
  });
  env.port = new TapPort(env.dev, tap, nativeBase);
  const drv = new GuestDriver(mem, env.dev, 3);
  drv.bringUp(BASE | features, 256);
  let kick: (q: DataQueue) => void;
  if (shared) {
    env.worker = await TapWorker.start({
      dev: env.dev, lockAddress: mem.hostAddresses[0], tap, nativeBase,
      onMessage: (m) => { if (m.kind === "interrupt" && m.queue === QueueIndex.RX) onRxInterrupt(); },
    });
    kick = (q) => env.worker!.kick(q);
  } else {
    env.loop = new TapLoop(env.port);
    kick = (q) => env.loop!.kick(q);
  }
  env.stack = new GuestStack(drv, BASE | features, kick);

  ns.hostSide(tap.name, "52:54:00:12:34:56");
  if (vlan.ok) {
    const name = `${tap.name.slice(0, 10)}.v`;
    ns.ip(["link", "add", "link", tap.name, "name", name, "type", "vlan", "id", "100"]);
    ns.ip(["addr", "add", "198.51.100.1/24", "dev", name]);
    ns.ip(["link", "set", name, "up"]);
    ns.ip(["neigh", "add", "198.51.100.2", "lladdr", "52:54:00:12:34:56", "dev", name, "nud", "permanent"]);
  }
  env.stack.hostMac = ns.mac(tap.name);
  env.loop?.start();
  env.stack.start();
  return env;
}

async function teardown(env: Env | undefined): Promise<void> {
  if (!env) return;
  await env.loop?.stop();
  await env.worker?.stop();
  env.ns.destroy();
  env.port.tap.close();
}

const isUdpTo = (port: number) => (r: Received) => r.decoded.ip?.proto === 17 && r.decoded.ip.dport === port;
const isTcp = (sport: number, dport: number, flags: number) => (r: Received) =>
  r.decoded.ip?.proto === 6 && r.decoded.ip.sport === sport && r.decoded.ip.dport === dport && (r.decoded.ip.tcpFlags & flags) === flags;

describe.skipIf(!avail.ok)(`tap backend against the Linux kernel${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  describe.each([
    ["single-threaded loop", "a guest negotiating CSUM and GUEST_CSUM", OFFLOAD],
    ["single-threaded loop", "a guest negotiating no offload", 0n],
    ["Worker", "a guest negotiating CSUM and GUEST_CSUM", OFFLOAD],
    ["Worker", "a guest negotiating no offload", 0n],
  ] as [Mode, string, bigint][])("%s, %s", (mode, _name, features) => {
    let env: Env;
    beforeAll(async () => { env = await setup(features, mode); }, 20_000);
    afterAll(async () => { await teardown(env); });

    it("ARP: the kernel answers the guest's request", async () => {
      env.stack.arpRequest(HOST4);
      const r = await env.stack.waitFor((x) => x.decoded.ethertype === 0x0806 && x.frame[21] === 2, 3000, "ARP reply");
      expect(Array.from(r.frame.subarray(28, 32))).toEqual(HOST4);
    });

    it("ICMP echo both ways, IPv4 and IPv6 (the kernel ARPs for the guest and pings it)", async () => {
      for (const [ip, src, dst] of [[4, GUEST4, HOST4], [6, GUEST6, HOST6]] as const) {
        env.stack.send({ ip, l4: "icmp", src, dst, payload: payload(56), icmpSeq: 9 });
        await env.stack.waitFor((r) => r.decoded.ip?.proto === (ip === 4 ? 1 : 58) && r.decoded.ip.icmpType === (ip === 4 ? 0 : 129), 3000, `echo reply v${ip}`);
      }
      await env.ns.run(["ping", "-c", "2", "-W", "2", "192.0.2.2"]);
      await env.ns.run(["ping", "-6", "-c", "2", "-W", "2", "2001:db8::2"]);
    });

    it.each([[4, HOST4, GUEST4], [6, HOST6, GUEST6]] as const)("UDP over IPv%i, guest to host: the kernel's socket gets the bytes", async (ip, host, guest) => {
      const port = 5000 + ip;
      const datagrams = [payload(10, 1), payload(700, 2), payload(1400, 3)];
      const out = env.ns.run(["node", helper, "udp-recv", ipText([...host]), String(port), String(datagrams.length)]);
      await sleep(400);
      for (const p of datagrams) env.stack.send({ ip, l4: "udp", src: guest, dst: host, dport: port, payload: p });
      expect(JSON.parse(await out)).toEqual(datagrams.map(hex));
    });

    it.each([[4, GUEST4], [6, GUEST6]] as const)("UDP over IPv%i, host to guest: valid or correctly flagged checksums", async (ip, guest) => {
      const port = 6000 + ip;
      const data = payload(1200, 5);
      await env.ns.run(["node", helper, "udp-send", ipText([...guest]), String(port), hex(data)]);
      const r = await env.stack.waitFor(isUdpTo(port), 3000, "UDP datagram");
      expect(hex(r.decoded.ip!.payload)).toBe(hex(data));
      // With GUEST_CSUM the kernel sends a partial checksum and the guest finishes it.
      expect(r.partial).toBe(features !== 0n);
    });

    it("a guest that stops taking buffers loses nothing: the device stops reading the tap and resumes", async () => {
      const COUNT = 150; // more than the 64 buffers the guest has posted, fewer than the tap queue
      env.stack.hold = true;
      await env.ns.run(["node", helper, "udp-burst", "192.0.2.2", "6300", String(COUNT)]);
      await sleep(200);
      env.stack.hold = false;
      env.stack.poll();
      const seqs: number[] = [];
      for (let i = 0; i < COUNT; i++) {
        const r = await env.stack.waitFor((x) => isUdpTo(6300)(x) && !seqs.includes(Buffer.from(x.decoded.ip!.payload).readUInt32BE(0)), 3000, `datagram ${i}`);
        seqs.push(Buffer.from(r.decoded.ip!.payload).readUInt32BE(0));
      }
      expect(seqs).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect(env.dev.metrics(QueueIndex.RX).dropBufferTooSmall).toBe(0);
    });

    it.each([[4, HOST4, GUEST4], [6, HOST6, GUEST6]] as const)("TCP over IPv%i, guest to host: the kernel answers a SYN", async (ip, host, guest) => {
      const port = 5100 + ip;
      const listening = env.ns.run(["node", helper, "tcp-listen", ipText([...host]), String(port), "1200"]);
      await sleep(400);
      env.stack.send({ ip, l4: "tcp", src: guest, dst: host, sport: 41000 + ip, dport: port, tcpFlags: 0x02, seq: 1000, ack: 0, payload: new Uint8Array(0) });
      const synAck = await env.stack.waitFor(isTcp(port, 41000 + ip, 0x12), 3000, "SYN-ACK");
      env.stack.send({ ip, l4: "tcp", src: guest, dst: host, sport: 41000 + ip, dport: port, tcpFlags: 0x04, seq: 1001, ack: 0, payload: new Uint8Array(0) });
      expect(synAck.decoded.ip!.tcpFlags & 0x12).toBe(0x12);
      await listening;
    });

    it.each([[4, GUEST4], [6, GUEST6]] as const)("TCP over IPv%i, host to guest: the kernel's SYN arrives intact", async (ip, guest) => {
      const port = 7000 + ip;
      const connecting = env.ns.run(["node", helper, "tcp-connect", ipText([...guest]), String(port), "1500"]);
      const syn = await env.stack.waitFor((r) => r.decoded.ip?.proto === 6 && r.decoded.ip.dport === port && r.decoded.ip.tcpFlags === 0x02, 3000, "SYN");
      const s = syn.decoded.ip!;
      env.stack.send({ ip, l4: "tcp", src: guest, dst: s.src, sport: port, dport: s.sport, tcpFlags: 0x14, seq: 0, ack: s.seq + 1, payload: new Uint8Array(0) });
      await connecting;
    });

    it.skipIf(!vlan.ok)(`802.1Q: UDP both ways through a VLAN interface on the host side${vlan.ok ? "" : ` (skipped: ${vlan.reason})`}`, async () => {
      const data = payload(900, 8);
      const out = env.ns.run(["node", helper, "udp-recv", "198.51.100.1", "5200", "1"]);
      await sleep(400);
      env.stack.send({ ip: 4, l4: "udp", vlans: [0x8100], vlanIds: [100], src: VLAN_GUEST4, dst: VLAN_HOST4, dport: 5200, payload: data });
      expect(JSON.parse(await out)).toEqual([hex(data)]);
      await env.ns.run(["node", helper, "udp-send", "198.51.100.2", "6200", hex(data)]);
      const r = await env.stack.waitFor(isUdpTo(6200), 3000, "tagged datagram");
      expect(r.decoded.vlanIds).toEqual([100]);
      expect(hex(r.decoded.ip!.payload)).toBe(hex(data));
    });

    it("the kernel saw no checksum errors, the guest no bad checksums, and offload did what it says", () => {
      expect(env.stack.bad).toEqual([]);
      const errors = env.ns.csumErrors();
      expect(Object.values(errors).every((v) => v === 0)).toBe(true);
      // The kernel's sockets got the guest's datagrams (3 over IPv4 above, more with VLANs).
      expect(env.ns.snmp("Udp", "InDatagrams")).toBeGreaterThanOrEqual(3);
      const tx = env.dev.metrics(QueueIndex.TX);
      const rx = env.dev.metrics(QueueIndex.RX);
      if (features !== 0n) {
        // Partial checksums went through untouched both ways: nobody computed them.
        expect(tx.csumOffloaded).toBeGreaterThan(10);
        expect(tx.csumSoftware).toBe(0);
        expect(rx.csumOffloaded).toBeGreaterThan(3);
      } else {
        expect(tx.csumOffloaded + tx.csumSoftware + rx.csumOffloaded + rx.csumSoftware).toBe(0);
      }
      expect(tx.dropBackend + rx.dropBadCsumOffsets + rx.dropGsoUnsupported).toBe(0);
    });
  });
});
