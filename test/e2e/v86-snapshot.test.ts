/**
 * v86's save_state / restore_state with this engine's device: a Debian i386 guest pings the
 * embedded gateway without pause; mid-ping the machine is saved, the emulator thrown away, and
 * the snapshot restored into a fresh emulator with a fresh adapter on the same network. The
 * ping carries on (the gateway answers the restored guest; the guest's own count of replies
 * goes on growing), the device resumes its rings where they stood (no driver reset, no
 * re-negotiation), and its receive filter and counters come back with it. Then two guests
 * pinging each other, both saved and restored: the state of two devices at once.
 */
import { afterAll, describe, expect, it } from "vitest";
import { QueueIndex } from "../../assembly/abi.js";
import { dhcpScript } from "../../host/guests/shell.js";
import { bootV86Guest, v86GuestAvailable, type V86Guest } from "../../host/guests/v86.js";
import { embeddedNetwork } from "../../host/net/embedded-network.js";

const avail = v86GuestAvailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!avail.ok)(`a v86 guest saved and restored mid-ping${avail.ok ? "" : ` (skipped: ${avail.reason})`}`, () => {
  const network = embeddedNetwork({ subnet: "198.51.100.0", prefix6: "2001:db8:4::" });
  const guests: V86Guest[] = [];
  afterAll(() => { for (const g of guests) g.stop(); });

  it("keeps its network: the ping goes on after the restore, rings and filter as they were", async () => {
    // Pings every 0.2 s until 150 replies, printing a marker per 10 replies.
    const script = `${dhcpScript(["router"], "", 5)}
echo "VNW pinging"
n=0
while [ $n -lt 150 ]; do
  if ping -c 1 -W 2 198.51.100.1 >/dev/null; then n=$((n + 1)); fi
  [ $((n % 10)) -eq 0 ] && echo "VNW replies $n"
  sleep 0.2
done
echo "VNW finished $n"
`;
    const first = await bootV86Guest({ network: network.sw, mode: "engine", script });
    guests.push(first);
    await first.waitFor(/VNW replies 20/, 150_000);
    const net1 = first.net!;
    const syncs = net1.counters.syncs;
    const before = { mode: net1.dev.rxMode, rx: net1.dev.metrics(QueueIndex.RX).packets, tx: net1.dev.metrics(QueueIndex.TX).packets, ctrlOk: net1.dev.metrics(QueueIndex.CTRL).ctrlOk };
    const echoesBefore = network.gateway.counters.echoReplies;
    const snapshot = await first.save();
    first.stop();
    network.sw.detach(net1.port);
    await sleep(500);

    const second = await bootV86Guest({ network: network.sw, mode: "engine", script, restore: snapshot });
    guests.push(second);
    const net2 = second.net!;
    // Restored as saved: filter, counters; no re-sync on the next notification (rings resume).
    expect(net2.dev.rxMode).toBe(before.mode);
    expect(net2.dev.metrics(QueueIndex.CTRL).ctrlOk).toBe(before.ctrlOk);
    expect(net2.dev.metrics(QueueIndex.RX).packets).toBeGreaterThanOrEqual(before.rx);
    await second.waitFor(/VNW replies (4|5|6|7|8|9)0/, 120_000);
    expect(network.gateway.counters.echoReplies).toBeGreaterThan(echoesBefore + 15);
    expect(net2.dev.metrics(QueueIndex.TX).packets).toBeGreaterThan(before.tx + 15);
    expect(net2.counters.syncs).toBe(0);
    expect(net2.counters.resets).toBe(0);
    expect(syncs).toBeGreaterThan(0);
  }, 400_000);

  it("two guests pinging each other, both saved and both restored, ping on", async () => {
    const net = embeddedNetwork({ subnet: "192.0.2.0", prefix6: "2001:db8:5::" });
    const script = (me: number, peer: number) => `
ip addr flush dev eth0
ip addr add 192.0.2.${me}/24 dev eth0
echo "VNW pinging"
n=0
while [ $n -lt 150 ]; do
  if ping -c 1 -W 2 192.0.2.${peer} >/dev/null; then n=$((n + 1)); fi
  [ $((n % 10)) -eq 0 ] && echo "VNW replies $n"
  sleep 0.2
done
echo "VNW finished $n"
`;
    const [a, b] = await Promise.all([
      bootV86Guest({ network: net.sw, mode: "engine", script: script(50, 51) }),
      bootV86Guest({ network: net.sw, mode: "engine", script: script(51, 50) }),
    ]);
    guests.push(a, b);
    await Promise.all([a.waitFor(/VNW replies 20/, 200_000), b.waitFor(/VNW replies 20/, 200_000)]);
    const snapshots = [await a.save(), await b.save()];
    for (const g of [a, b]) {
      g.stop();
      net.sw.detach(g.net!.port);
    }
    await sleep(500);
    const restored = await Promise.all(snapshots.map((restore, i) => bootV86Guest({ network: net.sw, mode: "engine", script: script(50 + i, 51 - i), restore })));
    guests.push(...restored);
    await Promise.all(restored.map((g) => g.waitFor(/VNW replies (4|5|6|7|8|9)0/, 150_000)));
    // Both devices resumed from their own saved state (no re-sync), each with its own MAC back.
    restored.forEach((g, i) => {
      expect(g.net!.counters.syncs).toBe(0);
      expect(g.net!.dev.mac).toBe([a, b][i].net!.dev.mac);
    });
  }, 500_000);
});
