/**
 * Loading the Wasm core and the typed view of its exports.
 *
 * Plain `WebAssembly.instantiate` is used rather than `@assemblyscript/loader`: nothing but
 * numbers crosses the boundary (no strings, arrays or managed objects), the core has no
 * runtime to drive, and the loader would add a dependency that does nothing here.
 */
import { readCoreModule } from "./core-source.js";

/** The core's exports, as the host calls them. `st` is a state block address. */
export interface CoreExports {
  layoutVersion(): number;
  stateSize(): number;
  init(st: number): void;
  isInitialised(st: number): number;
  setNativeBase(st: number, base: bigint): void;
  memAddRegion(st: number, gpa: bigint, size: bigint, wasm: bigint): number;
  memRemoveRegion(st: number, gpa: bigint): number;
  memClearRegions(st: number): void;
  setMac(st: number, mac: bigint): void;
  setOption(st: number, option: number, value: number): number;
  getOption(st: number, option: number): number;
  featureDependenciesMet(f: bigint): number;
  featureWithoutUnmet(f: bigint): bigint;
  setOfferedFeatures(st: number, f: bigint): number;
  offeredFeatures(st: number): bigint;
  setDriverFeatures(st: number, f: bigint): number;
  driverFeatures(st: number): bigint;
  negotiatedFeatures(st: number): bigint;
  setStatus(st: number, v: number): number;
  status(st: number): number;
  hdrLen(st: number): number;
  takeEvents(st: number): number;
  configRead(st: number, off: number, size: number): number;
  queueSetSize(st: number, q: number, n: number): number;
  queueSetAddrs(st: number, q: number, desc: bigint, avail: bigint, used: bigint): number;
  queueEnable(st: number, q: number, on: number): number;
  queueSetNextAvail(st: number, q: number, idx: number): number;
  queueNextAvail(st: number, q: number): number;
  queueBroken(st: number, q: number): number;
  txNext(st: number): number;
  txIov(st: number): number;
  txDone(st: number, sent: number): number;
  txFlush(st: number): number;
  rxNext(st: number): number;
  rxNextFor(st: number, bytes: number): number;
  rxStagingAddr(st: number): number;
  rxStagingSize(): number;
  rxSegmentStaged(st: number, frameLen: number): number;
  rxIov(st: number): number;
  rxCapacity(st: number): number;
  rxCommit(st: number, nread: number): number;
  rxAbort(st: number): number;
  rxFlush(st: number): number;
  metricsPtr(st: number, q: number): number;
  queueSetPolling(st: number, q: number, on: number): number;
  ctrlProcess(st: number, budget: number): number;
  ctrlFlush(st: number): number;
  announce(st: number): number;
  rxMode(st: number): number;
  mac(st: number): bigint;
  queuePairs(st: number): number;
  guestOffloads(st: number): bigint;
  queueSize(st: number, q: number): number;
  queueEnabled(st: number, q: number): number;
  queueAddress(st: number, q: number, which: number): bigint;
  setDirtyLog(st: number, at: number, bytes: number): number;
  savedSize(): number;
  saveExtras(st: number): number;
  restoreExtras(st: number): number;
  forwardSet(st: number, i: number, mac: bigint, peer: number): number;
  forwardSetCount(st: number, n: number): number;
  forwardTouched(st: number): number;
  txForward(st: number, budget: number): number;
  parseGuestFrame(st: number, listGpa: bigint, n: number, frameLen: number): number;
  checksumGuestList(st: number, listGpa: bigint, n: number, off: number, len: number): number;
  checksumGuest(st: number, gpa: bigint, len: number, simd: number, rounds: number): number;
}

const modules = new Map<boolean, WebAssembly.Module>();

/**
 * The compiled core module matching the memory kind: compiled once per process from the
 * built file (Node, Bun, Deno), or the one `useCoreModule()` was given (a browser, after
 * fetching it: see host/browser.ts).
 */
export function coreModule(shared: boolean): WebAssembly.Module {
  let m = modules.get(shared);
  if (!m) {
    m = new WebAssembly.Module(readCoreModule(shared));
    modules.set(shared, m);
  }
  return m;
}

/** Uses `module` as the core for ordinary (`shared` false) or shared memories from now on. */
export function useCoreModule(shared: boolean, module: WebAssembly.Module): void {
  modules.set(shared, module);
}

/** True if the memory is shared (its buffer is a SharedArrayBuffer). */
export function isSharedMemory(memory: WebAssembly.Memory): boolean {
  // By its tag, not `instanceof`: a browser page that is not cross-origin isolated hides the
  // SharedArrayBuffer global, yet WebAssembly.Memory({ shared: true }) still makes one.
  return Object.prototype.toString.call(memory.buffer) === "[object SharedArrayBuffer]";
}

/**
 * Instantiates the core on `memory`. Instantiation writes nothing to the memory: the core has
 * no data segments and no start function, so any number of instances may share one memory.
 */
export function instantiateCore(memory: WebAssembly.Memory): CoreExports {
  const instance = new WebAssembly.Instance(coreModule(isSharedMemory(memory)), { env: { memory } });
  return instance.exports as unknown as CoreExports;
}

let stateBytes = 0;
/** Bytes one device's state block takes (asked once of a throwaway instance: instantiating writes nothing). */
export function coreStateSize(): number {
  stateBytes ||= instantiateCore(new WebAssembly.Memory({ initial: 0 })).stateSize();
  return stateBytes;
}
