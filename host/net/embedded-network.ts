/**
 * The embedded network: a switch with the built-in gateway, and one shared Wasm memory for the
 * devices on it, so frames between two of them move inside the core (the switch's fast path,
 * assembly/net/forward.ts) instead of through JS. With an uplink (libslirp behind the gateway)
 * guests also reach the host's loopback at the gateway's address, the host's resolver at
 * `.3`, and the world through the host's sockets; without one the network is an island.
 */
import { SlirpUnavailable } from "../runtime/libslirp.js";
import type { GatewayOptions } from "./gateway.js";
import { parseIp } from "./gateway/wire.js";
import { localNetwork, type LocalNetwork } from "./local-network.js";
import { NAMESERVER_HOST, SlirpUplink, type PortForward } from "./uplink.js";

export interface EmbeddedNetwork extends LocalNetwork {
  /** The way out, or null (asked for none, or libslirp is missing: see `uplinkError`). */
  uplink: SlirpUplink | null;
  /** Why an uplink that was asked for is not there. */
  uplinkError: string | null;
  /** Stops the uplink (its sockets, timers and slirp). */
  close(): Promise<void>;
}

export interface UplinkRequest {
  /** Host ports forwarded to guests (QEMU's hostfwd). */
  forwards?: PortForward[];
  log?: (line: string) => void;
}

export interface EmbeddedNetworkOptions extends GatewayOptions {
  /**
   * Reach the world through libslirp (user-mode networking, no root). Off by default here;
   * the CLI, the demo and the v86 guest helper turn it on. DHCP then hands out `.3` as the DNS
   * server unless `dns` says otherwise. Without libslirp the network stays an island and
   * `uplinkError` says why; a forward whose host port is taken throws.
   */
  uplink?: UplinkRequest | false;
}

/** Makes an embedded network: a switch and a gateway on `subnet` (default 10.215.0.0/24), and an uplink if asked for. */
export function embeddedNetwork(opts: EmbeddedNetworkOptions = { subnet: "10.215.0.0" }): EmbeddedNetwork {
  const { uplink: want, ...gatewayOpts } = opts;
  const net = parseIp(opts.subnet);
  if (want && gatewayOpts.dns === undefined) gatewayOpts.dns = [net[0], net[1], net[2], NAMESERVER_HOST].join(".");
  const local = localNetwork(gatewayOpts);
  const { gateway } = local;
  let uplink: SlirpUplink | null = null;
  let uplinkError: string | null = null;
  if (want) {
    try {
      uplink = new SlirpUplink({
        net, gatewayHost: gateway.ip[3], ipv6: { prefix: gateway.prefix6, gateway: gateway.ip6, linkLocal: gateway.linkLocal6 },
        forwards: want.forwards,
      }, (frame) => gateway.fromUplink(frame), want.log);
      gateway.attachUplink(uplink);
    } catch (e) {
      if (!(e instanceof SlirpUnavailable)) throw e;
      uplinkError = e.message;
    }
  }
  return { ...local, uplink, uplinkError, close: async () => { await uplink?.stop(); } };
}
