/**
 * Targets graft must not change, or may change only because it checked: each condition is created for
 * real by the target (target.c modes). Refusals come before anything is written — the target's text
 * and its mappings are what they were, nothing is journaled, and it goes on answering correctly.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { changeCallSites } from "../../../src/live/change-call-sites.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { targetNotes } from "../../../src/live/target-safety.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  expectSwitched,
  isAlive,
  type LiveTarget,
  lastTick,
  maps,
  output,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const OLD = { value: 14, grows: "old", frozen: ["new"] };
const NEW = { value: 21, grows: "new", frozen: ["old"] };

const { dir, started } = useScenario("graft-target-refusals-");
let exe: string;
let patch: string;

beforeAll(() => {
  exe = buildFixture({
    compiler: "gcc",
    sources: [join(here, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  patch = join(dir, "fix.graft");
  buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
});

/** Start the target in `mode`; undefined when the kernel lacks what the mode needs (it says so). */
async function start(mode: string): Promise<LiveTarget | undefined> {
  const target = startTarget(exe, ["2", mode], dir, mode, { nice: 19 });
  started.push(target);
  for (;;) {
    if (/unsupported/.test(output(target))) return undefined;
    if (/ready/.test(output(target))) break;
    expect(isAlive(target.pid), output(target)).toBe(true);
    await new Promise((r) => setTimeout(r, 10));
  }
  await waitForTick(target, (t) => t.value === 14 && t.fields.old! > 0, { what: "old answers" });
  return target;
}

function errorOf(f: () => unknown): GraftError {
  try {
    f();
  } catch (e) {
    if (e instanceof GraftError) return e;
    throw e;
  }
  throw new Error("expected a refusal, but graft went ahead");
}

/** `refuse` must fail with `code` and leave `target` exactly as it was, still answering correctly. */
async function expectRefused(target: LiveTarget, code: string, refuse: () => unknown): Promise<GraftError> {
  const text = textSnapshot(target.pid, exe);
  const mappings = maps(target.pid).map((m) => `${m.start}-${m.end} ${m.perms}`);
  const error = errorOf(refuse);
  expect(error.code, error.message).toBe(code);
  expect(textDiff(text, textSnapshot(target.pid, exe))).toEqual([]);
  expect(maps(target.pid).map((m) => `${m.start}-${m.end} ${m.perms}`)).toEqual(mappings);
  expect(patchStatus(target.pid).patches).toEqual([]);
  await expectSwitched(target, OLD, lastTick(target));
  return error;
}

/** Apply, see the new answers, revert, see the old ones and the original text. */
async function expectPatchable(target: LiveTarget): Promise<void> {
  const text = textSnapshot(target.pid, exe);
  applyPatch(target.pid, patch);
  await expectSwitched(target, NEW, lastTick(target));
  expect(revertPatch(target.pid).reverted.map((r) => r.unmapped)).toEqual([true]);
  await expectSwitched(target, OLD, lastTick(target));
  expect(textDiff(text, textSnapshot(target.pid, exe))).toEqual([]);
}

function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8")
      .split(" ")
      .filter((c) => c !== "")
      .map(Number),
  );
}

describe("seccomp filters: graft runs the process's own filter on the exact calls it would inject", () => {
  it("a filter that kills on mmap(PROT_EXEC): refused (SECCOMP_BLOCKS_SYSCALL), dry run too", async () => {
    const target = (await start("seccomp-kill"))!;
    const e = await expectRefused(target, "SECCOMP_BLOCKS_SYSCALL", () => applyPatch(target.pid, patch));
    expect(e.message).toMatch(/mmap\(.*\) would get KILL_PROCESS/);
    await expectRefused(target, "SECCOMP_BLOCKS_SYSCALL", () =>
      applyPatch(target.pid, patch, { dryRun: true }),
    );
    expect(isAlive(target.pid)).toBe(true);
  });

  it("a filter that fails mmap(PROT_EXEC) with EPERM: refused, naming the errno", async () => {
    const target = (await start("seccomp-errno"))!;
    const e = await expectRefused(target, "SECCOMP_BLOCKS_SYSCALL", () => applyPatch(target.pid, patch));
    expect(e.message).toMatch(/would get ERRNO\(1\)/);
  });

  it("systemd's MemoryDenyWriteExecute filter blocks nothing graft does: patched and reverted", async () => {
    const target = (await start("seccomp-wx"))!;
    expect(readFileSync(`/proc/${target.pid}/status`, "utf8")).toMatch(/^Seccomp:\s+2$/m);
    await expectPatchable(target);
  });
});

describe("a filter installed after the apply", () => {
  it("that kills on munmap: revert restores every byte and keeps the code mapped (retired), the process lives", async () => {
    const target = (await start("munmap-later"))!;
    const text = textSnapshot(target.pid, exe);
    applyPatch(target.pid, patch);
    await expectSwitched(target, NEW, lastTick(target));
    process.kill(target.pid, "SIGUSR1");
    while (!/filtered/.test(output(target))) await new Promise((r) => setTimeout(r, 10));
    expect(revertPatch(target.pid).reverted.map((r) => [r.restored, r.unmapped])).toEqual([[2, false]]);
    await expectSwitched(target, OLD, lastTick(target));
    expect(textDiff(text, textSnapshot(target.pid, exe))).toEqual([]);
    const { patches, retired } = patchStatus(target.pid);
    expect(patches).toEqual([]);
    expect(retired.map((r) => r.reason)).toEqual([
      expect.stringMatching(/munmap\(.*\) would get KILL_PROCESS/),
    ]);
    expect(isAlive(target.pid)).toBe(true);
  });
});

describe("W^X policies", () => {
  it("PR_SET_MDWE (refuse exec gain): graft maps R-X from the start, so it patches and reverts", async (ctx) => {
    const target = await start("mdwe");
    if (target === undefined) return ctx.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)");
    await expectPatchable(target);
  });
});

describe("processes sharing memory", () => {
  for (const mode of ["vfork", "clonevm"]) {
    it(`${mode}: parent and child are both refused (MEMORY_SHARED), naming each other`, async () => {
      const target = (await start(mode))!;
      let child: number | undefined;
      while (child === undefined) {
        child = childrenOf(target.pid)[0];
        await new Promise((r) => setTimeout(r, 10));
      }
      const e = await expectRefused(target, "MEMORY_SHARED", () => applyPatch(target.pid, patch));
      expect(e.message).toContain(`process ${child} `);
      if (mode === "vfork") expect(e.message).toContain("vfork child");
      else expect(e.message).toContain("CLONE_VM");
      await expectRefused(target, "MEMORY_SHARED", () => applyPatch(target.pid, patch, { dryRun: true }));
      await expectRefused(target, "MEMORY_SHARED", () =>
        changeCallSites(target.pid, { to: "compute", from: "worker", action: { kind: "nop" } }),
      );
      await expectRefused(target, "MEMORY_SHARED", () => revertPatch(target.pid));
      const fromChild = errorOf(() => applyPatch(child!, patch));
      expect([fromChild.code, fromChild.message]).toEqual([
        "MEMORY_SHARED",
        expect.stringContaining(`process ${target.pid} `),
      ]);
      expect(isAlive(child)).toBe(true);
    });
  }
});

describe("CET shadow stacks", () => {
  it("a shadow-stack process is patched, with a note (graft writes only jumps)", async (ctx) => {
    // The kernel prints x86_Thread_features only with CONFIG_X86_USER_SHADOW_STACK.
    if (!/^x86_Thread_features:/m.test(readFileSync("/proc/self/status", "utf8")))
      return ctx.skip("this kernel has no user-space shadow stacks (CONFIG_X86_USER_SHADOW_STACK)");
    const target = (await start("plain"))!;
    const status = readFileSync(`/proc/${target.pid}/status`, "utf8");
    const shstk = /^x86_Thread_features:.*\bshstk\b/m.test(status);
    expect(targetNotes(target.pid).length).toBe(shstk ? 1 : 0);
    await expectPatchable(target);
  });
});
