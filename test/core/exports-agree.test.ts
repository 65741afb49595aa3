/**
 * `CoreExports` (host/wasm/core.ts) is written by hand; the built core is the truth. Every
 * member must be an export of the module with the matching signature (number ↔ i32,
 * bigint ↔ i64, void ↔ no result), and every function the module exports must be declared.
 * The interface is read with the TypeScript compiler API, the module with a section reader.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { corePath } from "../../host/wasm/core-source.js";
import { exportedFunctions, type WasmSignature } from "../helpers/wasm-sections.js";

const WASM_TYPE: Record<string, string> = { number: "i32", bigint: "i64" };

/** The interface's members as signatures in Wasm value types. */
function declared(): Map<string, WasmSignature> {
  const file = fileURLToPath(new URL("../../host/wasm/core.ts", import.meta.url));
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const out = new Map<string, WasmSignature>();
  const visit = (node: ts.Node): void => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === "CoreExports") {
      for (const m of node.members) {
        if (!ts.isMethodSignature(m)) throw new Error(`CoreExports member ${m.getText()} is not a method`);
        const type = (t: ts.TypeNode | undefined) => WASM_TYPE[t?.getText() ?? ""] ?? `?${t?.getText()}`;
        const result = m.type?.getText() === "void" ? [] : [type(m.type)];
        out.set(m.name.getText(), { params: m.parameters.map((p) => type(p.type)), results: result });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe("CoreExports agrees with the built core", () => {
  const wanted = declared();
  for (const shared of [false, true]) {
    it(`${shared ? "core.shared.wasm" : "core.wasm"}: same functions, same signatures`, () => {
      const actual = exportedFunctions(readFileSync(corePath(shared)));
      expect(wanted.size).toBeGreaterThan(40);
      expect([...wanted.keys()].sort()).toEqual([...actual.keys()].sort());
      for (const [name, sig] of wanted) expect(sig, name).toEqual(actual.get(name));
    });
  }
});
