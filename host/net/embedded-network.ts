/**
 * The embedded network: a switch with the built-in gateway, and one shared Wasm memory for the
 * devices on it, so frames between two of them move inside the core (the switch's fast path,
 * assembly/net/forward.ts) instead of through JS.
 */
import { WasmSpace } from "../memory/wasm-space.js";
import { Gateway, type GatewayOptions } from "./gateway.js";
import { Switch } from "./switch.js";

export interface EmbeddedNetwork {
  sw: Switch;
  gateway: Gateway;
  /** Memory for the state blocks and guest RAM of devices joining the network. */
  space: WasmSpace;
}

/** Makes an embedded network: a switch and a gateway on `gateway.subnet` (default 10.215.0.0/24). */
export function embeddedNetwork(gateway: GatewayOptions = { subnet: "10.215.0.0" }): EmbeddedNetwork {
  const sw = new Switch();
  return { sw, gateway: new Gateway(sw, gateway), space: new WasmSpace() };
}
