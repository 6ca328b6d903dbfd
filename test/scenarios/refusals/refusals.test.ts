/**
 * Refusals: every way graft must say no, each asserting the error code, that the target's text is
 * byte-for-byte what it was (the whole executable mapping, read through /proc/PID/mem), that graft
 * recorded nothing, and that the target keeps running with only old answers.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { processKey } from "../../../src/live/state-dir.js";
import { buildFixture, hasCommand } from "../../support/fixtures.js";
import {
  deadPid,
  isAlive,
  killTarget,
  type LiveTarget,
  lastTick,
  readMem,
  runGraft,
  runtimeAddress,
  startTarget,
  type TextSnapshot,
  textDiff,
  textSnapshot,
  waitForTick,
  writeMem,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const TARGET_C = join(here, "target.c");
const SLED = ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"];

let dir: string;
let stateDir: string;
/** The running target (gcc -O2 PIE, sled 16,14) and a good patch for it. */
let exe: string;
let target: LiveTarget;
let goodPatch: string;
const others: LiveTarget[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "graft-refusals-"));
  stateDir = join(dir, "state");
  process.env.GRAFT_STATE_DIR = stateDir;
  exe = buildFixture({ compiler: "gcc", sources: [TARGET_C], flags: SLED, output: "pie" });
  goodPatch = join(dir, "good.graft");
  buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: goodPatch });
  // Niced: the CLI cases start node, which 8 spinning workers on 2 cores would slow threefold.
  target = startTarget(exe, ["8"], dir, "refusals", { nice: 19 });
  await waitForTick(target, (t) => t.value === 14, { what: "old answers" });
});

afterAll(() => {
  killTarget(target);
  for (const t of others) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

/** The error `f` throws, which must be a GraftError. */
function errorOf(f: () => unknown): GraftError {
  try {
    f();
  } catch (e) {
    if (e instanceof GraftError) return e;
    throw e;
  }
  throw new Error("expected a GraftError, but nothing was thrown");
}

/**
 * Run `refuse` (which must be refused with `code`) against the running target, and check that the
 * target's text did not change by one byte, graft recorded nothing, and the target goes on with
 * only old answers.
 */
async function expectRefused(code: string, refuse: () => unknown): Promise<GraftError> {
  const before: TextSnapshot = textSnapshot(target.pid, exe);
  const tick = lastTick(target);
  const error = errorOf(refuse);
  expect(error.code, error.message).toBe(code);
  expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
  expectNothingRecorded();
  await expectRunningOld(tick);
  return error;
}

function expectNothingRecorded(): void {
  const status = patchStatus(target.pid);
  expect([status.patches, status.retired]).toEqual([[], []]);
}

async function expectRunningOld(after: ReturnType<typeof lastTick>): Promise<void> {
  const next = await waitForTick(target, (t) => t.tick >= (after?.tick ?? 0) + 2, {
    after,
    what: "two more ticks",
  });
  expect([next.value, next.fields.bad], next.line).toEqual([14, 0]);
  expect(isAlive(target.pid)).toBe(true);
}

describe("graft refuses, and leaves the target exactly as it was", () => {
  it("a patch built for another binary: BUILD_ID_MISMATCH", async () => {
    const other = buildFixture({
      compiler: "clang",
      sources: [TARGET_C],
      flags: ["-O2", "-fpatchable-function-entry=16,14"],
      output: "pie",
    });
    const patch = join(dir, "other-binary.graft");
    const built = buildPatchFile({ fix: join(here, "fix.c"), target: other, output: patch });
    const ownId = execFileSync("readelf", ["-n", exe], { encoding: "utf8" }).match(
      /Build ID: ([0-9a-f]+)/,
    )?.[1];
    expect(built.manifest.target.buildId).not.toBe(ownId);
    await expectRefused("BUILD_ID_MISMATCH", () => applyPatch(target.pid, patch));
    await expectRefused("BUILD_ID_MISMATCH", () => applyPatch(target.pid, patch, { dryRun: true }));
  });

  it("bytes at a site changed by someone else: SITE_BYTES_CHANGED, and graft writes nothing", async () => {
    // The 14 pre-entry bytes of the sled are never executed, so the test can change them safely.
    const entry = runtimeAddress(target.pid, exe, "compute");
    const pad = entry - 14n;
    const original = readMem(target.pid, pad, 14);
    expect(
      [...original].every((b) => b === 0x90) || original.includes(0x0f),
      `not NOPs: ${original.toString("hex")}`,
    ).toBe(true);
    // Other NOPs of the same length: a 2-byte `66 90` where the compiler put `90 90`, or all `90`.
    const different =
      original[0] === 0x90 && original[1] === 0x90
        ? Buffer.from([0x66, 0x90, ...original.subarray(2)])
        : Buffer.alloc(14, 0x90);
    writeMem(target.pid, pad, different);
    try {
      expect(readMem(target.pid, pad, 14).toString("hex")).toBe(different.toString("hex"));
      const error = await expectRefused("SITE_BYTES_CHANGED", () => applyPatch(target.pid, goodPatch));
      expect(error.message).toContain(different.subarray(0, 5).toString("hex"));
      expect(readMem(target.pid, pad, 14).toString("hex")).toBe(different.toString("hex"));
    } finally {
      writeMem(target.pid, pad, original);
    }
    expect(readMem(target.pid, pad, 14).toString("hex")).toBe(original.toString("hex"));
  });

  it("a fix calling a symbol found nowhere: UNKNOWN_SYMBOL at build, no patch written", async () => {
    const output = join(dir, "unknown.graft");
    const error = await expectRefused("UNKNOWN_SYMBOL", () =>
      buildPatchFile({ fix: join(here, "fix-unknown.c"), target: exe, output }),
    );
    expect(error.message).toContain("no_such_function_anywhere");
    expect(existsSync(output)).toBe(false);
  });

  it("a fix defining a function the target does not have: UNKNOWN_SYMBOL at build", async () => {
    const output = join(dir, "new-function.graft");
    const error = await expectRefused("UNKNOWN_SYMBOL", () =>
      buildPatchFile({ fix: join(here, "fix-new-function.c"), target: exe, output }),
    );
    expect(error.message).toContain("compute_twice");
    expect(existsSync(output)).toBe(false);
  });

  it("a process that does not exist: NO_SUCH_PROCESS from apply, revert and status", async () => {
    const pid = deadPid();
    expect(isAlive(pid)).toBe(false);
    await expectRefused("NO_SUCH_PROCESS", () => applyPatch(pid, goodPatch));
    await expectRefused("NO_SUCH_PROCESS", () => revertPatch(pid));
    await expectRefused("NO_SUCH_PROCESS", () => patchStatus(pid));
  });

  const setpriv = hasCommand("setpriv");
  it.skipIf(!setpriv || process.getuid?.() !== 0)(
    "an unprivileged user against a root-owned process: PERMISSION_DENIED (needs root and setpriv)",
    async () => {
      // nobody needs to read the patch and own a state dir: not under TMPDIR (0700, the test run's),
      // but in /tmp itself, which every user may enter.
      const pub = mkdtempSync("/tmp/graft-refusals-pub-");
      try {
        chmodSync(pub, 0o755);
        const patch = join(pub, "good.graft");
        copyFileSync(goodPatch, patch);
        chmodSync(patch, 0o644);
        const nobodyState = join(pub, "state");
        mkdirSync(nobodyState, { mode: 0o700 });
        const uid = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }));
        const gid = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }));
        chownSync(nobodyState, uid, gid);
        const asNobody = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups"];
        const before = textSnapshot(target.pid, exe);
        const tick = lastTick(target);
        const r = runGraft(["apply", String(target.pid), patch, "--json"], {
          prefix: asNobody,
          env: { GRAFT_STATE_DIR: nobodyState },
        });
        expect(JSON.parse(r.stdout).error.code, r.stdout + r.stderr).toBe("PERMISSION_DENIED");
        expect(r.status).toBe(1);
        const text = runGraft(["apply", String(target.pid), patch], {
          prefix: asNobody,
          env: { GRAFT_STATE_DIR: nobodyState },
        });
        expect(text.stderr).toMatch(/^graft: error: pid \d+: .*\(hint: .+\)\n$/);
        expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
        expectNothingRecorded();
        await expectRunningOld(tick);
      } finally {
        rmSync(pub, { recursive: true, force: true });
      }
    },
  );

  it("a process another graft is changing right now: TARGET_LOCKED, and the lock is left alone", async () => {
    // The lock file target-lock.ts takes, held by a live process (a sleep standing in for a graft).
    const holder = startTarget("sleep", ["600"], dir, "lock-holder");
    others.push(holder);
    const lock = join(stateDir, `${processKey(target.pid)}.lock`);
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(lock, `${holder.pid}\n`, { flag: "wx", mode: 0o600 });
    try {
      const error = await expectRefused("TARGET_LOCKED", () => applyPatch(target.pid, goodPatch));
      expect(error.message).toContain(String(holder.pid));
      await expectRefused("TARGET_LOCKED", () => revertPatch(target.pid));
      expect(readFileSync(lock, "utf8")).toBe(`${holder.pid}\n`);
    } finally {
      unlinkSync(lock);
      killTarget(holder);
    }
  });

  it("a function too short for any site in a build without patching flags: NOT_PATCHABLE at build", async () => {
    const plain = buildFixture({ compiler: "gcc", sources: [TARGET_C], flags: ["-O2"], output: "pie" });
    // hook() is a bare `ret` (objdump, the oracle): 1 byte, no padding use, nothing to overwrite.
    const hookSize = execFileSync("nm", ["-S", "--defined-only", plain], { encoding: "utf8" })
      .split("\n")
      .find((l) => l.endsWith(" hook"))
      ?.split(" ")[1];
    expect(hookSize).toBe("0000000000000001");
    const output = join(dir, "hook.graft");
    const error = await expectRefused("NOT_PATCHABLE", () =>
      buildPatchFile({ fix: join(here, "fix-hook.c"), target: plain, output }),
    );
    expect(error.message).toContain("hook");
    expect(existsSync(output)).toBe(false);
    // The same fix builds for the sled build of the same source: the refusal is about the site.
    expect(
      buildPatchFile({ fix: join(here, "fix-hook.c"), target: exe, output }).manifest.functions[0]?.kind,
    ).toBe("sled");
  });

  it("a patch file changed after it was built: PATCH_CORRUPT", async () => {
    const patch = join(dir, "tampered.graft");
    copyFileSync(goodPatch, patch);
    // Flip one byte of the replacement's code, found with readelf (the oracle).
    const line = execFileSync("readelf", ["-SW", patch], { encoding: "utf8" })
      .split("\n")
      .find((l) => /\s\.text\.compute\s/.test(l));
    const fields = line?.replace(/^.*\]\s*/, "").split(/\s+/);
    const offset = Number.parseInt(fields?.[3] ?? "", 16);
    expect(Number.isInteger(offset) && offset > 0, String(line)).toBe(true);
    const bytes = readFileSync(patch);
    bytes.writeUInt8(bytes.readUInt8(offset) ^ 0xff, offset);
    writeFileSync(patch, bytes);
    await expectRefused("PATCH_CORRUPT", () => applyPatch(target.pid, patch));
    await expectRefused("PATCH_CORRUPT", () => applyPatch(target.pid, patch, { dryRun: true }));
  });

  it("from the CLI: exit code 3 and one line `graft: error: … (hint: …)` on stderr, no stack trace", async () => {
    const other = buildFixture({
      compiler: "clang",
      sources: [TARGET_C],
      flags: ["-O2", "-fpatchable-function-entry=16,14"],
      output: "pie",
    });
    const patch = join(dir, "other-binary-cli.graft");
    buildPatchFile({ fix: join(here, "fix.c"), target: other, output: patch });
    const before = textSnapshot(target.pid, exe);
    const tick = lastTick(target);
    const r = runGraft(["apply", String(target.pid), patch], { env: { GRAFT_DEBUG: "" } });
    expect(r.status).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^graft: error: pid \d+: no module of process \d+ has build-id [0-9a-f]+.* \(hint: .+\)\n$/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const json = runGraft(["apply", String(target.pid), patch, "--json"]);
    expect(json.status).toBe(3);
    expect(JSON.parse(json.stdout).error).toMatchObject({
      code: "BUILD_ID_MISMATCH",
      hint: expect.any(String),
    });
    expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
    expectNothingRecorded();
    await expectRunningOld(tick);
  });

  it("and after all that, the good patch still applies and reverts exactly", async () => {
    const before = textSnapshot(target.pid, exe);
    applyPatch(target.pid, goodPatch);
    await waitForTick(target, (t) => t.value === 21, { after: lastTick(target), what: "new answers" });
    revertPatch(target.pid);
    await waitForTick(target, (t) => t.value === 14, { after: lastTick(target), what: "old answers" });
    expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
    expectNothingRecorded();
    expect(lastTick(target)?.fields.bad).toBe(0);
  });
});
