/** The per-queue counters the core keeps in its state block, by name. */
import { Metric, MetricCount } from "../../assembly/abi.js";

/** Counter names, in camelCase, with their slot. */
export const METRIC_NAMES = {
  packets: Metric.PACKETS,
  bytes: Metric.BYTES,
  notifications: Metric.NOTIFICATIONS,
  interrupts: Metric.INTERRUPTS,
  interruptsSuppressed: Metric.INTERRUPTS_SUPPRESSED,
  csumOffloaded: Metric.CSUM_OFFLOADED,
  csumSoftware: Metric.CSUM_SOFTWARE,
  csumUnnegotiated: Metric.CSUM_UNNEGOTIATED,
  csumNone: Metric.CSUM_NONE,
  csumDataValid: Metric.CSUM_DATA_VALID,
  csumSoftwareL3: Metric.CSUM_SOFTWARE_L3,
  vlanReinserted: Metric.VLAN_REINSERTED,
  dropHdrShort: Metric.DROP_HDR_SHORT,
  dropRunt: Metric.DROP_RUNT,
  dropOversize: Metric.DROP_OVERSIZE,
  dropBadCsumOffsets: Metric.DROP_BAD_CSUM_OFFSETS,
  dropCsumPolicy: Metric.DROP_CSUM_POLICY,
  dropGsoUnsupported: Metric.DROP_GSO_UNSUPPORTED,
  dropTooManySegments: Metric.DROP_TOO_MANY_SEGMENTS,
  dropLockedMac: Metric.DROP_LOCKED_MAC,
  dropBackend: Metric.DROP_BACKEND,
  dropNoBuffer: Metric.DROP_NO_BUFFER,
  dropBufferTooSmall: Metric.DROP_BUFFER_TOO_SMALL,
  dropBadBackendHdr: Metric.DROP_BAD_BACKEND_HDR,
  dropNotReady: Metric.DROP_NOT_READY,
  dropBadGso: Metric.DROP_BAD_GSO,
  gsoOffloaded: Metric.GSO_OFFLOADED,
  buffersMerged: Metric.BUFFERS_MERGED,
  gsoSegmented: Metric.GSO_SEGMENTED,
  gsoSegments: Metric.GSO_SEGMENTS,
  resetHeadIndex: Metric.RESET_HEAD_INDEX,
  resetDescIndex: Metric.RESET_DESC_INDEX,
  resetDescAddr: Metric.RESET_DESC_ADDR,
  resetChainLoop: Metric.RESET_CHAIN_LOOP,
  resetAvailJump: Metric.RESET_AVAIL_JUMP,
  resetNestedIndirect: Metric.RESET_NESTED_INDIRECT,
  resetIndirectLen: Metric.RESET_INDIRECT_LEN,
  resetIndirectUnnegotiated: Metric.RESET_INDIRECT_UNNEGOTIATED,
  resetZeroLength: Metric.RESET_ZERO_LENGTH,
  resetDirection: Metric.RESET_DIRECTION,
  resetRingAddr: Metric.RESET_RING_ADDR,
  resetChainTooBig: Metric.RESET_CHAIN_TOO_BIG,
  ctrlOk: Metric.CTRL_OK,
  ctrlErr: Metric.CTRL_ERR,
  dropFiltered: Metric.DROP_FILTERED,
} as const;

export type MetricName = keyof typeof METRIC_NAMES;
export type QueueMetrics = Record<MetricName, number>;

/** Reads one queue's counters from the block at `ptr`. */
export function readMetrics(memory: WebAssembly.Memory, ptr: number): QueueMetrics {
  const view = new DataView(memory.buffer, ptr, 8 * MetricCount.N);
  const out = {} as QueueMetrics;
  for (const [name, slot] of Object.entries(METRIC_NAMES) as [MetricName, Metric][]) {
    out[name] = Number(view.getBigUint64(8 * slot, true));
  }
  return out;
}

/** Sum of the counters whose names start with `prefix` (e.g. "drop", "reset"). */
export function sumMetrics(m: QueueMetrics, prefix: string): number {
  let total = 0;
  for (const [name, v] of Object.entries(m)) if (name.startsWith(prefix)) total += v;
  return total;
}

/** Counters of several queues (a device's queue pairs) added up, name by name. */
export function addMetrics(list: readonly QueueMetrics[]): QueueMetrics {
  const out = {} as QueueMetrics;
  for (const name of Object.keys(METRIC_NAMES) as MetricName[]) out[name] = list.reduce((a, m) => a + m[name], 0);
  return out;
}
