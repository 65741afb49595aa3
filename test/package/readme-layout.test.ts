/**
 * The README's source layout table against the tree: every path it names exists, and every
 * source file under assembly/ and host/ (and every top-level folder) falls under a row.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The paths in the first column of the layout table (bare names resolve against the cell's first path's folder). */
function layoutPaths(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("Source layout:");
  expect(start, "README has a 'Source layout:' table").toBeGreaterThan(0);
  const lines = readme.slice(start).split("\n").slice(2);
  const rows = lines.slice(0, lines.findIndex((l) => !l.startsWith("|"))).filter((l) => l.startsWith("| `"));
  const out: string[] = [];
  for (const row of rows) {
    const cell = row.split("|")[1];
    const names = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    const base = names[0].endsWith("/") ? names[0] : posix.dirname(names[0]) + "/";
    // A name with a folder in it is a path from the root; a bare name is in the first path's folder.
    names.forEach((n, i) => out.push(i === 0 || n.replace(/\/$/, "").includes("/") ? n : base + n));
  }
  return out;
}

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true }).map(String)
    .filter((f) => statSync(join(ROOT, dir, f)).isFile()).map((f) => posix.join(dir, f.split("\\").join("/")));
}

describe("README source layout", () => {
  const paths = layoutPaths();

  it("names only paths that exist", () => {
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  it("covers every source file under assembly/ and host/, and every top-level folder", () => {
    const covered = (f: string) => paths.some((p) => p === f || (p.endsWith("/") && f.startsWith(p)));
    const sources = [...files("assembly"), ...files("host")].filter((f) => f.endsWith(".ts") && !f.endsWith("tsconfig.json"));
    expect(sources.filter((f) => !covered(f))).toEqual([]);
    for (const top of ["guest/", "scripts/", "bench/", "test/"]) expect(covered(top + "x") || paths.includes(top), top).toBe(true);
  });
});
