/**
 * A fix that needs the inside of the target: its static variables (`scale`, `calls`, `label`), its
 * static function offset(), and libc (snprintf) — bound to the right addresses (nm and readelf are
 * the oracles) and behaving as the fix says while 8 threads run the patched code.
 */
import { execFileSync } from "node:child_process";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { applyPatch } from "../../../src/live/apply-patch.js";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { readMaps } from "../../../src/process/maps.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";
import {
  isAlive,
  killTarget,
  type LiveTarget,
  lastTick,
  loadBias,
  maps,
  runtimeAddress,
  startTarget,
  textDiff,
  textSnapshot,
  ticks,
  useScenario,
  waitForTick,
} from "../../support/live-target.js";

const here = dirname(fileURLToPath(import.meta.url));
const LABEL = "livepatch";

const { dir, started } = useScenario("graft-statics-");

function build(compiler: Compiler): string {
  return buildFixture({
    compiler,
    sources: [join(here, "target.c")],
    flags: [
      "-O2",
      "-fpatchable-function-entry=16,14",
      ...(compiler === "gcc" ? ["-flive-patching=inline-clone"] : []),
    ],
    output: "pie",
  });
}

/** The libc the process runs, and where readelf says `name` is in it (with its symbol type). */
function libcSymbol(pid: number, name: string): { address: bigint; type: string } {
  const libc = maps(pid).find((m) => /\/libc\.so\.6$/.test(m.path))?.path;
  if (libc === undefined) throw new Error(`process ${pid} has no libc.so.6`);
  const line = execFileSync("readelf", ["--dyn-syms", "-W", libc], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[7]?.split("@")[0] === name && f[6] !== "UND");
  if (line === undefined) throw new Error(`readelf finds no ${name} in ${libc}`);
  return { address: loadBias(pid, libc) + BigInt(`0x${line[1]}`), type: line[3]! };
}

async function startRunning(exe: string): Promise<LiveTarget> {
  const target = startTarget(exe, ["8", "3", LABEL], dir, "statics");
  started.push(target);
  await waitForTick(target, (t) => t.value === 14 && t.words.desc === "old", { what: "the old answers" });
  return target;
}

describe.each(["gcc", "clang"] as const)("a %s target", (compiler) => {
  it("runs a fix that uses its static variables, its static function and libc's snprintf", async () => {
    const exe = build(compiler);
    const patch = join(dir, `statics-${compiler}.graft`);
    const built = buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: patch });
    expect(built.manifest.functions.map((f) => f.name).sort()).toEqual(["compute", "describe"]);
    const from = Object.fromEntries(built.imports.map((i) => [i.name, i.from]));
    const own = basename(exe);
    expect(from).toEqual({ scale: own, calls: own, label: own, offset: own, snprintf: "libc.so.6" });

    const target = await startRunning(exe);
    try {
      const text = textSnapshot(target.pid, exe);
      const applied = applyPatch(target.pid, patch);
      // Bound where nm (the target's statics) and readelf (libc's exports) say they are.
      expect(applied.bindings).toMatchObject({
        scale: runtimeAddress(target.pid, exe, "scale", "dD"),
        calls: runtimeAddress(target.pid, exe, "calls", "bB"),
        label: runtimeAddress(target.pid, exe, "label", "bB"),
        offset: runtimeAddress(target.pid, exe, "offset", "tT"),
        snprintf: libcSymbol(target.pid, "snprintf").address,
      });

      const first = await waitForTick(target, (t) => t.words.desc !== "old", {
        what: "the fix's description",
      });
      const later = await waitForTick(target, (t) => t.tick >= first.tick + 3, {
        after: first,
        what: "three more ticks",
      });
      for (const t of ticks(target).filter((x) => x.tick >= first.tick && x.tick <= later.tick)) {
        // "<label>:<its length>:<calls>": the static label written at run time, and a live counter.
        expect(t.words.desc, t.line).toMatch(new RegExp(`^${LABEL}:${LABEL.length}:\\d+$`));
        expect(t.value, t.line).toBe(21);
        expect(t.fields.bad, t.line).toBe(0);
      }
      const calls = (t: typeof first): number => Number(t.words.desc!.split(":")[2]);
      expect(calls(later)).toBeGreaterThan(calls(first));

      const before = lastTick(target);
      revertPatch(target.pid);
      const back = await waitForTick(target, (t) => t.words.desc === "old" && t.value === 14, {
        after: before,
        what: "the old answers again",
      });
      expect(back.fields.bad).toBe(0);
      expect(textDiff(text, textSnapshot(target.pid, exe))).toEqual([]);
      const status = patchStatus(target.pid);
      expect(status.patches).toEqual([]);
      // The fix has a string literal (snprintf's format): its code is unmapped, its constants stay
      // (retired), since a pointer to them could live anywhere in the process.
      expect(status.retired.map((r) => r.reason)).toEqual([
        expect.stringMatching(/constants and data stay mapped/),
      ]);
      expect(
        readMaps(target.pid).some((m) => m.start === BigInt(status.retired[0]!.address) && !m.perms.x),
      ).toBe(true);
      expect(isAlive(target.pid)).toBe(true);
    } finally {
      killTarget(target);
    }
  });
});

describe("a fix calling a libc IFUNC (strlen)", () => {
  // An IFUNC's symbol is its resolver; graft binds the implementation ld.so chose (from the target's
  // GOT slot or libc's own IRELATIVE slot), or the fix's strlen(label) would return an address.
  it("binds strlen to the implementation ld.so chose, so the fix gets the length", async () => {
    const exe = build("gcc");
    const patch = join(dir, "ifunc.graft");
    buildPatchFile({ fix: join(here, "fix-ifunc.c"), target: exe, output: patch });
    expect(libcSymbol(process.pid, "strlen").type).toBe("IFUNC");
    const target = await startRunning(exe);
    try {
      applyPatch(target.pid, patch);
      const t = await waitForTick(target, (x) => x.words.desc !== "old", { what: "the fix's description" });
      revertPatch(target.pid);
      expect(t.words.desc).toMatch(new RegExp(`^${LABEL}:${LABEL.length}:\\d+$`));
    } finally {
      killTarget(target);
    }
  });
});
