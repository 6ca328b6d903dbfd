import {
  branchProblems,
  freePaddingBeforeEntry,
  landingPadProblems,
  paddingBranchProblems,
  type SiteContext,
} from "./site-context.js";
import type { RedirectSite } from "./site-types.js";

/**
 * Hotpatch padding, with no compiler flag at all (the rules of MSVC /hotpatch and the proposed rustc
 * hotpatch flag): the first instruction after endbr64 is at least 2 bytes, so a `jmp rel8` replaces
 * it whole in one write; nothing branches into it or loops back to it; and the free NOP/int3 padding
 * before the entry holds a `jmp rel32` within rel8 reach of the entry. On AArch64 the same shape is
 * `ldr x16, #8; br x16; .quad` in 16 bytes of NOP padding and a `b` to it over the first instruction.
 */
export function findHotpatchSite(ctx: SiteContext): RedirectSite {
  const { arch, fn, body, padding, endbr } = ctx;
  const at = fn.address + BigInt(endbr);
  const problems: string[] = [...landingPadProblems(ctx)];
  const first = arch.decodeOne(body.subarray(endbr), at);
  const firstLength = first?.length ?? 0;
  if (first === undefined || first.kind === "invalid") {
    problems.push("the first instruction does not decode");
  } else if (first.length < arch.shortJumpLength) {
    problems.push(
      `the first instruction \`${first.text}\` is ${first.length} byte (need ${arch.shortJumpLength})`,
    );
  }
  const free = freePaddingBeforeEntry(arch, padding, ctx.paddingScanFrom);
  // The far jump must sit inside the padding and within reach of the short jump at `at`.
  const reachStart = at - arch.shortJumpBackReach;
  const padStart = fn.address - BigInt(free);
  const farAt = padStart > reachStart ? padStart : reachStart;
  const usable = fn.address > farAt ? Number(fn.address - farAt) : 0;
  if (usable < arch.farJumpLength) {
    problems.push(`${free} byte(s) of free padding before the entry (need ${arch.farJumpLength})`);
  } else {
    problems.push(...paddingBranchProblems(ctx, farAt, fn.address));
  }
  if (first !== undefined && first.length >= arch.shortJumpLength) {
    problems.push(...branchProblems(ctx, at, at + BigInt(first.length)));
  }
  return {
    kind: "hotpatch",
    address: at,
    length: firstLength,
    writes:
      problems.length === 0
        ? [
            { role: "far", address: farAt, room: usable },
            { role: "entry", address: at, room: firstLength },
          ]
        : [],
    problems,
    detail: {
      kind: "hotpatch",
      firstInstruction: first?.text ?? "",
      firstInstructionLength: firstLength,
      padding: free,
    },
  };
}
