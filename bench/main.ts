/** Benchmarks: `npm run bench`. Filled in by bench/*.ts suites. */
console.log("virtio-net-wasm benchmarks");
