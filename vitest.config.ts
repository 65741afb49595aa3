import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests that need root, tap or QEMU set their own longer timeouts.
    testTimeout: 30_000,
  },
});
