/**
 * A mutex in shared Wasm memory (one i32 word, Atomics.wait/notify), serialising the control
 * side (transport: status, queue setup, memory regions) on one thread against the data path
 * (TX/RX pumps) in a Worker, which share one state block. The data path takes it per batch,
 * not per frame, so the control side waits at most one batch (~256 frames).
 */
import { isSharedMemory } from "../wasm/core.js";

export class DeviceLock {
  private readonly word: Int32Array;

  /** `address`: 4-byte aligned Wasm address of a word that nothing else uses, initially 0. */
  constructor(memory: WebAssembly.Memory, readonly address: number) {
    if (!isSharedMemory(memory)) throw new Error("DeviceLock needs a shared memory");
    if (address % 4 !== 0) throw new Error("DeviceLock address must be 4-byte aligned");
    this.word = new Int32Array(memory.buffer, address, 1);
  }

  acquire(): void {
    // 0 free, 1 held, 2 held with waiters.
    if (Atomics.compareExchange(this.word, 0, 0, 1) === 0) return;
    for (;;) {
      if (Atomics.exchange(this.word, 0, 2) === 0) return;
      Atomics.wait(this.word, 0, 2, 50);
    }
  }

  release(): void {
    if (Atomics.exchange(this.word, 0, 0) === 2) Atomics.notify(this.word, 0, 1);
  }

  with<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}
