/**
 * The part of the public API that needs no native code and no file system: the same in Node,
 * Bun, Deno and a browser. `host/index.ts` (hosts with koffi) and `host/browser.ts` (pages)
 * each add their own to it.
 */
export {
  BackendKind, Code, CsumPolicy, Ctrl, DeviceEvent, DeviceOption, Feature, GsoMask, Metric, NetHdr, QueueIndex,
  RxMode, Status, TunHdr,
} from "../assembly/abi.js";
export {
  VirtioNetDevice, DeviceError, macToBigInt, type AdoptedQueue, type AdoptedState, type DataQueue, type DeviceHooks,
  type DeviceOptions, type ReceiveResult,
} from "./device/virtio-net.js";
export { SavedStateError, SAVED_STATE_FORMAT } from "./device/saved-state.js";
export {
  CTRL_OFFER, CTRL_OFFER_LIST, FEATURE_NAMES, featureBit, featureList, featureMask, FULL_OFFER, FULL_OFFER_LIST, hasFeature,
  parseFeatureList,
} from "./device/features.js";
export { METRIC_NAMES, readMetrics, sumMetrics, type MetricName, type QueueMetrics } from "./device/metrics.js";
export {
  decodeTunHdr, decodeVirtioHdr, encodeTunHdr, encodeVirtioHdr, EMPTY_HDR, type TunHeader, type VirtioNetHdr,
} from "./device/header.js";
export {
  createGuestMemory, regionsWithHoles, type GuestHole, type GuestMemory, type GuestMemoryOptions, type GuestRegion,
} from "./memory/layout.js";
export { WasmSpace } from "./memory/wasm-space.js";
export { coreModule, instantiateCore, isSharedMemory, useCoreModule, type CoreExports } from "./wasm/core.js";
export { VirtioPciTransport, PciCap, Common, type PciHooks } from "./transports/virtio-pci.js";
export { VirtioMmioTransport, Mmio, MMIO_MAGIC, MMIO_SIZE, type MmioHooks } from "./transports/virtio-mmio.js";
export {
  V86VirtioNet, captureV86Exports, v86NotifyPorts, type V86Like, type V86NetOptions, type V86Queue, type V86Virtio, type V86VirtioNetDevice,
  type V86WasmExports,
} from "./emulators/v86.js";
export { localNetwork, type LocalNetwork } from "./net/local-network.js";
export { Switch, type NetFrame, type SwitchCounters, type SwitchPort } from "./net/switch.js";
export { Gateway, type GatewayCounters, type GatewayOptions } from "./net/gateway.js";
export { DevicePort, type DevicePortOptions } from "./net/device-port.js";
export { MultiQueuePort } from "./net/multi-queue-port.js";
export { flowHash } from "./net/flow-hash.js";
export { PcapCapture } from "./net/pcap.js";
export {
  WebSocketPort, encodeLinkFrame, decodeLinkFrame, LINK_VERSION, type LinkCounters, type WebSocketLike,
} from "./net/websocket-port.js";
