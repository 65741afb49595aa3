/** `virtio-net-wasm vhost-user`: serve a QEMU guest's virtio-net device over vhost-user. */
import { CsumPolicy, QueueIndex } from "../../assembly/abi.js";
import { FULL_OFFER_LIST, parseFeatureList } from "../device/features.js";
import { embeddedNetwork, MAX_QUEUE_PAIRS, VhostUserNetBackend } from "../vhost-user/backend.js";
import { VhostUserServer } from "../vhost-user/server.js";
import { PcapPort } from "../net/pcap-port.js";
import type { PortForward } from "../net/uplink.js";
import { parseRate, type RateLimit } from "../device/rate-limiter.js";
import { addMetrics } from "../device/metrics.js";
import { commandArgs } from "./command-args.js";
import { consoleLog, parseLogLevel } from "./logging.js";
import { parseNetworkFlags } from "./network-flags.js";

export const VHOST_USER_HELP = `usage: virtio-net-wasm vhost-user --socket PATH [--socket PATH ...] [--tap IFNAME] [options]

Serves the virtio-net data path of a QEMU (or any vhost-user front-end) guest: guest RAM is
mapped into the engine's Wasm memory, rings are processed in place, frames go to and from a
Linux tap with checksum offload translated both ways. Without --tap the guest is on the
embedded network: a built-in gateway that answers ARP, ping and DHCP, and behind it the
uplink, libslirp (QEMU's user-mode networking): the guest reaches the world through the
host's sockets, the host's loopback at the gateway's address, and DNS at .3 (no root, no tap).

options:
  --socket PATH        vhost-user socket (we listen; use --client to connect instead).
                       Without --tap it may be repeated: one guest per socket, all on one
                       embedded network (they reach each other and the gateway)
  --client             connect to the front-end's socket and reconnect when it goes away
  --tap IFNAME         tap interface to attach (created if missing; needs CAP_NET_ADMIN)
  --net SUBNET         without --tap: the embedded network's /24 (default 10.215.0.0):
                       gateway .1, DHCP leases .100-.199
  --net6 PREFIX        without --tap: the /64 advertised for SLAAC (default fd57:6173:6d00::);
                       the gateway is PREFIX::1
  --dns ADDR           without --tap: DNS server handed out by DHCP (option 6; default .3,
                       the uplink's, which asks the host's resolver)
  --no-uplink          without --tap: no way out (guests reach each other and the gateway only)
  --forward [tcp|udp]:[HOSTADDR:]HOSTPORT:GUESTADDR:GUESTPORT
                       without --tap: forward a host port (on 127.0.0.1 unless HOSTADDR) to a
                       guest, like QEMU's hostfwd; may be repeated
  --pcap FILE          without --tap: capture the embedded network to FILE (libpcap format,
                       checksums finished as on a wire; read it with tshark or Wireshark)
  --queues N           queue pairs (default 1, up to 16): offers VIRTIO_NET_F_MQ, one data-path
                       thread per pair; with --tap the tap is multi-queue (one queue per pair;
                       an existing tap must have been made with multi_queue); received flows
                       are steered over the pairs the guest enabled (by the kernel on a tap, by
                       a flow hash on the embedded network). QEMU: -netdev vhost-user,...,queues=N
                       and -device virtio-net-pci,mq=on
  --mac MAC            MAC in the device's config (QEMU keeps its own; informational)
  --mtu N              MTU offered with VIRTIO_NET_F_MTU (68..65535, default 1500)
  --offloads LIST      features to offer, comma-separated (default: version_1,mac,status,mtu,
                       csum,guest_csum,event_idx,indirect_desc,mrg_rxbuf,host_tso4,host_tso6,
                       host_ecn,host_uso,guest_tso4,guest_tso6,guest_ecn,guest_uso4,guest_uso6,
                       ring_packed,in_order); "none": no checksum or segmentation offload
  --csum-policy P      NEEDS_CSUM from a guest without CSUM: complete (default), drop, pass
  --locked-mac         drop frames not from / not to the device's MAC
  --tx-rate RATE       limit what the guest sends, e.g. 100Mbit, 12.5MB (per second),
                       with ,burst=BYTES (a one-time allowance) and/or ,ops=N (frames/s); over it
                       the device stops taking from the TX ring until tokens return (no drops)
  --rx-rate RATE       the same for what the guest receives (frames wait in the tap, or in
                       the switch port on the embedded network)
  --poll-us N          after frames move, keep looking at the guest's TX ring for N µs
                       (its notifications off meanwhile) before waiting for a kick again,
                       like vhost-net's busyloop_timeout: lower latency and a higher rate
                       for CPU (default 0: never poll)
  --stats SECONDS      print counters every SECONDS
  --log-level L        error, warn, info (default), debug

QEMU (7.2, TCG; shared guest RAM is required for vhost-user):
  qemu-system-x86_64 -M q35 -accel tcg -m 256M \\
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \\
    -chardev socket,id=c0,path=/tmp/vnw.sock \\
    -netdev vhost-user,id=n0,chardev=c0 \\
    -device virtio-net-pci,netdev=n0,vectors=0 ...
  (vectors=0 avoids a QEMU 7.2 crash with vhost-user and MSI-X under TCG)

example:
  virtio-net-wasm vhost-user --socket /tmp/vnw.sock --tap vnw0 --stats 5`;

const DEFAULT_OFFLOADS = FULL_OFFER_LIST;

/** Runs the command; resolves with the exit code. */
export async function vhostUserMain(args: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = commandArgs("vhost-user", VHOST_USER_HELP, args, {
    socket: { type: "string", multiple: true }, client: { type: "boolean", default: false }, tap: { type: "string" },
    net: { type: "string", default: "10.215.0.0" }, net6: { type: "string" }, dns: { type: "string" }, pcap: { type: "string" },
    "no-uplink": { type: "boolean", default: false }, forward: { type: "string", multiple: true },
    "tx-rate": { type: "string" }, "rx-rate": { type: "string" }, queues: { type: "string", default: "1" },
    mac: { type: "string" }, mtu: { type: "string", default: "1500" }, offloads: { type: "string" },
    "csum-policy": { type: "string", default: "complete" }, "locked-mac": { type: "boolean", default: false },
    stats: { type: "string" }, "poll-us": { type: "string", default: "0" }, "log-level": { type: "string", default: "info" },
  }, out, err);
  if (typeof parsed === "number") return parsed;
  const { values, fail } = parsed;
  const sockets = values.socket ?? [];
  if (sockets.length === 0) return fail("--socket PATH is required");
  if (values.tap && sockets.length > 1) return fail("one --socket per --tap: several guests share the embedded network, not a tap");
  if (values.tap && (values.dns !== undefined || values.pcap !== undefined || values.net6 !== undefined || values.forward !== undefined || values["no-uplink"])) {
    return fail("--dns, --net6, --pcap, --forward and --no-uplink apply to the embedded network (without --tap); capture a tap with tcpdump");
  }
  let limits: { tx?: RateLimit; rx?: RateLimit } | undefined;
  try {
    limits = {
      ...(values["tx-rate"] ? { tx: parseRate(values["tx-rate"]) } : {}),
      ...(values["rx-rate"] ? { rx: parseRate(values["rx-rate"]) } : {}),
    };
  } catch (e) {
    return fail((e as Error).message);
  }
  let netFlags: ReturnType<typeof parseNetworkFlags>;
  let level: number;
  try {
    netFlags = parseNetworkFlags(values);
    level = parseLogLevel(values["log-level"]!);
  } catch (e) {
    return fail((e as Error).message);
  }
  const { forwards } = netFlags;
  const mtu = Number(values.mtu);
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) return fail(`--mtu must be 68..65535, got "${values.mtu}"`);
  const policies: Record<string, CsumPolicy> = { complete: CsumPolicy.COMPLETE, drop: CsumPolicy.DROP, pass: CsumPolicy.PASS };
  const csumPolicy = policies[values["csum-policy"]!];
  if (csumPolicy === undefined) return fail(`--csum-policy must be complete, drop or pass`);
  const offloads = values.offloads ?? DEFAULT_OFFLOADS;
  let features: bigint;
  try {
    features = offloads === "none" ? parseFeatureList("version_1,mtu,event_idx,indirect_desc") : parseFeatureList(offloads);
  } catch (e) {
    return fail((e as Error).message);
  }
  const queuePairs = Number(values.queues);
  if (!Number.isInteger(queuePairs) || queuePairs < 1 || queuePairs > MAX_QUEUE_PAIRS) return fail(`--queues must be a whole number from 1 to ${MAX_QUEUE_PAIRS}, got "${values.queues}"`);
  if (queuePairs > 1 && (limits.tx || limits.rx)) return fail("--tx-rate and --rx-rate apply to one queue pair; they cannot be combined with --queues");
  const pollUs = Number(values["poll-us"]);
  if (!Number.isInteger(pollUs) || pollUs < 0 || pollUs > 10_000_000) return fail(`--poll-us must be a whole number of microseconds from 0 to 10000000, got ${values["poll-us"]}`);
  let stats = 0;
  if (values.stats !== undefined) {
    stats = Number(values.stats);
    if (!(stats > 0)) return fail(`--stats must be a positive number of seconds`);
  }
  const log = consoleLog(level, out, err);

  const backends: VhostUserNetBackend[] = [];
  let network: ReturnType<typeof embeddedNetwork> | undefined;
  try {
    network = values.tap ? undefined : embeddedNetwork({
      subnet: netFlags.subnet, dns: values.dns, prefix6: values.net6,
      uplink: netFlags.uplink ? { forwards, log: (m) => log("warn", m) } : false,
    });
  } catch (e) {
    return fail((e as Error).message);
  }
  if (network?.uplinkError) log("warn", `no uplink: ${network.uplinkError}; the embedded network is an island`);
  try {
    for (const [i, socket] of sockets.entries()) {
      backends.push(new VhostUserNetBackend({
        tap: values.tap, features, queuePairs, csumPolicy, lockedMac: values["locked-mac"], mac: values.mac, mtu, network, pollUs, limits,
        portName: sockets.length > 1 ? `guest${i}:${socket}` : "guest",
        log: sockets.length > 1 ? (l, m) => log(l, `[${socket}] ${m}`) : log,
      }));
    }
  } catch (e) {
    for (const b of backends) await b.close();
    await network?.close();
    return fail((e as Error).message);
  }
  let pcap: PcapPort | null = null;
  if (values.pcap) {
    try {
      pcap = new PcapPort(network!.sw, values.pcap);
    } catch (e) {
      for (const b of backends) await b.close();
      await network?.close();
      return fail(`--pcap ${values.pcap}: ${(e as Error).message}`);
    }
  }
  const backend = backends[0];
  if (backend.tap) log("info", `tap ${backend.tap.name}${backend.tap.vnetHdr ? " (vnet_hdr)" : ""}; offering ${offloads}`);
  else {
    const up = network!.uplink ? `uplink libslirp (host loopback at the gateway, DNS ${network!.uplink.nameserver.join(".")}${forwards.length ? `, ${forwards.map(forwardText).join(", ")}` : ""})` : "no uplink";
    log("info", `embedded network: gateway ${network!.gateway.ip.join(".")}/24, DHCP .100-.199, IPv6 SLAAC, ${up}; ${sockets.length} guest socket(s); offering ${offloads}`);
  }
  const servers = backends.map((b, i) => new VhostUserServer(b, { socketPath: sockets[i], client: values.client, log }));
  const onSignal = (sig: string) => { log("info", `${sig}: shutting down`); for (const s of servers) s.stop(); };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const timer = stats > 0 ? setInterval(() => {
    backends.forEach((b, i) => printStats(b, out, sockets.length > 1 ? ` [${sockets[i]}]` : ""));
    const up = network?.uplink?.counters;
    if (up) out(`stats [uplink]: to host ${up.toHost} (large segments ${up.gsoToHost}), from host ${up.fromHost}, suppressed ${up.suppressed}; switch finished ${network!.sw.counters.partialCompleted} partial checksums`);
  }, stats * 1000) : null;
  try {
    await Promise.all(servers.map((s) => s.run()));
    return 0;
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    if (timer) clearInterval(timer);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    pcap?.close();
    for (const b of backends) await b.close();
    await network?.close();
  }
}

function forwardText(f: PortForward): string {
  return `${f.proto} ${(f.hostAddr ?? [127, 0, 0, 1]).join(".")}:${f.hostPort} → ${f.guestAddr.join(".")}:${f.guestPort}`;
}

const lastStats = new Map<VhostUserNetBackend, { t: number; rx: number; tx: number; rxb: number; txb: number }>();

function printStats(b: VhostUserNetBackend, out: (s: string) => void, label: string): void {
  const last = lastStats.get(b) ?? null;
  const rx = addMetrics(b.devices.map((d) => d.metrics(QueueIndex.RX)));
  const tx = addMetrics(b.devices.map((d) => d.metrics(QueueIndex.TX)));
  const perPair = b.devices.length > 1
    ? `; per pair rx/tx ${b.devices.map((d) => `${d.metrics(QueueIndex.RX).packets}/${d.metrics(QueueIndex.TX).packets}`).join(" ")}`
    : "";
  const now = performance.now();
  const rate = (v: number, p: number) => (last ? ((v - p) / ((now - last.t) / 1000)).toFixed(0) : "-");
  const drops = (m: typeof rx) => Object.entries(m).filter(([k, v]) => k.startsWith("drop") && v > 0).map(([k, v]) => `${k}=${v}`).join(" ");
  out(`stats${label}: rx ${rx.packets} pkts (${rate(rx.packets, last?.rx ?? 0)}/s, ${rate(rx.bytes * 8, (last?.rxb ?? 0) * 8)} bit/s) `
    + `tx ${tx.packets} pkts (${rate(tx.packets, last?.tx ?? 0)}/s, ${rate(tx.bytes * 8, (last?.txb ?? 0) * 8)} bit/s); `
    + `csum offloaded tx ${tx.csumOffloaded} rx ${rx.csumOffloaded}, software tx ${tx.csumSoftware} rx ${rx.csumSoftware}; `
    + `large segments whole tx ${tx.gsoOffloaded} rx ${rx.gsoOffloaded}, split tx ${tx.gsoSegmented} rx ${rx.gsoSegmented}`
    + `${drops(rx) || drops(tx) ? `; drops ${[drops(rx), drops(tx)].filter(Boolean).join(" ")}` : ""}`
    + `${b.network?.port.backlogDrops ? `; switch backlog drops ${b.network.port.backlogDrops}` : ""}${perPair}`);
  lastStats.set(b, { t: now, rx: rx.packets, tx: tx.packets, rxb: rx.bytes, txb: tx.bytes });
}

