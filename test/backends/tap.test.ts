import { spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { BackendKind, Ctrl, Feature, Status } from "../../assembly/abi.js";
import { tapOffloadFlags, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO, TUN_F_USO4, TUN_F_USO6 } from "../../host/backends/tap-ioctl.js";
import { LinuxTap, TapError } from "../../host/backends/tap-linux.js";
import { CTRL_OFFER, featureMask, FULL_OFFER } from "../../host/device/features.js";
import { fixture } from "../helpers/setup.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { TapLoop } from "../../host/io/tap-loop.js";
import { TapPort } from "../../host/io/tap-port.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { memoryAddress } from "../../host/runtime/libc.js";
import { Netns, netTestsAvailable } from "../support/netns.js";

describe("guest features → TUN_F_* (TUNSETOFFLOAD follows the guest's GUEST_* features)", () => {
  const F = (...f: Feature[]) => featureMask(...f);
  it.each([
    ["nothing", 0n, 0],
    ["host-side offloads only (CSUM, HOST_TSO4) give the kernel nothing", F(Feature.CSUM, Feature.HOST_TSO4), 0],
    ["GUEST_CSUM", F(Feature.GUEST_CSUM), TUN_F_CSUM],
    ["GUEST_TSO4/6 + ECN", F(Feature.GUEST_CSUM, Feature.GUEST_TSO4, Feature.GUEST_TSO6, Feature.GUEST_ECN), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN],
    ["GUEST_ECN without TSO means nothing", F(Feature.GUEST_CSUM, Feature.GUEST_ECN), TUN_F_CSUM],
    ["GUEST_UFO", F(Feature.GUEST_CSUM, Feature.GUEST_UFO), TUN_F_CSUM | TUN_F_UFO],
    ["GUEST_USO4/6", F(Feature.GUEST_CSUM, Feature.GUEST_USO4, Feature.GUEST_USO6), TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6],
    ["segmentation without GUEST_CSUM is invalid and gets nothing", F(Feature.GUEST_TSO4), 0],
  ])("%s", (_n, features, flags) => {
    expect(tapOffloadFlags(features)).toBe(flags);
  });
});

const avail = netTestsAvailable();
describe.skipIf(!avail.ok)(`Linux tap errors${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => { while (cleanup.length) cleanup.pop()!(); });

  it("refuses a name longer than IFNAMSIZ with a clear error", () => {
    expect(() => LinuxTap.open("a-very-long-tap-name")).toThrow(/longer than 15 bytes/);
  });

  it("reports a busy interface", () => {
    const name = Netns.tapName();
    const a = LinuxTap.open(name);
    cleanup.push(() => a.close());
    let err: unknown;
    try { LinuxTap.open(name); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(TapError);
    expect((err as TapError).kind).toBe("busy");
    expect(String((err as TapError).message)).toMatch(/is busy/);
  });

  it("reports link down when the tap goes away and recovers when it can be opened again", async () => {
    const ns = Netns.create();
    cleanup.push(() => ns.destroy());
    const mem = createGuestMemory({ guestSize: 1 << 20 });
    const nativeBase = memoryAddress(mem.memory);
    const tap = LinuxTap.open(Netns.tapName());
    const dev = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, nativeBase, backend: BackendKind.VNET_HDR });
    dev.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    dev.setDriverFeatures(featureMask(Feature.VERSION_1, Feature.STATUS, Feature.GUEST_CSUM));
    dev.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    const port = new TapPort(dev, tap, nativeBase);
    const lines: string[] = [];
    const loop = new TapLoop(port, { reopenIntervalMs: 100, log: (l) => lines.push(l) });
    loop.start();
    cleanup.push(() => { void loop.stop(); port.tap.close(); });
    expect(dev.readConfig(6, 2) & 1).toBe(1);
    // Move the interface into the namespace and delete it there: our fd loses its device.
    ns.adopt(tap.name);
    ns.ip(["link", "del", tap.name]);
    for (let i = 0; i < 50 && (dev.readConfig(6, 2) & 1) === 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(dev.readConfig(6, 2) & 1).toBe(0);
    // The loop re-creates it by name and brings the link back.
    for (let i = 0; i < 100 && (dev.readConfig(6, 2) & 1) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(dev.readConfig(6, 2) & 1).toBe(1);
    expect(lines.join("\n")).toMatch(/link down[\s\S]*reopened; link up/);
  });
});

const ethtool = avail.ok && spawnSync("ethtool", ["--version"]).status === 0;
describe.skipIf(!ethtool)(`the tap's offloads follow the guest's (CTRL_GUEST_OFFLOADS)${ethtool ? "" : ` (skipped: ${avail.ok ? "ethtool is not installed" : avail.reason})`}`, () => {
  it("switched off and on through the control queue, the kernel's tap offloads follow", () => {
    const tap = LinuxTap.open(Netns.tapName());
    try {
      // The control side a host wires up: negotiation and later changes both go to TUNSETOFFLOAD.
      const { dev, drv } = fixture({
        backend: BackendKind.VNET_HDR, features: FULL_OFFER | CTRL_OFFER,
        hooks: { negotiated: (x) => tap.applyNegotiated(x), offloadsChanged: (x) => tap.applyNegotiated(x) },
      });
      drv.bringUp(FULL_OFFER | CTRL_OFFER);
      const k = () => {
        const out = spawnSync("ethtool", ["-k", tap.name], { encoding: "utf8" }).stdout;
        const on = (name: string) => new RegExp(`^${name}: on`, "m").test(out);
        return { csum: on("tx-checksumming"), tso: on("tcp-segmentation-offload") };
      };
      expect(k()).toEqual({ csum: true, tso: true });
      const set = (v: bigint) => drv.ctrl(Ctrl.CLASS_GUEST_OFFLOADS, Ctrl.GUEST_OFFLOADS_SET, Uint8Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn)), () => dev.processCtrl());
      expect(set(0n)).toBe(Ctrl.OK);
      expect(k()).toEqual({ csum: false, tso: false });
      expect(set(featureMask(Feature.GUEST_CSUM))).toBe(Ctrl.OK);
      expect(k()).toEqual({ csum: true, tso: false });
      expect(set(featureMask(Feature.GUEST_CSUM, Feature.GUEST_TSO4, Feature.GUEST_TSO6))).toBe(Ctrl.OK);
      expect(k()).toEqual({ csum: true, tso: true });
    } finally {
      tap.close();
    }
  });
});
