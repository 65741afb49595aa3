/**
 * Joins a VirtioNetDevice to a Linux tap with zero copies: TX hands the core's iovec array
 * (pointing into guest RAM) straight to writev; RX readv's straight into the guest's posted
 * buffers, the tap's virtio_net_hdr landing where the guest's header goes. The only bytes the
 * host touches are the counters.
 *
 * The port is the data path only: it reads and writes, nothing more. The control side (the
 * tap's header size and offloads after negotiation) is the backend's `applyNegotiated()`; a
 * host that separates privileges runs it elsewhere.
 */
import { BackendKind, Code, QueueIndex } from "../../assembly/abi.js";
import type { RateLimiter } from "../device/rate-limiter.js";
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { EAGAIN, ENOBUFS, EPOLLIN, EPOLLOUT, errnoName } from "../runtime/libc.js";

/**
 * What the data path needs of a tap: scatter-gather I/O on native iovec arrays, returning bytes
 * or -errno (-EAGAIN when it would block). `LinuxTap` is one; tests pass stand-ins.
 */
export interface TapIo {
  readonly name: string;
  /** Frames carry a virtio_net_hdr (IFF_VNET_HDR). */
  readonly vnetHdr: boolean;
  writev(iov: bigint, n: number): number;
  readv(iov: bigint, n: number): number;
}

/** Why an RX pump stopped. */
export type RxStop =
  /** The tap has nothing more to read. */
  | "drained"
  /** The guest has no RX buffers: wait for its RX notification. */
  | "no-buffers"
  /** The budget ran out with more possibly pending. */
  | "budget"
  /** The queue is not ready or is broken. */
  | "not-ready"
  /** The tap failed (e.g. the interface was deleted). */
  | "tap-error"
  /** The RX rate limit is reached: frames wait in the tap until `limitWaitMs`. */
  | "rate-limited";

/** Why a TX pump stopped ("rate-limited": the frame stays on the guest's ring until `limitWaitMs`). */
export type TxStop = "empty" | "tap-full" | "budget" | "not-ready" | "tap-error" | "rate-limited";

export interface PortStats {
  tapWriteErrors: number;
  tapReadErrors: number;
  tapFull: number;
  lastError: string | null;
}

export class TapPort<Tap extends TapIo = TapIo> {
  readonly stats: PortStats = { tapWriteErrors: 0, tapReadErrors: 0, tapFull: 0, lastError: null };
  private txState: TxStop = "empty";
  private rxState: RxStop = "drained";
  /** Frames moved either way so far (a loop that polls watches it for progress). */
  moved = 0;
  /**
   * Frames one pump moves at most before it returns, so the other direction and the control
   * side get their turn (the device lock is held per pump).
   */
  budget = 256;
  /** The last RX pump found no guest buffer: the tap waits until the guest posts some. */
  private rxWaitingForBuffers = false;
  /** The last TX pump was refused by the tap (EAGAIN): wait for it to be writable. */
  private txBlocked = false;
  /** Rate limits per direction (Firecracker's rate limiters): over them, frames wait. */
  limits: { tx?: RateLimiter; rx?: RateLimiter } = {};
  /** Bytes of the TX frame the limit held back (what must fit before it goes). */
  private txHeldBytes = 0;

  /**
   * @param nativeBase native address of Wasm address 0 (the device must have been created
   *   with the same `nativeBase`, so the core's iovecs carry native addresses).
   */
  constructor(readonly dev: VirtioNetDevice, public tap: Tap, readonly nativeBase: bigint) {
    if (dev.backendKind !== (tap.vnetHdr ? BackendKind.VNET_HDR : BackendKind.PLAIN)) {
      throw new Error(`device backend kind must be ${tap.vnetHdr ? "VNET_HDR" : "PLAIN"} for tap ${tap.name}`);
    }
  }

  /** Bytes of the tap's own header in front of each frame (rate limits count frames as on the wire). */
  private get headerBytes(): number {
    return this.tap.vnetHdr ? this.dev.headerLength : 0;
  }

  /** Sends what the guest queued. */
  pumpTx(budget = this.budget): TxStop {
    const nb = this.nativeBase;
    this.txState = "empty";
    const limit = this.limits.tx;
    const hdr = this.headerBytes;
    const r = this.dev.processTx((iov, n) => {
      if (limit) {
        // The frame's bytes (as on the wire: the tap's header does not count), as the charge below counts them.
        const bytes = this.dev.iovecs(iov, n).reduce((a, v) => a + v.len, 0) - hdr;
        if (!limit.allows(bytes)) {
          // No drop: the frame stays on the ring and goes when the tokens are back.
          this.txHeldBytes = bytes;
          this.txState = "rate-limited";
          return Code.RETRY;
        }
      }
      const w = this.tap.writev(nb + BigInt(iov), n);
      if (w >= 0) {
        limit?.charge(Math.max(0, w - hdr));
        return w;
      }
      if (-w === EAGAIN) {
        this.stats.tapFull++;
        this.txState = "tap-full";
        return Code.RETRY;
      }
      // ENOBUFS: the kernel dropped it, as it would for a real NIC; anything else is a tap fault.
      if (-w !== ENOBUFS) {
        this.stats.tapWriteErrors++;
        this.stats.lastError = `writev: ${errnoName(-w)}`;
        this.txState = "tap-error";
      }
      return -1;
    }, budget);
    // (Set in the callback above; read through a typed local so TypeScript does not narrow it.)
    let state = this.txState as TxStop;
    this.txBlocked = state === "tap-full";
    if (r < 0) state = "not-ready";
    else {
      this.moved += r;
      if (state === "empty" && r >= budget) state = "budget";
    }
    this.txState = state;
    return state;
  }

  /** Reads frames from the tap into the guest's buffers. */
  pumpRx(budget = this.budget): RxStop {
    const dev = this.dev;
    const nb = this.nativeBase;
    let stop: RxStop = "budget";
    let moved = 0;
    const limit = this.limits.rx;
    for (let i = 0; i < budget; i++) {
      // A frame's size is known only once read: it must find tokens for one frame, and is
      // charged what it turned out to be.
      if (limit && !limit.allows(1)) { stop = "rate-limited"; break; }
      const n = dev.rxNext();
      if (n === 0) { stop = "no-buffers"; break; }
      if (n < 0) { stop = "not-ready"; break; }
      const r = this.tap.readv(nb + BigInt(dev.rxIovecs()), n);
      if (r < 0) {
        dev.rxAbort();
        if (-r === EAGAIN) { stop = "drained"; break; }
        this.stats.tapReadErrors++;
        this.stats.lastError = `readv: ${errnoName(-r)}`;
        stop = "tap-error";
        break;
      }
      limit?.charge(Math.max(0, r - this.headerBytes));
      dev.rxCommit(r);
      moved++;
    }
    this.dev.flushRx();
    this.rxWaitingForBuffers = stop === "no-buffers";
    this.rxState = stop;
    this.moved += moved;
    return stop;
  }

  /** The guest posted RX buffers (its RX notification): reading the tap can go on. */
  buffersPosted(): void {
    this.rxWaitingForBuffers = false;
  }

  /**
   * The epoll events to watch the tap for now: readable unless the guest has no buffer (the
   * kernel queues, then drops, as for a real NIC; no spinning), writable while a write is refused.
   */
  tapEvents(): number {
    return (this.rxWaitingForBuffers || this.rxState === "rate-limited" ? 0 : EPOLLIN) | (this.txBlocked ? EPOLLOUT : 0);
  }

  /** The last TX pump stopped at the TX rate limit. */
  get txLimited(): boolean { return this.txState === "rate-limited"; }
  /** The last RX pump stopped at the RX rate limit. */
  get rxLimited(): boolean { return this.rxState === "rate-limited"; }

  /**
   * Milliseconds until a direction the rate limits stopped may go on, or null if none is
   * waiting for tokens. A loop sleeps that long (a timer, never a busy loop), then pumps it.
   */
  get limitWaitMs(): number | null {
    const waits: number[] = [];
    if (this.txLimited && this.limits.tx) waits.push(this.limits.tx.waitMs(this.txHeldBytes));
    if (this.rxLimited && this.limits.rx) waits.push(this.limits.rx.waitMs(1));
    return waits.length ? Math.max(1, Math.min(...waits)) : null;
  }

  /**
   * Whether the last pumps stopped with work left (a budget ran out). The device keeps the
   * guest's notifications off meanwhile (virtio 1.2, 2.7.7/2.7.10: a driver that honours
   * suppression will not kick again), so a loop must pump again before it sleeps.
   */
  get workPending(): boolean { return this.txPending || this.rxPending; }
  /** The last TX pump stopped at its budget with frames left on the ring. */
  get txPending(): boolean { return this.txState === "budget"; }
  /** The last RX pump stopped at its budget with the tap possibly still readable. */
  get rxPending(): boolean { return this.rxState === "budget"; }

  /** Pumps both directions until neither makes progress; for single-threaded hosts. */
  pump(): { tx: TxStop; rx: RxStop } {
    let tx: TxStop;
    let rx: RxStop;
    do {
      tx = this.pumpTx();
      rx = this.pumpRx();
    } while (tx === "budget" || rx === "budget");
    return { tx, rx };
  }

  /** The RX side's packet count, for tests and stats. */
  get rxPackets(): number { return this.dev.metrics(QueueIndex.RX).packets; }
}
