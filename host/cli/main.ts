/**
 * The `virtio-net-wasm` command.
 *
 *   virtio-net-wasm demo [--in-process [--frames N]]
 *   virtio-net-wasm vhost-user --socket PATH [--tap IFNAME] [...]
 */
import { parseArgs } from "node:util";
import { runDemo } from "./demo.js";
import { runGuestDemo } from "./guest-demo.js";
import { relayMain } from "./relay.js";
import { vhostUserMain } from "./vhost-user.js";
import { webMain } from "./web.js";

const HELP = `usage: virtio-net-wasm <command> [options]

commands:
  demo            two real Linux guests under QEMU on the embedded network, served by this
                  engine over vhost-user: DHCP, ping, a TCP transfer between them, a page
                  fetched from the host's loopback through the uplink, and which checksums
                  nobody computed. Sets up first if needed (scripts/install-deps.sh demo: as
                  root, installs qemu-system-x86, busybox-static, cpio, iperf3 and libslirp0
                  from Debian, then builds the guest image).
                  Where real guests cannot run, falls back to --in-process.
      --in-process
                  two guest driver models with virtio-net devices on one Wasm memory,
                  wired back to back in-process (no root, tap or QEMU)
      --frames N  frames per phase of the in-process demo (default 1000)
  vhost-user      serve a QEMU guest's virtio-net over vhost-user, with a tap or on the
                  embedded network (virtio-net-wasm vhost-user --help for options and the
                  QEMU command line)
  relay           serve the embedded network over WebSockets, for browser pages (and
                  vhost-user guests) to join (virtio-net-wasm relay --help)
  web             serve a page that boots two v86 guests on this engine's NIC in the
                  browser (virtio-net-wasm web --help)
  help            this text`;

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[], log: (s: string) => void = console.log, err: (s: string) => void = console.error): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    log(HELP);
    return command ? 0 : 2;
  }
  if (command === "vhost-user") return vhostUserMain(rest, log, err);
  if (command === "relay") return relayMain(rest, log, err);
  if (command === "web") return webMain(rest, log, err);
  if (command !== "demo") {
    err(`virtio-net-wasm: unknown command "${command}"\n\n${HELP}`);
    return 2;
  }
  let frames: number;
  let inProcess: boolean;
  try {
    const { values } = parseArgs({ args: rest, options: { frames: { type: "string", default: "1000" }, "in-process": { type: "boolean", default: false } }, strict: true });
    frames = Number(values.frames);
    inProcess = values["in-process"]!;
    if (!Number.isInteger(frames) || frames <= 0 || frames > 1_000_000) throw new Error(`--frames must be an integer in 1..1000000, got "${values.frames}"`);
  } catch (e) {
    err(`virtio-net-wasm demo: ${(e as Error).message}`);
    return 2;
  }
  if (!inProcess) {
    const r = await runGuestDemo(log);
    if (typeof r === "boolean") return r ? 0 : 1;
    log(`real guests cannot run here: ${r}. Running the in-process demo instead.\n`);
  }
  return runDemo({ frames, log }) ? 0 : 1;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "\0");
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2));
