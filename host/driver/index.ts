/**
 * `virtio-net-wasm/testing`: a guest-side virtio-net driver in TypeScript and the frame
 * builders and independent checksum reference that go with it, for testing an integration of
 * the device (a transport, an emulator adapter, a backend) without a real guest.
 *
 * ```ts
 * import { VirtioNetDevice, BackendKind, createGuestMemory } from "virtio-net-wasm";
 * import { GuestDriver, buildFrame, payload } from "virtio-net-wasm/testing";
 * ```
 */
export {
  GuestDriver, rng, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
  type DriverQueue, type DriverTransport, type RxBufferOptions, type SendOptions,
} from "./guest-driver.js";
export {
  buildFrame, completePartial, decodeFrame, internetChecksum, ipv4HeaderValid, l4ChecksumValid, onesSum, payload,
  pseudoHeaderSum, DEVICE_MAC, PEER_MAC, type BuiltFrame, type DecodedFrame, type Ext, type FrameSpec, type L4,
} from "./frames.js";
