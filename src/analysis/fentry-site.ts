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
    return undefined;
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
