/**
 * The capture port, judged by tshark (Wireshark's decoder, independent of this project): it
 * must read the file, decode the guest's DHCP, ARP, ICMP and TCP, and find no bad checksum
 * with validation switched on. A raw capture of a partial checksum must be flagged bad, which
 * shows the validation is really on.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BackendKind, Feature, NetHdr } from "../../assembly/abi.js";
import { featureMask } from "../../host/device/features.js";
import { VirtioNetDevice } from "../../host/device/virtio-net.js";
import { createGuestMemory } from "../../host/memory/layout.js";
import { DevicePort } from "../../host/net/device-port.js";
import { Gateway } from "../../host/net/gateway.js";
import { PcapPort } from "../../host/net/pcap-port.js";
import { Switch } from "../../host/net/switch.js";
import { GuestDriver } from "../../host/driver/guest-driver.js";
import { buildFrame, payload } from "../../host/driver/frames.js";
import { dhcpRequest } from "../helpers/dhcp.js";

function tsharkAvailable(): boolean {
  try {
    execFileSync("tshark", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const tshark = (args: string[]) => execFileSync("tshark", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
const VALIDATE = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"];
const BAD = 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || tcp.checksum.status == "Bad" || icmp.checksum.status == "Bad"';

describe.skipIf(!tsharkAvailable())(`pcap capture port${tsharkAvailable() ? "" : " (skipped: tshark is not installed)"}`, () => {
  it("writes a capture tshark decodes, with every checksum valid", () => {
    const dir = mkdtempSync(join(tmpdir(), "vnw-pcap-"));
    const mem = createGuestMemory({ guestSize: 4 << 20 });
    const sw = new Switch();
    const gw = new Gateway(sw, { subnet: "198.51.100.0" });
    const wire = new PcapPort(sw, join(dir, "wire.pcap"));
    const raw = new PcapPort(sw, join(dir, "raw.pcap"), { raw: true });
    const dev = new VirtioNetDevice({ memory: mem.memory, stateAddress: mem.stateAddresses[0], regions: mem.regions, backend: BackendKind.VNET_HDR, mac: "02:00:00:00:00:01" });
    const drv = new GuestDriver(mem, dev, 4);
    drv.bringUp(featureMask(Feature.VERSION_1, Feature.CSUM, Feature.GUEST_CSUM), 64);
    drv.postRx(16);
    const port = new DevicePort("guest", dev, sw);
    const me = Uint8Array.of(2, 0, 0, 0, 0, 1);
    drv.send(dhcpRequest(me, 1));
    port.pumpTx();
    drv.send(buildFrame({ ip: 4, l4: "icmp", payload: payload(56), src: [198, 51, 100, 100], dst: gw.ip, srcMac: me, dstMac: gw.mac }).frame);
    // A partial TCP checksum, as a guest with CSUM sends it, to a host nobody has learned.
    const t = buildFrame({ ip: 4, l4: "tcp", payload: payload(800), csum: "partial", src: [198, 51, 100, 100], dst: [198, 51, 100, 9], srcMac: me, dstMac: Uint8Array.of(2, 0, 0, 0, 0, 9) });
    drv.send(t.frame, { hdr: { flags: NetHdr.F_NEEDS_CSUM, csumStart: t.l4Off, csumOffset: 16 } });
    port.pumpTx();
    wire.close();
    raw.close();

    const fields = tshark(["-r", join(dir, "wire.pcap"), "-T", "fields", "-e", "frame.protocols", "-e", "dhcp.option.dhcp", "-e", "icmp.type"]).trim().split("\n");
    expect(fields).toEqual([
      "eth:ethertype:ip:udp:dhcp\t1\t",
      "eth:ethertype:ip:udp:dhcp\t2\t",
      "eth:ethertype:ip:icmp:data\t\t8",
      "eth:ethertype:ip:icmp:data\t\t0",
      "eth:ethertype:ip:tcp:data", // (trailing empty fields trimmed)
    ]);
    expect(tshark(["-r", join(dir, "wire.pcap"), ...VALIDATE, "-Y", BAD]).trim()).toBe("");
    // The raw capture has the TCP checksum as the guest left it: partial, so tshark calls it bad.
    expect(tshark(["-r", join(dir, "raw.pcap"), ...VALIDATE, "-Y", BAD, "-T", "fields", "-e", "frame.protocols"]).trim()).toBe("eth:ethertype:ip:tcp:data");
    expect(sw.counters.partialCompleted).toBe(1);
  });
});
