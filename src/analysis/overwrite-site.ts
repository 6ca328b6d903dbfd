import { branchProblems, landingPadProblems, type SiteContext } from "./site-context.js";
import type { RedirectSite } from "./site-types.js";

/**
 * Entry overwrite (what libcare, Detours and Frida do on plain builds): the whole instructions that
 * cover the first 5 bytes after endbr64 are replaced by `jmp rel32`. Needs the function to be long
 * enough, nothing to branch into the replaced bytes or loop back to the entry, and no call among them
 * except the last (a thread inside the callee would return into the middle of the jump). The least
 * safe kind: every thread must be out of those bytes when they are written.
 */
export function findOverwriteSite(ctx: SiteContext): RedirectSite {
  const { arch, fn, body, endbr } = ctx;
  const at = fn.address + BigInt(endbr);
  const need = arch.nearJumpLength;
  const problems: string[] = [...landingPadProblems(ctx)];
  const texts: string[] = [];
  let covered = 0;
  let relocatable = true;
  const available = Number(fn.size) - endbr;
  if (available < need) {
    problems.push(`the function is ${available} byte(s) long after the entry (need ${need})`);
  } else {
    for (const insn of arch.decode(body.subarray(endbr, Math.min(body.length, endbr + need + 15)), at)) {
      if (covered >= need) break;
      texts.push(insn.text);
      if (insn.kind === "invalid") {
        problems.push(`bytes at 0x${insn.address.toString(16)} do not decode`);
        break;
      }
      covered += insn.length;
      if ((insn.kind === "call" || insn.kind === "indirect-call") && covered < need) {
        problems.push(`\`${insn.text}\` returns into the bytes the jump replaces`);
      }
      if (insn.pcRelative || insn.kind === "call" || insn.kind === "indirect-call") relocatable = false;
      if ((insn.kind === "return" || insn.kind === "jump" || insn.kind === "trap") && covered < need) {
        problems.push(`the function ends after ${covered} byte(s) (\`${insn.text}\`), before ${need}`);
        break;
      }
    }
    if (covered > available) problems.push(`the replaced instructions run past the function's end`);
    problems.push(...branchProblems(ctx, at, at + BigInt(covered)));
  }
  return {
    kind: "overwrite",
    address: at,
    length: covered,
    writes: problems.length === 0 ? [{ role: "entry", address: at, room: covered }] : [],
    problems,
    detail: { kind: "overwrite", instructions: texts, relocatable },
  };
}
