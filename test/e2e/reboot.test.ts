/**
 * A real guest under QEMU keeps its network across what a guest does to its NIC over its life:
 * it reboots twice inside one QEMU process (QEMU resets the vhost-user device with SET_STATUS 0
 * and sets it up again, sending each ring's kick fd before its call fd), and it unloads and
 * reloads virtio_net (a driver reset). After each, a TCP transfer to the host verifies by
 * sha256. The guest cannot remember across reboots, so it asks the host what to do next.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { boot } from "../../host/guests/qemu.js";
import { Netns } from "../support/netns.js";
import { avail, cli, helper, sleep } from "./qemu-env.js";

const SCRIPT = `
for i in $(seq 1 40); do ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1 && break; done
send() {
  dd if=/dev/urandom of=/tmp/tx bs=65536 count=16 2>/dev/null
  echo "VNW txsha $(sha256sum /tmp/tx | cut -d' ' -f1)"
  nc 192.0.2.1 5001 < /tmp/tx && echo "VNW txdone"
}
next=$(nc 192.0.2.1 5009 </dev/null)
echo "VNW boot-told $next"
send
if [ "$next" = reload ]; then
  rmmod virtio_net && insmod /lib/modules/virtio_net.ko && echo "VNW reloaded"
  ip link set eth0 up
  ip addr add 192.0.2.2/24 dev eth0
  for i in $(seq 1 40); do ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1 && break; done
  send
  next=reboot
fi
if [ "$next" = reboot ]; then echo "VNW rebooting"; reboot -f; fi
`;

describe.skipIf(!avail.ok || !existsSync(cli))(`a real guest rebooting on the back-end${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  it("keeps its network across two reboots and a virtio_net reload, transfers verified each time", async () => {
    const ns = Netns.create();
    const socket = `/tmp/vnw-reboot-${process.pid}.sock`;
    const tap = Netns.tapName();
    let out = "";
    const backend = spawn(process.execPath, [cli, "vhost-user", "--socket", socket, "--tap", tap], { stdio: ["ignore", "pipe", "pipe"] });
    backend.stdout!.on("data", (d) => { out += d; });
    backend.stderr!.on("data", (d) => { out += d; });
    try {
      for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
      ns.adopt(tap);
      ns.hostSide(tap);
      // Boot 1: send, reboot. Boot 2: send, reload virtio_net, send, reboot. Boot 3: send, power off.
      const told = ns.run(["node", helper, "tcp-say", "192.0.2.1", "5009", "reboot|reload|poweroff"], 240_000);
      const sinks = ns.run(["node", helper, "tcp-sinks", "192.0.2.1", "5001", "4"], 240_000);
      await sleep(300);
      const guest = boot({ socket, script: SCRIPT, allowReboot: true });
      await guest.exited;
      await told;
      const got = (await sinks).trim().split("\n").map((l) => JSON.parse(l) as { bytes: number; sha256: string });
      const sent = guest.lines.filter((l) => l.includes("VNW txsha")).map((l) => l.split(" ").at(-1));
      expect(guest.lines.filter((l) => l.includes("VNW rebooting"))).toHaveLength(2);
      expect(guest.lines.some((l) => l.includes("VNW reloaded"))).toBe(true);
      expect(sent).toHaveLength(4);
      expect(got.map((g) => g.sha256)).toEqual(sent);
      expect(got.every((g) => g.bytes === 1 << 20)).toBe(true);
      expect(Object.values(ns.csumErrors()).every((v) => v === 0)).toBe(true);
    } finally {
      backend.kill("SIGTERM");
      ns.destroy();
      if (process.env.VNW_DEBUG) console.log(out);
    }
  }, 300_000);
});
