import { branchProblems, type SiteContext } from "./site-context.js";
import type { RedirectSite } from "./site-types.js";

/** Callees that `-pg` emits: `-mfentry` calls `__fentry__` at the entry; plain `-pg` calls `mcount`. */
export const PROFILER_HOOKS: ReadonlySet<string> = new Set(["__fentry__", "mcount", "_mcount", "__mcount"]);

function baseName(name: string | undefined): string | undefined {
  return name?.replace(/@.*$/, "").replace(/^\*/, "");
}

/**
 * The `-pg -mfentry` site: the first instruction (after endbr64) is a call to `__fentry__` (5-byte
 * `call rel32`, or 6-byte `call *__fentry__@GOTPCREL(%rip)` in gcc PIE), or the 5-byte NOP that
 * `-mnop-mcount` (or a tracer turning it off) leaves there, which only `__mcount_loc` can tell from
 * a sled. `recorded` says whether `__mcount_loc` lists the address.
 */
export function findFentrySite(ctx: SiteContext, recorded: boolean): RedirectSite | undefined {
  const { arch, fn, body, endbr } = ctx;
  const at = fn.address + BigInt(endbr);
  const insn = arch.decodeOne(body.subarray(endbr), at);
  if (insn === undefined) return undefined;
  let state: "call" | "nop";
  let callee: string | undefined;
  if (insn.kind === "call" || insn.kind === "indirect-call") {
    callee = ctx.callTargets.nameOf(insn);
    if (!PROFILER_HOOKS.has(baseName(callee) ?? "")) return undefined;
    state = "call";
  } else if (insn.kind === "nop" && insn.length === arch.nearJumpLength && recorded) {
    state = "nop";
  } else {
    return findLateProfilerCall(ctx, at);
  }
  const problems = branchProblems(ctx, at, at + BigInt(insn.length));
  return {
    kind: "fentry",
    address: at,
    length: insn.length,
    writes: problems.length === 0 ? [{ role: "entry", address: at, room: insn.length }] : [],
    problems,
    detail: { kind: "fentry", state, callee: baseName(callee), recorded },
  };
}

/**
 * Instructions of prologue searched for a profiler call that plain `-pg` emits after it: a variadic
 * function at -O0 saves x1–x7 and q0–q7 first (22–24 instructions with gcc 12 and clang 14).
 */
const PROLOGUE_LIMIT = 32;
/** Bytes that hold PROLOGUE_LIMIT instructions of any arch (15: the longest x86 instruction). */
const PROLOGUE_BYTES = PROLOGUE_LIMIT * 15;

/**
 * Plain `-pg` (no `-mfentry`, the only form on AArch64) calls `_mcount` after the prologue: gcc
 * emits `stp x29, x30, [sp, #-N]!; mov x29, sp; …; mov x0, x30; bl _mcount`. That call is found and
 * reported, but it is no entry site: by then the frame is pushed and x0 holds the return address, so a
 * branch written there would enter the replacement with the wrong stack and first argument.
 */
function findLateProfilerCall(ctx: SiteContext, at: bigint): RedirectSite | undefined {
  const { arch, body, endbr } = ctx;
  const window = body.subarray(endbr, endbr + PROLOGUE_BYTES);
  for (const insn of arch.decode(window, at, PROLOGUE_LIMIT)) {
    if (insn.kind === "call" || insn.kind === "indirect-call") {
      const callee = baseName(ctx.callTargets.nameOf(insn));
      if (!PROFILER_HOOKS.has(callee ?? "")) return undefined;
      return {
        kind: "fentry",
        address: insn.address,
        length: insn.length,
        writes: [],
        problems: [
          `the call to ${callee} at 0x${insn.address.toString(16)} comes after ${insn.address - at} bytes of prologue (-pg without -mfentry): the frame is already pushed there, so it is no entry site`,
        ],
        detail: { kind: "fentry", state: "after-prologue", callee, recorded: false },
      };
    }
    if (insn.kind !== "other" && insn.kind !== "nop") return undefined;
  }
  return undefined;
}
