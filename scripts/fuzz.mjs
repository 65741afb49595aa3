// `npm run fuzz -- --cases N [--seed S]`: the fuzzers in test/fuzz/ at length (the test suite runs
// them short, with a fixed seed). Prints cases/s and what the cases reached.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

let values;
try {
  ({ values } = parseArgs({ options: { cases: { type: "string", default: "100000" }, seed: { type: "string", default: String(Date.now() % 1_000_000) } } }));
} catch (e) {
  console.error(`npm run fuzz -- [--cases N] [--seed S]: ${e.message}`);
  process.exit(2);
}
if (!/^\d+$/.test(values.cases) || !/^\d+$/.test(values.seed)) {
  console.error("npm run fuzz: --cases and --seed take whole numbers");
  process.exit(2);
}
console.log(`fuzzing: ${values.cases} cases per fuzzer, seed ${values.seed} (replay with --seed ${values.seed})`);
const r = spawnSync("npx", ["vitest", "run", "test/fuzz"], {
  stdio: "inherit",
  env: { ...process.env, VNW_FUZZ_CASES: values.cases, VNW_FUZZ_SEED: values.seed },
});
process.exit(r.status ?? 1);
