/**
 * Call-site changes in a running process (graft calls / graft callsite): 4 worker threads call
 * compute() and log_event() through one call site each while graft NOPs the logging call out and
 * back in, points the compute call at compute_alt (and at a patch's compute_alt) and back. Every
 * switch shows in the workers' counters, no answer is ever wrong, and after each restore the text is
 * byte-identical to the original. Refusals (changed bytes, a used result, a callee that clobbers more,
 * no call there) leave the target byte-identical. gcc and clang, PIE and non-PIE, all -O2.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { x86_64 } from "../../../src/arch/index.js";
import { GraftError } from "../../../src/core/errors.js";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { changeCallSites } from "../../../src/live/change-call-sites.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";
import {
  expectSwitched,
  isAlive,
  killTarget,
  type LiveTarget,
  lastTick,
  loadBias,
  readMem,
  runGraft,
  startTarget,
  textDiff,
  textSnapshot,
  useScenario,
  waitForTick,
  writeMem,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));

const { dir, started } = useScenario("graft-callsite-");

/** The error code `f` throws (undefined when it does not throw a GraftError). */
function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof GraftError) return e.code;
    throw e;
  }
  return undefined;
}

/** `graft args… --json`, parsed, with the exit status. */
// biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON, read field by field by the assertions
function graftJson(args: readonly string[]): { status: number | null; json: any } {
  const r = runGraft([...args, "--json"]);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`graft ${args.join(" ")} printed no JSON (status ${r.status}): ${r.stdout} ${r.stderr}`);
  }
  return { status: r.status, json };
}

/** The one 5-byte NOP the arch fills a call with (`nopl 0x0(%rax,%rax,1)`), never five `nop`s. */
const NOP5 = "0f1f440000";

const ORIGINAL = { value: 14, grows: "x2", frozen: ["x3", "x4"] };
const LOGGING_OFF = { value: 14, grows: "x2", frozen: ["logged", "x3", "x4"] };
const LOGGING_ON = { value: 14, grows: "logged", frozen: ["x3", "x4"] };
// main's own compute(7) is another call site: it keeps printing 14 while the workers' call moves.
const ALTERNATIVE = { value: 14, grows: "x3", frozen: ["x2", "x4"] };
const PATCHED = { value: 14, grows: "x4", frozen: ["x2", "x3"] };

const LAYOUTS: readonly { name: string; compiler: Compiler; pie: boolean }[] = [
  { name: "gcc -O2 PIE", compiler: "gcc", pie: true },
  { name: "gcc -O2 non-PIE", compiler: "gcc", pie: false },
  { name: "clang -O2 PIE", compiler: "clang", pie: true },
  { name: "clang -O2 non-PIE", compiler: "clang", pie: false },
];

function buildTarget(compiler: Compiler, pie: boolean): string {
  return buildFixture({
    compiler,
    sources: [join(here, "target.c")],
    flags: ["-O2"],
    output: pie ? "pie" : "exe",
  });
}

/** Start a 4-thread target and wait until its workers are counting. */
async function start(exe: string, name: string): Promise<LiveTarget> {
  const target = startTarget(exe, ["4"], dir, name, { nice: 10 });
  started.push(target);
  await waitForTick(target, (t) => t.value === 14 && t.fields.x2! > 0 && t.fields.logged! > 0, {
    what: "the workers counting",
  });
  return target;
}

describe.each(LAYOUTS)("call sites of a $name target", (layout) => {
  let exe: string;
  let target: LiveTarget;

  beforeAll(async () => {
    exe = buildTarget(layout.compiler, layout.pie);
    target = await start(exe, `callsite-${layout.compiler}-${layout.pie ? "pie" : "exe"}`);
  });

  afterAll(() => killTarget(target));

  it("switches the workers' logging call off and on again, and the text is the original's after each", async () => {
    const original = textSnapshot(target.pid, exe);
    const calls = graftJson(["calls", exe, "--to", "log_event", "--from", "worker"]);
    expect(calls.status).toBe(0);
    const sites = calls.json.sites as {
      address: string;
      length: number;
      rewritable: boolean;
      resultUse: { used: boolean };
    }[];
    expect(sites.length).toBeGreaterThan(0);
    for (const s of sites) expect([s.length, s.rewritable, s.resultUse.used]).toEqual([5, true, false]);
    const bias = loadBias(target.pid, exe);

    // Off, through the CLI, every worker call of log_event in one stop.
    const off = graftJson(["callsite", String(target.pid), "--to", "log_event", "--from", "worker", "--nop"]);
    expect(off.status, JSON.stringify(off.json)).toBe(0);
    expect(off.json.sites.map((s: { outcome: string; after: string }) => [s.outcome, s.after])).toEqual(
      sites.map(() => ["changed", NOP5]),
    );
    expect(off.json.pause.windowNs).toBeGreaterThan(0);
    for (const s of sites)
      expect(readMem(target.pid, BigInt(s.address) + bias, 5).toString("hex")).toBe(NOP5);
    await expectSwitched(target, LOGGING_OFF, lastTick(target));

    const status = graftJson(["status", String(target.pid)]);
    expect(
      status.json.patches.map((p: { kind: string; journal: string; sites: string }) => [
        p.kind,
        p.journal,
        p.sites,
      ]),
    ).toEqual(sites.map(() => ["callsite", "applied", "applied"]));

    // On again.
    const on = graftJson([
      "callsite",
      String(target.pid),
      "--to",
      "log_event",
      "--from",
      "worker",
      "--restore",
    ]);
    expect(on.status, JSON.stringify(on.json)).toBe(0);
    expect(on.json.sites.map((s: { outcome: string }) => s.outcome)).toEqual(sites.map(() => "changed"));
    await expectSwitched(target, LOGGING_ON, lastTick(target));
    expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
    expect(patchStatus(target.pid).patches).toEqual([]);

    // Off by SITE through the library, on again with graft revert PID ID.
    const one = changeCallSites(target.pid, { site: BigInt(sites[0]!.address), action: { kind: "nop" } });
    expect(one.sites.map((s) => s.outcome)).toEqual(["changed"]);
    const id = one.sites[0]!.entries[0]!;
    expect(id).toMatch(/^callsite-[0-9a-f]{12}$/);
    if (sites.length === 1) await expectSwitched(target, LOGGING_OFF, lastTick(target));
    // The same change again finds the NOP already there: nothing to do, nothing journaled.
    const again = changeCallSites(target.pid, { site: BigInt(sites[0]!.address), action: { kind: "nop" } });
    expect([again.sites[0]!.outcome, again.pause]).toEqual(["unchanged", undefined]);
    const reverted = runGraft(["revert", String(target.pid), id]);
    expect(reverted.status, reverted.stderr).toBe(0);
    expect(reverted.stdout).toContain(`reverted call-site change ${id}`);
    await expectSwitched(target, LOGGING_ON, lastTick(target));
    expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
    expect(patchStatus(target.pid).patches).toEqual([]);
    expect(isAlive(target.pid)).toBe(true);
  });

  it("points the workers' compute call at compute_alt and back", async () => {
    const original = textSnapshot(target.pid, exe);
    const r = changeCallSites(target.pid, {
      to: "compute",
      from: "worker",
      action: { kind: "retarget", to: "compute_alt" },
    });
    expect(r.sites.length).toBeGreaterThan(0);
    expect(r.sites.every((s) => s.outcome === "changed" && s.after.startsWith("e8"))).toBe(true);
    expect(r.pause?.windowNs).toBeGreaterThan(0);
    await expectSwitched(target, ALTERNATIVE, lastTick(target));
    const back = changeCallSites(target.pid, { to: "compute", from: "worker", action: { kind: "restore" } });
    expect(back.sites.every((s) => s.outcome === "changed")).toBe(true);
    await expectSwitched(target, ORIGINAL, lastTick(target));
    expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
    expect(patchStatus(target.pid).patches).toEqual([]);
  });

  it("survives 40 changes back to back while the workers run through both sites", async () => {
    const original = textSnapshot(target.pid, exe);
    const before = lastTick(target);
    for (let i = 0; i < 10; i++) {
      changeCallSites(target.pid, { to: "log_event", from: "worker", action: { kind: "nop" } });
      changeCallSites(target.pid, {
        to: "compute",
        from: "worker",
        action: { kind: "retarget", to: "compute_alt" },
      });
      changeCallSites(target.pid, { to: "log_event", from: "worker", action: { kind: "restore" } });
      changeCallSites(target.pid, { to: "compute", from: "worker", action: { kind: "restore" } });
    }
    expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
    expect(patchStatus(target.pid).patches).toEqual([]);
    // Every answer in between was compute's or compute_alt's (expectSwitched checks `bad` stays 0).
    await expectSwitched(target, ORIGINAL, before);
    expect(isAlive(target.pid)).toBe(true);
  });

  it("refuses unsafe or stale changes and leaves the target byte-identical", async () => {
    const before = lastTick(target);
    const original = textSnapshot(target.pid, exe);
    const unchanged = () => expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);

    // The workers read compute's result: no NOP without --force (library and CLI: exit 3, code).
    expect(
      codeOf(() => changeCallSites(target.pid, { to: "compute", from: "worker", action: { kind: "nop" } })),
    ).toBe("CALL_RESULT_USED");
    const cli = graftJson(["callsite", String(target.pid), "--to", "compute", "--from", "worker", "--nop"]);
    expect([cli.status, cli.json.error.code]).toEqual([3, "CALL_RESULT_USED"]);
    unchanged();

    // worker changes registers compute leaves alone: a caller may keep values there (-fipa-ra).
    expect(
      codeOf(() =>
        changeCallSites(target.pid, {
          to: "compute",
          from: "worker",
          action: { kind: "retarget", to: "worker" },
        }),
      ),
    ).toBe("CALL_SITE_UNSAFE");
    unchanged();

    // No call starts inside compute's first instruction; no function of that name.
    const compute = graftJson(["calls", exe, "--to", "compute"]).json.sites[0].address as string;
    expect(
      codeOf(() => changeCallSites(target.pid, { site: BigInt(compute) + 1n, action: { kind: "nop" } })),
    ).toBe("CALL_SITE_NOT_FOUND");
    expect(
      codeOf(() =>
        changeCallSites(target.pid, { to: "compute", action: { kind: "retarget", to: "no_such_function" } }),
      ),
    ).toBe("UNKNOWN_SYMBOL");
    unchanged();

    // Another tool rewrote idle_path's first call (which never runs): graft will not touch it.
    const idle = graftJson(["calls", exe, "--from", "idle_path"]).json.sites[0] as {
      address: string;
      rewritable: boolean;
    };
    expect(idle.rewritable).toBe(true);
    const at = BigInt(idle.address) + loadBias(target.pid, exe);
    const call = readMem(target.pid, at, 5);
    writeMem(target.pid, at, Buffer.from(NOP5, "hex"));
    try {
      const foreign = textSnapshot(target.pid, exe);
      for (const action of [{ kind: "nop" }, { kind: "retarget", to: "log_event" }] as const) {
        expect(codeOf(() => changeCallSites(target.pid, { site: BigInt(idle.address), action }))).toBe(
          "SITE_BYTES_CHANGED",
        );
      }
      const refused = graftJson(["callsite", String(target.pid), idle.address, "--nop"]);
      expect([refused.status, refused.json.error.code]).toEqual([3, "SITE_BYTES_CHANGED"]);
      expect(textDiff(foreign, textSnapshot(target.pid, exe))).toEqual([]);
    } finally {
      writeMem(target.pid, at, call);
    }
    unchanged();
    expect(patchStatus(target.pid).patches).toEqual([]);
    await expectSwitched(target, ORIGINAL, before);
  });
});

describe("a call pointed at a function a patch loaded (gcc -O2 PIE)", () => {
  it("runs the patch's code, holds the patch in place until restored, and restores exactly", async () => {
    const exe = buildTarget("gcc", true);
    const patch = join(dir, "compute-alt.graft");
    const built = buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    const target = await start(exe, "callsite-patch");
    try {
      const original = textSnapshot(target.pid, exe);
      applyPatch(target.pid, patch);
      const id = built.manifest.id;
      // The workers call compute, not compute_alt: nothing changes yet.
      await expectSwitched(target, ORIGINAL, lastTick(target));

      const r = changeCallSites(target.pid, {
        to: "compute",
        from: "worker",
        action: { kind: "retarget", to: `${id}:compute_alt` },
      });
      const replacement = patchStatus(target.pid).patches[0]!.functions[0]!.replacement;
      expect(r.newTarget?.address).toBe(BigInt(replacement));
      await expectSwitched(target, PATCHED, lastTick(target));

      // The call leads into the patch: the patch may not go first.
      const withCall = textSnapshot(target.pid, exe);
      expect(codeOf(() => revertPatch(target.pid, { patch: id }))).toBe("REVERT_ORDER");
      expect(textDiff(withCall, textSnapshot(target.pid, exe))).toEqual([]);
      expect(patchStatus(target.pid).patches.map((p) => [p.kind, p.sites])).toEqual([
        ["patch", "applied"],
        ...r.sites.map(() => ["callsite", "applied"]),
      ]);

      const restored = graftJson([
        "callsite",
        String(target.pid),
        "--to",
        "compute",
        "--from",
        "worker",
        "--restore",
      ]);
      expect(restored.status, JSON.stringify(restored.json)).toBe(0);
      await expectSwitched(target, ORIGINAL, lastTick(target));
      expect(revertPatch(target.pid, { patch: id }).reverted.map((x) => [x.kind, x.unmapped])).toEqual([
        ["patch", true],
      ]);
      expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
      expect(patchStatus(target.pid).patches).toEqual([]);
      expect(isAlive(target.pid)).toBe(true);
    } finally {
      killTarget(target);
    }
  });
});

describe("a graft that dies in the middle of a call-site change (gcc -O2 PIE)", () => {
  it.each(["callsite:journaled", "callsite:wrote", "callsite:resumed"])(
    "killed at %s: status tells, other changes are refused until --restore finishes it, exactly",
    async (fault) => {
      const exe = buildTarget("gcc", true);
      const target = await start(exe, `callsite-crash-${fault.replace(/\W/g, "-")}`);
      try {
        const original = textSnapshot(target.pid, exe);
        const args = ["callsite", String(target.pid), "--to", "log_event", "--from", "worker", "--nop"];
        const crashed = runGraft(args, { env: { GRAFT_FAULT: fault } });
        expect(crashed.signal).toBe("SIGKILL");
        const [entry] = patchStatus(target.pid).patches;
        expect([entry?.kind, entry?.journal, entry?.sites]).toEqual([
          "callsite",
          "applying",
          fault === "callsite:journaled" ? "reverted" : "applied",
        ]);
        expect(
          codeOf(() =>
            changeCallSites(target.pid, {
              to: "compute",
              from: "worker",
              action: { kind: "retarget", to: "compute_alt" },
            }),
          ),
        ).toBe("JOURNAL_INCOMPLETE");
        const restored = graftJson([
          "callsite",
          String(target.pid),
          "--to",
          "log_event",
          "--from",
          "worker",
          "--restore",
        ]);
        expect(restored.status, JSON.stringify(restored.json)).toBe(0);
        expect(restored.json.sites[0].entries).toEqual([entry!.id]);
        await expectSwitched(target, LOGGING_ON, lastTick(target));
        expect(textDiff(original, textSnapshot(target.pid, exe))).toEqual([]);
        expect(patchStatus(target.pid).patches).toEqual([]);
      } finally {
        killTarget(target);
      }
    },
  );
});

describe("the NOP a call is replaced with", () => {
  it("is the arch's single NOP of the call's length", () => {
    expect(Buffer.from(x86_64.nopFill(5)).toString("hex")).toBe(NOP5);
    expect(x86_64.decode(x86_64.nopFill(5), 0n).map((i) => [i.kind, i.length])).toEqual([["nop", 5]]);
    expect(x86_64.decode(x86_64.nopFill(6), 0n).map((i) => [i.kind, i.length])).toEqual([["nop", 6]]);
  });
});
