/**
 * A network without a way out: a switch with the built-in gateway, and one shared Wasm memory
 * for the devices on it (so frames between two of them move inside the core). What a browser
 * page builds (host/browser.ts); `embeddedNetwork()` adds the uplink on hosts that have one.
 */
import { WasmSpace } from "../memory/wasm-space.js";
import { Gateway, type GatewayOptions } from "./gateway.js";
import { Switch } from "./switch.js";

export interface LocalNetwork {
  sw: Switch;
  gateway: Gateway;
  /** Memory for the state blocks and guest RAM of devices joining the network. */
  space: WasmSpace;
}

/** A switch and a gateway on `subnet` (default 10.215.0.0/24), with a shared memory for devices. */
export function localNetwork(gateway: GatewayOptions = { subnet: "10.215.0.0" }): LocalNetwork {
  const sw = new Switch();
  return { sw, gateway: new Gateway(sw, gateway), space: new WasmSpace() };
}
