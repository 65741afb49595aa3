/**
 * The data path of one device in a Worker: blocked in epoll_wait on the tap, the two queue
 * kick eventfds and a stop eventfd; pumps under the device lock; reports interrupts by eventfd
 * (vhost-user call fds) or by message. Started by TapWorker (tap-worker.ts), which keeps one
 * such thread per device for all its runs: each "run" message starts the loop on the kick and
 * call fds of that run, the stop eventfd ends it, and the thread waits for the next run (a
 * thread per run left ~6 mappings behind each time).
 *
 * It never sleeps with work pending: a pump that stops at its budget leaves the guest's
 * notifications off (virtio 1.2, 2.7.7 and 2.7.10), so the next round looks again at once
 * instead of waiting for a kick that a suppression-honouring driver will not send. With
 * `pollUs`, it keeps looking for that long after the last frame moved before it sleeps
 * (vhost-net's busyloop_timeout).
 */
import { parentPort, workerData } from "node:worker_threads";
import { QueueIndex } from "../../assembly/abi.js";
import { LinuxTap } from "../backends/tap-linux.js";
import { VirtioNetDevice } from "../device/virtio-net.js";
import * as libc from "../runtime/libc.js";
import { DeviceLock } from "../device/device-lock.js";
import { RateLimiter } from "../device/rate-limiter.js";
import { PollWindow } from "./poll-window.js";
import { TapPort } from "./tap-port.js";
import type { TapWorkerData, TapWorkerMessage, TapWorkerRun } from "./tap-worker.js";

const data = workerData as TapWorkerData;
const post = (m: TapWorkerMessage) => parentPort!.postMessage(m);
const lock = new DeviceLock(data.memory, data.lockAddress);
/** Where interrupts go during the current run. */
let callFds: [number, number] | undefined;
const dev = new VirtioNetDevice({
  memory: data.memory, stateAddress: data.stateAddress, regions: [], attach: true, nativeBase: data.nativeBase,
  hooks: {
    // The Worker runs the data queues only; the control queue is the main thread's.
    interrupt: (q) => { if (q !== QueueIndex.CTRL) (callFds ? libc.eventfdSignal(callFds[q]) : post({ kind: "interrupt", queue: q })); },
    configChanged: () => post({ kind: "config-changed" }),
    needsReset: () => post({ kind: "needs-reset" }),
  },
});
const tap = LinuxTap.fromFd(data.tapFd, data.tapName, data.vnetHdr, 0);
const port = new TapPort(dev, tap, data.nativeBase);
if (data.budget !== undefined) port.budget = data.budget;
if (data.limits?.tx) port.limits.tx = new RateLimiter(data.limits.tx);
if (data.limits?.rx) port.limits.rx = new RateLimiter(data.limits.rx);

const TAP = 1, KICK_RX = 2, KICK_TX = 3, STOP = 4;
const events = new libc.EpollEvents(8);

/** One data-path run: until the stop eventfd is signalled. */
function run(r: TapWorkerRun): void {
  callFds = r.callFds;
  const kickFds = r.kickFds;
  const poll = new PollWindow(r.pollUs ?? 0);
  libc.eventfdDrain(data.stopFd);
  const ep = libc.epollCreate();
  libc.epollAdd(ep, data.tapFd, libc.EPOLLIN | libc.EPOLLONESHOT, TAP);
  libc.epollAdd(ep, kickFds[QueueIndex.RX], libc.EPOLLIN, KICK_RX);
  libc.epollAdd(ep, kickFds[QueueIndex.TX], libc.EPOLLIN, KICK_TX);
  libc.epollAdd(ep, data.stopFd, libc.EPOLLIN, STOP);
  post({ kind: "ready" });
  let polling = false;
  // Anything queued before the run started: look once.
  let look = true;
  for (let running = true; running;) {
    // Inside the window the guest need not kick; leaving it, kicks are asked for again and the
    // ring is looked at once more, since a frame may have come just before (virtio 1.2, 2.7.10).
    if (poll.open() !== polling) {
      polling = !polling;
      look = lock.with(() => dev.setPolling(QueueIndex.TX, polling)) || look;
    }
    // A rate limit that stopped a direction bounds the wait: its tokens come back by then.
    const limitWait = port.limitWaitMs;
    const n = libc.epollWait(ep, events, port.workPending || polling || look ? 0 : limitWait ?? -1);
    // Polling looks at both rings every round; otherwise what the last round left, plus events.
    let tx = port.txPending || polling || look || (limitWait !== null && port.txLimited);
    let rx = port.rxPending || polling || look || (limitWait !== null && port.rxLimited);
    look = false;
    for (let i = 0; i < n; i++) {
      const t = events.token(i);
      const e = events.events(i);
      if (t === STOP) running = false;
      else if (t === KICK_TX) { libc.eventfdDrain(kickFds[QueueIndex.TX]); tx = true; }
      else if (t === KICK_RX) { libc.eventfdDrain(kickFds[QueueIndex.RX]); port.buffersPosted(); rx = true; }
      else if (t === TAP) {
        if (e & libc.EPOLLOUT) tx = true;
        if (e & (libc.EPOLLIN | libc.EPOLLERR | libc.EPOLLHUP)) rx = true;
      }
    }
    if (!running) break;
    if (!tx && !rx) continue;
    const before = port.moved;
    lock.with(() => {
      if (tx) port.pumpTx();
      // A TX round may have freed the tap for reads too; RX always gets a look after one.
      const res = port.pumpRx();
      if (res === "tap-error") post({ kind: "tap-error", message: port.stats.lastError ?? "tap error" });
    });
    if (port.moved !== before) poll.progress();
    libc.epollMod(ep, data.tapFd, port.tapEvents() | libc.EPOLLONESHOT, TAP);
  }
  if (polling) lock.with(() => dev.setPolling(QueueIndex.TX, false));
  libc.close(ep);
  callFds = undefined;
  post({ kind: "stopped" });
}

parentPort!.on("message", (m: { kind: "run" } & TapWorkerRun) => {
  if (m.kind === "run") run(m);
});
post({ kind: "spawned" });
