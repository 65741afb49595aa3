/**
 * A minimal reader of a Wasm binary's section table (WebAssembly core spec 5.5), enough to
 * check the core's memory contract from the bytes themselves: imports, data segments, start,
 * globals. Independent of the toolchain that produced the module.
 */
export interface WasmSummary {
  imports: { module: string; name: string; kind: number }[];
  /** Data segments: mode 0/2 are active, 1 passive. */
  dataSegments: { mode: number }[];
  hasStart: boolean;
  /** Number of globals declared mutable. */
  mutableGlobals: number;
}

class Reader {
  constructor(readonly b: Uint8Array, public at = 0) {}
  byte(): number { return this.b[this.at++]; }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const x = this.byte();
      result |= (x & 0x7f) << shift;
      if ((x & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  }
  name(): string {
    const n = this.u32();
    const s = new TextDecoder().decode(this.b.subarray(this.at, this.at + n));
    this.at += n;
    return s;
  }
  limits(): void {
    const flag = this.byte();
    this.u32();
    if (flag & 1) this.u32();
  }
  /** One import entry: module, name, kind, and the type index of a function import. */
  importEntry(): { module: string; name: string; kind: number; typeIndex?: number } {
    const module = this.name();
    const name = this.name();
    const kind = this.byte();
    let typeIndex: number | undefined;
    if (kind === 0) typeIndex = this.u32();
    else if (kind === 1) { this.byte(); this.limits(); }
    else if (kind === 2) this.limits();
    else if (kind === 3) { this.byte(); this.byte(); }
    return { module, name, kind, typeIndex };
  }
  /** Skips a constant expression up to and including `end` (0x0b). */
  skipInitExpr(): void {
    for (;;) {
      const op = this.byte();
      if (op === 0x0b) return;
      if (op === 0x41 || op === 0x23) this.u32(); // i32.const (signed LEB, same length) / global.get
      else if (op === 0x42) { while (this.byte() & 0x80) { /* i64 LEB */ } }
      else if (op === 0x44) this.at += 8;
      else if (op === 0x43) this.at += 4;
      else throw new Error(`unsupported init expr opcode 0x${op.toString(16)}`);
    }
  }
}

/** Calls `visit(id, reader)` for each section, the reader at the section's contents. */
function eachSection(bytes: Uint8Array, visit: (id: number, r: Reader) => void): void {
  const r = new Reader(bytes, 8);
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    visit(id, r);
    r.at = end;
  }
}

export function summarizeWasm(bytes: Uint8Array): WasmSummary {
  const out: WasmSummary = { imports: [], dataSegments: [], hasStart: false, mutableGlobals: 0 };
  eachSection(bytes, (id, r) => {
    if (id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const { module, name, kind } = r.importEntry();
        out.imports.push({ module, name, kind });
      }
    } else if (id === 6) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        r.byte();
        if (r.byte() === 1) out.mutableGlobals++;
        r.skipInitExpr();
      }
    } else if (id === 8) {
      out.hasStart = true;
    } else if (id === 11) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const mode = r.u32();
        if (mode === 2) r.u32();
        if (mode !== 1) r.skipInitExpr();
        const len = r.u32();
        r.at += len;
        out.dataSegments.push({ mode });
      }
    }
  });
  return out;
}

/** A function's signature as value types: "i32", "i64", "f32", "f64", "v128". */
export interface WasmSignature { params: string[]; results: string[] }

const VALUE_TYPES: Record<number, string> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128" };

/** Every exported function's signature, by export name (type, import, function and export sections). */
export function exportedFunctions(bytes: Uint8Array): Map<string, WasmSignature> {
  const types: WasmSignature[] = [];
  const funcTypes: number[] = [];
  const out = new Map<string, WasmSignature>();
  eachSection(bytes, (id, r) => {
    const valueTypes = () => Array.from({ length: r.u32() }, () => VALUE_TYPES[r.byte()] ?? "?");
    if (id === 1) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        if (r.byte() !== 0x60) throw new Error("unsupported type form");
        const params = valueTypes();
        types.push({ params, results: valueTypes() });
      }
    } else if (id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const { typeIndex } = r.importEntry();
        if (typeIndex !== undefined) funcTypes.push(typeIndex);
      }
    } else if (id === 3) {
      const n = r.u32();
      for (let i = 0; i < n; i++) funcTypes.push(r.u32());
    } else if (id === 7) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const name = r.name();
        const kind = r.byte();
        const index = r.u32();
        if (kind === 0) out.set(name, types[funcTypes[index]]);
      }
    }
  });
  return out;
}
