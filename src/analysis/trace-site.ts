import type { FunctionReport } from "./check.js";
import type { RedirectKind, RedirectWrite } from "./site-types.js";

/**
 * Where `graft trace` hooks one function: the entry jump (and a far jump when the entry room only
 * holds a `jmp rel8`), the original instructions the hook displaces (to run in the trampoline), and
 * where the function's own code goes on after the hook (`resume`).
 */
export interface TraceSite {
  readonly kind: RedirectKind;
  readonly entry: RedirectWrite;
  readonly far: RedirectWrite | undefined;
  /**
   * Link-time range of original instructions the hook replaces and the trampoline must run (hotpatch:
   * the first instruction; overwrite: the instructions under the jump); undefined for sled NOPs and
   * the fentry call, which are skipped.
   */
  readonly displaced: { readonly address: bigint; readonly length: number } | undefined;
  /** Link-time address execution continues at after the hook: the end of the entry room. */
  readonly resume: bigint;
}

/** The site trace would use for `fn`, or why none can be used. */
export type TraceSiteChoice =
  | { readonly site: TraceSite; readonly reason?: undefined }
  | { readonly site?: undefined; readonly reason: string };

/**
 * Choose a trace hook among the sites `graft check` found, best first: sled NOPs and the fentry call
 * (skipped: a -pg build's `__fentry__` is not called while traced, so gprof misses those arcs), then
 * hotpatch padding and entry overwrites, whose displaced instructions the trampoline runs — only
 * when they do not depend on where they run (overwrite sites say so; the hotpatch instruction is
 * checked by the caller, which can decode it).
 */
export function chooseTraceSite(fn: FunctionReport): TraceSiteChoice {
  const problems: string[] = [];
  for (const s of fn.sites) {
    if (s.problems.length > 0) continue;
    const entry = s.writes.find((w) => w.role === "entry");
    const far = s.writes.find((w) => w.role === "far");
    if (entry === undefined) continue;
    if (far === undefined && entry.room < 5) continue;
    const resume = entry.address + BigInt(entry.room);
    if (s.kind === "sled" || s.kind === "fentry") {
      return { site: { kind: s.kind, entry, far, displaced: undefined, resume } };
    }
    if (s.detail.kind === "overwrite" && !s.detail.relocatable) {
      problems.push("overwrite: the instructions under the jump depend on their address");
      continue;
    }
    return {
      site: { kind: s.kind, entry, far, displaced: { address: entry.address, length: entry.room }, resume },
    };
  }
  return {
    reason:
      problems[0] ??
      fn.verdict.reasons.find((r) => !r.startsWith("sled: none") && !r.startsWith("fentry: no ")) ??
      "no patch site (build with graft cflags)",
  };
}
