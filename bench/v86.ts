/**
 * v86's built-in virtio-net against this engine attached to v86, same Debian i386 guest, same
 * workload, one process: the guest pings the embedded gateway back to back (busybox ping -A,
 * 1000-byte payloads), then the frames/s the guest achieved and the device-side time per frame
 * (host time inside the notification handlers, which includes the switch and the gateway's
 * reply in both modes). Rounds alternate between the two devices.
 */
import { bootV86Guest, v86GuestAvailable } from "../host/guests/v86.js";
import { embeddedNetwork } from "../host/vhost-user/backend.js";
import { table } from "./harness.js";

export const PINGS = 400;

/** The guest's script: a fixed address on `net` (.50), then ping -A x PINGS (1000 B) to the gateway (.1). */
export function pingScript(net: string): string {
  return `
ip addr flush dev eth0
ip addr add ${net}.50/24 dev eth0
ping -c 1 -W 3 ${net}.1 >/dev/null
echo "VNW start"
ping -A -q -c ${PINGS} -s 1000 ${net}.1 > /tmp/p 2>&1
echo "VNW end $(grep -o '[0-9]* packets received' /tmp/p)"
echo "VNW done"`;
}
const SCRIPT = pingScript("198.51.100");

export async function v86Bench(): Promise<void> {
  const ok = v86GuestAvailable();
  if (!ok.ok) {
    console.log(`\nv86: skipped (${ok.reason})`);
    return;
  }
  const res: Record<string, { fps: number[]; us: number[] }> = { "v86 built-in virtio-net": { fps: [], us: [] }, "this engine in v86": { fps: [], us: [] } };
  for (let round = 0; round < 2; round++) {
    for (const mode of ["builtin", "engine"] as const) {
      const network = embeddedNetwork({ subnet: "198.51.100.0" });
      const g = await bootV86Guest({ script: SCRIPT, network: network.sw, mode });
      await g.waitFor(/VNW start/, 150_000);
      const t0 = performance.now();
      const ms0 = mode === "engine" ? g.net!.deviceMs : g.builtinMs();
      const m = await g.waitFor(/VNW end (\d+) packets received/, 150_000);
      const wall = (performance.now() - t0) / 1000;
      const ms = (mode === "engine" ? g.net!.deviceMs : g.builtinMs()) - ms0;
      g.stop();
      const frames = 2 * Number(m[1]);
      const r = res[mode === "engine" ? "this engine in v86" : "v86 built-in virtio-net"];
      r.fps.push(frames / wall);
      r.us.push((ms * 1000) / frames);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = res["v86 built-in virtio-net"];
  const rows = [["device", "frames/s (guest)", "device µs/frame", "frames/s ratio", "µs ratio"]];
  for (const [name, r] of Object.entries(res)) {
    rows.push([name, mean(r.fps).toFixed(0), mean(r.us).toFixed(1), (mean(r.fps) / mean(base.fps)).toFixed(2), (mean(r.us) / mean(base.us)).toFixed(2)]);
  }
  console.log(`\nv86 0.5.462, Debian i386 guest, ping -A x${PINGS} (1000 B) to the embedded gateway; mean of 2 alternating rounds`);
  table(rows);
}

if (process.argv[1]?.endsWith("v86.js")) await v86Bench();
