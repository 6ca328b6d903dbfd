/**
 * graft's view of a seccomp filter, checked against the kernel's: a probe process installs real
 * filters (seccomp-probe.c: kill/errno on exec mmaps, systemd's W^X filter, two that between them use
 * every instruction class a seccomp filter may, and two stacked), graft reads them out of the live process
 * (PTRACE_SECCOMP_GET_FILTER) and predicts the outcome of a call with its interpreter; then the probe
 * makes that call and the kernel's answer — success, an errno, or death — must be the prediction.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUDIT_ARCH_X86_64,
  describeAction,
  runSeccompFilter,
  strictestAction,
} from "../../../src/process/seccomp-bpf.js";
import { readSeccompFilters } from "../../../src/process/seccomp-filter.js";
import { buildFixture } from "../../support/fixtures.js";
import { isAlive, killTarget, type LiveTarget, output, startTarget } from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const SYS = { mmap: 9, mprotect: 10 } as const;
const FILTERS = ["exec-kill", "exec-errno", "wx", "alu", "misc", "stack"] as const;
const CALLS: readonly (readonly ["mmap" | "mprotect", number])[] = [
  ["mmap", 1],
  ["mmap", 5],
  ["mmap", 7],
  ["mprotect", 1],
  ["mprotect", 3],
  ["mprotect", 5],
];

let dir: string;
let probe: string;
const started: LiveTarget[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-seccomp-"));
  probe = buildFixture({
    compiler: "gcc",
    sources: [join(here, "seccomp-probe.c")],
    flags: ["-O2"],
    output: "pie",
  });
});

afterAll(() => {
  for (const t of started) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 5));
}

/** What the kernel did with the call: `ok`, `ERRNO(n)` or `KILL_PROCESS`. */
function kernelOutcome(text: string): string {
  const m = /result (ok|errno (\d+))/.exec(text);
  if (m === null) return "KILL_PROCESS";
  return m[1] === "ok" ? "ok" : `ERRNO(${m[2]})`;
}

describe("graft's reading of a live process's seccomp filters agrees with the kernel", () => {
  for (const filter of FILTERS) {
    it(`${filter}: every call's predicted outcome is what the kernel does`, async () => {
      const rows: string[][] = [];
      for (const [call, prot] of CALLS) {
        const t = startTarget(probe, [filter, call, String(prot)], dir, `${filter}-${call}-${prot}`);
        started.push(t);
        await until(() => /ready/.test(output(t)) || !isAlive(t.pid));
        const programs = readSeccompFilters(t.pid, [t.pid]).get(t.pid)!;
        expect(programs.length).toBe(filter === "stack" ? 2 : 1);
        const data = {
          nr: SYS[call],
          arch: AUDIT_ARCH_X86_64,
          instructionPointer: 0n,
          args: [0n, 4096n, BigInt(prot), 0x22n, (1n << 64n) - 1n, 0n],
        };
        const action = strictestAction(programs.map((p) => runSeccompFilter(p, data).value));
        const predicted = describeAction(action) === "ALLOW" ? "ok" : describeAction(action);
        process.kill(t.pid, "SIGUSR1");
        await until(() => /result/.test(output(t)) || !isAlive(t.pid));
        rows.push([`${call}(prot ${prot})`, predicted, kernelOutcome(output(t))]);
      }
      expect(rows.map(([c, , k]) => [c, k])).toEqual(rows.map(([c, p]) => [c, p]));
      // Not every call is allowed: each filter shows at least one refusal.
      expect(rows.some(([, , k]) => k !== "ok")).toBe(true);
    });
  }
});
