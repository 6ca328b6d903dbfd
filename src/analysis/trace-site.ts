import type { FunctionReport } from "./check.js";
import type { RedirectWrite } from "./site-types.js";

/**
 * Where `graft trace` hooks one function: the entry jump (and a far jump when the entry room only
 * holds a `jmp rel8`), and where the function's own code goes on after the hook (`resume`).
 */
export interface TraceSite {
  readonly kind: "sled" | "fentry";
  readonly entry: RedirectWrite;
  readonly far: RedirectWrite | undefined;
  /** Link-time address execution continues at after the hook: the end of the entry room. */
  readonly resume: bigint;
}

/** The site trace would use for `fn`, or why none can be used. */
export type TraceSiteChoice =
  | { readonly site: TraceSite; readonly reason?: undefined }
  | { readonly site?: undefined; readonly reason: string };

/**
 * Choose a trace hook among the sites `graft check` found. Only rooms whose bytes never run original
 * code work without relocating instructions: sled NOPs, and the fentry call/NOP (the `__fentry__`
 * call itself is skipped while traced, so a -pg build's gprof arcs miss the traced calls). Hotpatch
 * padding and entry overwrites would need the displaced first instructions copied into the
 * trampoline: not done, refused with that reason.
 */
export function chooseTraceSite(fn: FunctionReport): TraceSiteChoice {
  for (const s of fn.sites) {
    if (s.problems.length > 0) continue;
    if (s.kind !== "sled" && s.kind !== "fentry") continue;
    const entry = s.writes.find((w) => w.role === "entry");
    const far = s.writes.find((w) => w.role === "far");
    if (entry === undefined) continue;
    if (far === undefined && entry.room < 5) continue;
    return { site: { kind: s.kind, entry, far, resume: entry.address + BigInt(entry.room) } };
  }
  const kinds = fn.sites.filter((s) => s.problems.length === 0).map((s) => s.kind);
  return {
    reason:
      kinds.length === 0
        ? (fn.verdict.reasons.find((r) => !r.startsWith("sled: none") && !r.startsWith("fentry: no ")) ??
          "no patch site (build with graft cflags)")
        : `only ${kinds.join("/")} room: tracing needs a sled or fentry site (displaced instructions are not relocated)`,
  };
}
