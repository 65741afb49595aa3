/**
 * The embedded network bridged to the kernel through a tap port: a guest (driver model) on the
 * switch, the namespace's stack on the tap. The kernel pings the guest and exchanges UDP with
 * it; partial checksums cross the tap in both directions; neither side sees a bad checksum.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendKind, Feature, QueueIndex } from "../../assembly/abi.js";
import { fileURLToPath } from "node:url";
import { LinuxTap } from "../../host/backends/tap-linux.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { Gateway } from "../../host/net/gateway.js";
import { Switch } from "../../host/net/switch.js";
import { TapSwitchPort } from "../../host/net/tap-switch-port.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { payload } from "../../host/driver/frames.js";
import { GuestStack, GUEST4, GUEST_MAC, HOST4 } from "./guest-stack.js";
import { Netns, netTestsAvailable } from "../support/netns.js";

const helper = fileURLToPath(new URL("./host-helper.mjs", import.meta.url));
const avail = netTestsAvailable();
const FEATURES = featureMask(Feature.VERSION_1, Feature.EVENT_IDX, Feature.CSUM, Feature.GUEST_CSUM);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!avail.ok)(`tap as a switch port${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  let ns: Netns;
  let tapPort: TapSwitchPort;
  let stack: GuestStack;
  let sw: Switch;
  let guest: DevicePort;

  beforeAll(() => {
    ns = Netns.create();
    sw = new Switch();
    new Gateway(sw, { subnet: "198.51.100.0" });
    const tap = LinuxTap.open(Netns.tapName());
    ns.adopt(tap.name);
    ns.hostSide(tap.name);
    tapPort = new TapSwitchPort(sw, tap);
    tapPort.start();
    const mem = createGuestMemory({ guestSize: 8 << 20 });
    const dev = new VirtioNetDevice({
      memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, backend: BackendKind.VNET_HDR,
      hooks: { interrupt: (q) => { if (q === QueueIndex.RX) setImmediate(() => stack.poll()); } },
    });
    guest = new DevicePort("guest", dev, sw);
    const drv = new GuestDriver(mem, dev, 11);
    drv.bringUp(FEATURES, 256);
    stack = new GuestStack(drv, FEATURES, (q) => (q === QueueIndex.TX ? guest.pumpTx() : guest.pumpRx()), 64, GUEST_MAC, GUEST4);
    stack.start();
    stack.hostMac = ns.mac(tap.name);
  });

  afterAll(async () => {
    await tapPort.stop();
    tapPort.tap.close();
    ns.destroy();
  });

  it("the kernel pings the guest through the switch (ARP answered by the guest)", async () => {
    await ns.run(["ping", "-c", "2", "-W", "2", "192.0.2.2"]);
  });

  it("UDP both ways with partial checksums crossing the tap untouched", async () => {
    const data = payload(1200, 4);
    const out = ns.run(["node", helper, "udp-recv", "192.0.2.1", "5500", "1"]);
    await sleep(300);
    stack.send({ ip: 4, l4: "udp", src: GUEST4, dst: HOST4, dport: 5500, payload: data });
    expect(JSON.parse(await out)).toEqual([Buffer.from(data).toString("hex")]);
    await ns.run(["node", helper, "udp-send", "192.0.2.2", "6500", Buffer.from(data).toString("hex")]);
    const r = await stack.waitFor((x) => x.decoded.ip?.proto === 17 && x.decoded.ip.dport === 6500, 3000, "datagram");
    expect(r.partial).toBe(true); // the kernel's partial checksum reached the guest as NEEDS_CSUM
    expect(sw.counters.partialCompleted).toBe(0);
    expect(stack.bad).toEqual([]);
    expect(Object.values(ns.csumErrors()).every((v) => v === 0)).toBe(true);
    expect(tapPort.errors).toBe(0);
  });
});
