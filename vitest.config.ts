import { defineConfig } from "vitest/config";

// Forks, not threads: ptrace binds a tracee to the OS thread that attached it, and a
// forked worker gives every test file one main thread of its own for all its ptrace calls.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    globalSetup: ["test/support/global-tmpdir.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
