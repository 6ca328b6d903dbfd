/**
 * Signatures, the audit log and the per-target lock, through the CLI as an operator runs it:
 * `graft apply --require-signature` refuses unsigned, untrusted, tampered and mismatched patches
 * before touching the target (its text stays byte-identical, nothing is journaled); every change and
 * every refusal is one audit line, even from many grafts at once; a second graft on a process that a
 * first one is changing refuses with the lock error naming the holder.
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { buildFixture } from "../../support/fixtures.js";
import {
  type CliResult,
  expectSwitched,
  graftCli,
  killTarget,
  type LiveTarget,
  lastTick,
  runGraft,
  startTarget,
  textDiff,
  textSnapshot,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const OLD = { value: 14, grows: "old", frozen: ["new"] };
const NEW = { value: 21, grows: "new", frozen: ["old"] };

let dir: string;
let exe: string;
let patchA: string;
let patchB: string;
let idA: string;
let target: LiveTarget;
let auditLog: string;

function graft(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliResult {
  return runGraft(args, { env: { GRAFT_AUDIT_LOG: auditLog, ...env } });
}

function errorCode(r: CliResult): string | undefined {
  try {
    return JSON.parse(r.stdout).error?.code;
  } catch {
    return undefined;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: audit lines are JSON read back for assertions
function audit(): Record<string, any>[] {
  let text = "";
  try {
    text = readFileSync(auditLog, "utf8");
  } catch {}
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "graft-sign-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  auditLog = join(dir, "audit.log");
  exe = buildFixture({
    compiler: "gcc",
    sources: [join(here, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  patchA = join(dir, "a.graft");
  patchB = join(dir, "b.graft");
  idA = buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patchA }).manifest.id;
  buildPatchFile({ fix: join(here, "fix2.c"), target: exe, output: patchB });
  target = startTarget(exe, ["4"], dir, "sign", { nice: 19 });
  await waitForTick(target, (t) => t.value === 14 && t.fields.old! > 0, { what: "old answers" });
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

describe("graft keygen, sign, verify", () => {
  it("signs a patch into PATCH.sig that verifies with the public key and no other", () => {
    for (const name of ["ops", "other"]) expect(graft(["keygen", "-o", join(dir, name)]).status).toBe(0);
    expect(execFileSync("stat", ["-c", "%a", join(dir, "ops.key")], { encoding: "utf8" }).trim()).toBe("600");
    // keygen never overwrites a key.
    expect(graft(["keygen", "-o", join(dir, "ops")]).status).toBe(2);
    const signed = graft(["sign", patchA, "--key", join(dir, "ops.key"), "--json"]);
    expect(signed.status, signed.stderr).toBe(0);
    const sig = JSON.parse(readFileSync(`${patchA}.sig`, "utf8"));
    expect(sig).toMatchObject({ format: "graft-signature/1", patch: idA });
    const ok = graft(["verify", patchA, "--pubkey", join(dir, "ops.pub"), "--json"]);
    expect(ok.status, ok.stdout).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ patch: idA, key: sig.key });
    const wrong = graft(["verify", patchA, "--pubkey", join(dir, "other.pub"), "--json"]);
    expect([wrong.status, errorCode(wrong)]).toEqual([3, "SIGNATURE_UNTRUSTED"]);
    // A private key is not a public key.
    expect(errorCode(graft(["verify", patchA, "--pubkey", join(dir, "ops.key"), "--json"]))).toBe(
      "KEY_INVALID",
    );
  });
});

describe("graft apply --require-signature refuses before touching the target", () => {
  const cases: { name: string; code: string; prepare: () => { patch: string; args?: string[] } }[] = [
    { name: "an unsigned patch", code: "SIGNATURE_MISSING", prepare: () => ({ patch: patchB }) },
    {
      name: "a patch signed by an untrusted key",
      code: "SIGNATURE_UNTRUSTED",
      prepare: () => {
        const p = join(dir, "other-signed.graft");
        copyFileSync(patchA, p);
        expect(graft(["sign", p, "--key", join(dir, "other.key")]).status).toBe(0);
        return { patch: p };
      },
    },
    {
      name: "a patch whose manifest was changed after signing",
      code: "SIGNATURE_INVALID",
      prepare: () => {
        const p = join(dir, "tampered-manifest.graft");
        const bytes = readFileSync(patchA);
        // The manifest's "created" time: changing it keeps the JSON valid and the code hash intact.
        const at = bytes.indexOf('"created"') + 14;
        expect(at).toBeGreaterThan(14);
        bytes[at] = bytes[at] === 0x31 ? 0x32 : 0x31;
        writeFileSync(p, bytes);
        copyFileSync(`${patchA}.sig`, `${p}.sig`);
        return { patch: p };
      },
    },
    {
      name: "a patch whose code was changed after signing (the content hash fails first)",
      code: "PATCH_CORRUPT",
      prepare: () => {
        const p = join(dir, "tampered-code.graft");
        // readelf -SW: [Nr] Name Type Address Off Size …
        const m = /\.text\.compute\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(
          execFileSync("readelf", ["-SW", patchA], { encoding: "utf8" }),
        );
        const offset = Number.parseInt(m![1]!, 16);
        const bytes = readFileSync(patchA);
        bytes[offset] = bytes[offset]! ^ 0xff;
        writeFileSync(p, bytes);
        copyFileSync(`${patchA}.sig`, `${p}.sig`);
        return { patch: p };
      },
    },
    {
      name: "another patch's signature",
      code: "SIGNATURE_INVALID",
      prepare: () => {
        const p = join(dir, "borrowed.graft");
        copyFileSync(patchB, p);
        copyFileSync(`${patchA}.sig`, `${p}.sig`);
        return { patch: p };
      },
    },
  ];
  it.each(cases)("$name: $code", async ({ code, prepare }) => {
    const { patch } = prepare();
    const before = textSnapshot(target.pid, exe);
    const lines = audit().length;
    const r = graft([
      "apply",
      "--require-signature",
      "--pubkey",
      join(dir, "ops.pub"),
      String(target.pid),
      patch,
      "--json",
    ]);
    expect([r.status, errorCode(r)], r.stdout).toEqual([3 - (code === "PATCH_CORRUPT" ? 2 : 0), code]);
    expect(textDiff(before, textSnapshot(target.pid, exe))).toEqual([]);
    expect(patchStatus(target.pid).patches).toEqual([]);
    // Refusals are audited too.
    const last = audit().slice(lines);
    expect(last.map((l) => [l.action, l.result, l.error?.code, l.target.pid])).toEqual([
      ["apply", code === "PATCH_CORRUPT" ? "failed" : "refused", code, target.pid],
    ]);
    await expectSwitched(target, OLD, lastTick(target));
  });

  it("the host policy (GRAFT_REQUIRE_SIGNATURE=1, GRAFT_TRUSTED_KEYS) refuses too, and applies a good signature", async () => {
    const keys = join(dir, "trusted");
    mkdirSync(keys);
    copyFileSync(join(dir, "ops.pub"), join(keys, "ops.pub"));
    const env = { GRAFT_REQUIRE_SIGNATURE: "1", GRAFT_TRUSTED_KEYS: keys };
    expect(errorCode(graft(["apply", String(target.pid), patchB, "--json"], env))).toBe("SIGNATURE_MISSING");
    const ok = graft(["apply", String(target.pid), patchA, "--json"], env);
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).signer).toMatchObject({ patch: idA, keyFile: join(keys, "ops.pub") });
    await expectSwitched(target, NEW, lastTick(target));
    expect(graft(["revert", String(target.pid)]).status).toBe(0);
    await expectSwitched(target, OLD, lastTick(target));

    const buildId = execFileSync("readelf", ["-n", exe], { encoding: "utf8" }).match(
      /Build ID: ([0-9a-f]+)/,
    )?.[1];
    const [apply, revert] = audit().slice(-2);
    expect(apply).toMatchObject({
      action: "apply",
      result: "ok",
      user: { uid: process.getuid!() },
      target: { pid: target.pid, buildId },
      patch: { id: idA, file: patchA },
      entries: [idA],
      signedBy: JSON.parse(readFileSync(`${patchA}.sig`, "utf8")).key,
    });
    expect(apply!.patch.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(apply!.graftPid).not.toBe(revert!.graftPid);
    expect(revert).toMatchObject({
      action: "revert",
      result: "ok",
      entries: [idA],
      target: { pid: target.pid },
    });
    expect(revert!.patch).toEqual(apply!.patch);
    const log = graft(["log", "--pid", String(target.pid), "--last", "2", "--json"]);
    expect(JSON.parse(log.stdout).records).toEqual([apply, revert]);
  });
});

/** Start `graft args…` without waiting; resolves with its exit status and output. */
function graftAsync(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): { pid: number; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [graftCli, ...args], {
    env: { ...process.env, GRAFT_AUDIT_LOG: auditLog, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve) =>
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { pid: child.pid!, done };
}

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "gone";
  }
}

describe("two grafts on one process", () => {
  it("the second refuses with TARGET_LOCKED naming the first, which then finishes", async () => {
    // The first graft stops itself after journaling, lock held (GRAFT_FAULT=<point>:stop).
    const first = graftAsync(["apply", String(target.pid), patchA], { GRAFT_FAULT: "apply:journaled:stop" });
    while (stateOf(first.pid) !== "T") {
      expect(stateOf(first.pid), "the first graft ended before its stop point").not.toBe("gone");
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const args of [
      ["apply", String(target.pid), patchB],
      ["revert", String(target.pid)],
    ]) {
      const second = graft([...args, "--json"]);
      expect([second.status, errorCode(second)]).toEqual([3, "TARGET_LOCKED"]);
      expect(JSON.parse(second.stdout).error.message).toContain(
        `graft (pid ${first.pid}) is changing process ${target.pid}`,
      );
    }
    process.kill(first.pid, "SIGCONT");
    const r = await first.done;
    expect(r.status, r.stderr).toBe(0);
    await expectSwitched(target, NEW, lastTick(target));
    expect(graft(["revert", String(target.pid)]).status).toBe(0);
    await expectSwitched(target, OLD, lastTick(target));
  });
});

describe("the audit log", () => {
  it("gets exactly one whole line from each of many grafts writing at once", async () => {
    const before = audit().length;
    const runs = Array.from({ length: 12 }, () => graftAsync(["revert", String(target.pid), "--json"]));
    const results = await Promise.all(runs.map((r) => r.done));
    // Nothing applied: each is refused (PATCH_NOT_APPLIED, or TARGET_LOCKED while another holds the lock).
    for (const r of results) expect(["PATCH_NOT_APPLIED", "TARGET_LOCKED"]).toContain(errorCode(r));
    const lines = readFileSync(auditLog, "utf8")
      .split("\n")
      .filter((l) => l !== "");
    const added = lines.slice(before).map((l) => JSON.parse(l));
    expect(added.map((l) => l.graftPid).sort()).toEqual(runs.map((r) => r.pid).sort());
    expect(added.every((l) => l.result === "refused")).toBe(true);
  });
});
