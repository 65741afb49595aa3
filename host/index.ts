/** virtio-net-wasm: public API on hosts with native code (Node, Bun, Deno): the portable part, and what needs libc or libslirp. */
export * from "./portable.js";
export { corePath } from "./wasm/core-source.js";
export {
  embeddedNetwork, type EmbeddedNetwork, type EmbeddedNetworkOptions, type UplinkRequest,
} from "./net/embedded-network.js";
export { PcapPort } from "./net/pcap-port.js";
export { SlirpUplink, type PortForward, type UplinkCounters } from "./net/uplink.js";
export { SlirpUnavailable } from "./runtime/libslirp.js";
export { VhostUserNetBackend, type LogLevel, type Logger, type VhostUserNetOptions } from "./vhost-user/backend.js";
export { VhostUserServer, type ServerOptions } from "./vhost-user/server.js";
