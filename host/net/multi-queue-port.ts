/**
 * A multi-queue virtio-net device (VIRTIO_NET_F_MQ) as one switch port: one DevicePort per
 * queue pair, each with its own device state, its own backlog and its own kick loop. The
 * switch sees (and learns the guest's MAC on) this port alone; frames for the guest are steered
 * to an active pair by their flow hash, so a flow's frames stay on one queue and in order
 * (virtio 1.2, 5.1.6.5.5), and frames the guest sends enter from whichever pair it used.
 * The core's fast path is not used by a multi-queue port (its table holds one receiver state
 * per MAC; steering needs the hash).
 */
import type { VirtioNetDevice } from "../device/virtio-net.js";
import { DevicePort } from "./device-port.js";
import { flowHash } from "./flow-hash.js";
import type { NetFrame, Switch, SwitchPort } from "./switch.js";

export class MultiQueuePort implements SwitchPort {
  readonly acceptsPartial = true;
  readonly acceptsGso = true;
  /** One port per queue pair, by pair index. */
  readonly pairs: readonly DevicePort[];
  private readonly active: boolean[];
  /** Frames that arrived while no pair was active (dropped, as a NIC without queues running). */
  inactiveDrops = 0;

  constructor(readonly name: string, devs: readonly VirtioNetDevice[], private readonly sw: Switch, backlogMax = 256) {
    if (devs.length === 0) throw new Error(`${name}: a multi-queue port needs at least one queue pair`);
    this.pairs = devs.map((d, i) => new DevicePort(`${name}#${i}`, d, sw, { backlogMax, fastPath: false, owner: this }));
    this.active = devs.map((_, i) => i === 0);
    sw.attach(this);
  }

  /** Whether pair `i` takes frames (its rings run); steering spreads over the active pairs. */
  setActive(i: number, on: boolean): void {
    this.active[i] = on;
    this.activeList = this.active.flatMap((a, k) => (a ? [k] : []));
  }

  /** The active pairs' indices (kept as the set changes: steering reads it per frame). */
  private activeList: readonly number[] = [0];

  /** The active pairs' indices. */
  get activePairs(): number[] {
    return [...this.activeList];
  }

  /** The pair a frame is steered to (the same for every frame of a flow while the active set holds). */
  pairFor(frame: Uint8Array): number {
    const act = this.activeList;
    if (act.length <= 1) return act[0] ?? -1;
    return act[flowHash(frame) % act.length];
  }

  deliver(frame: NetFrame): void {
    const i = this.pairFor(frame.data);
    if (i < 0) {
      this.inactiveDrops++;
      return;
    }
    this.pairs[i].deliver(frame);
  }

  get backlogDrops(): number {
    return this.pairs.reduce((n, p) => n + p.backlogDrops, 0);
  }

  /** Always 0: a multi-queue port is off the core's fast path (kept so counters read alike). */
  get fastForwarded(): number {
    return this.pairs.reduce((n, p) => n + p.fastForwarded, 0);
  }

  /** Leaves the switch and closes every pair's port. */
  close(): void {
    for (const p of this.pairs) p.close();
    this.sw.detach(this);
  }
}
