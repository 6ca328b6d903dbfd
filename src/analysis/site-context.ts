import type { Arch, BranchRef } from "../arch/arch.js";
import type { Elf } from "../formats/elf/elf.js";
import type { CallTargets } from "./call-targets.js";
import type { FunctionInfo } from "./functions.js";

/** What every per-kind site finder gets for one function. */
export interface SiteContext {
  readonly elf: Elf;
  readonly arch: Arch;
  readonly fn: FunctionInfo;
  /** The function's bytes from its entry (size bytes, or fewer when the file is short). */
  readonly body: Uint8Array;
  /** Bytes from `fn.previousEnd` to the entry (the padding, a view). */
  readonly padding: Uint8Array;
  /**
   * Offset in `padding` known to start an instruction, from which to look for fill before the entry
   * (0: the previous function's end). Set when the gap is long, i.e. holds code no symbol covers.
   */
  readonly paddingScanFrom?: number;
  /** Length of endbr64/bti at the entry, 0 when none. */
  readonly endbr: number;
  /**
   * The file is marked for BTI (AArch64 `.note.gnu.property`): the loader maps its code as guarded
   * pages, where an indirect branch must land on a landing pad.
   */
  readonly guardedCode: boolean;
  /** Direct branches anywhere in the file that land in the padding or the first bytes of the entry. */
  readonly branchesNear: readonly BranchRef[];
  readonly callTargets: CallTargets;
}

/**
 * Problems with rewriting [start, end) at the entry of `ctx.fn`: a direct branch that lands inside
 * the range (it would land mid-jump), or a branch from inside the function back to the range's start
 * (the entry is a loop head, e.g. tail recursion turned into a loop at -O2: a redirect there would
 * also redirect each iteration). A jump to the entry from another function is a tail call and is fine.
 */
export function branchProblems(ctx: SiteContext, start: bigint, end: bigint): string[] {
  const out: string[] = [];
  const fnStart = ctx.fn.address;
  const fnEnd = ctx.fn.address + ctx.fn.size;
  for (const b of ctx.branchesNear) {
    if (b.to > start && b.to < end) {
      out.push(
        `a ${b.kind} at 0x${b.from.toString(16)} lands inside the rewritten bytes (0x${b.to.toString(16)})`,
      );
    } else if (b.to >= fnStart && b.to <= start && b.from >= fnStart && b.from < fnEnd && b.kind !== "call") {
      out.push(
        `the entry is a branch target inside the function (${b.kind} at 0x${b.from.toString(16)}: a loop head)`,
      );
    }
  }
  return [...new Set(out)];
}

/**
 * Problems with replacing the first instruction after the entry's endbr: in guarded code a
 * `paciasp`/`pacibsp` there is the landing pad of indirect calls (an implicit `bti c`), and a jump
 * written over it would make every indirect call fault.
 */
export function landingPadProblems(ctx: SiteContext): string[] {
  if (!ctx.guardedCode || ctx.endbr > 0 || !ctx.arch.isImplicitLandingPad(ctx.body, 0)) return [];
  return [
    "the first instruction is the landing pad of indirect calls (paciasp under BTI, the file is marked BTI): a branch written over it makes every indirect call fault",
  ];
}

/** Problems with using [start, end) of the padding: any branch into it means it is not dead space. */
export function paddingBranchProblems(ctx: SiteContext, start: bigint, end: bigint): string[] {
  return ctx.branchesNear
    .filter((b) => b.to >= start && b.to < end)
    .map(
      (b) =>
        `the padding is a branch target (${b.kind} at 0x${b.from.toString(16)} to 0x${b.to.toString(16)})`,
    );
}

/** Count the bytes of consecutive NOPs from `offset` in `bytes`. */
export function nopRun(arch: Arch, bytes: Uint8Array, offset: number, limit = bytes.length): number {
  let at = offset;
  while (at < limit) {
    const n = arch.nopLength(bytes, at);
    if (n === 0 || at + n > limit) break;
    at += n;
  }
  return at - offset;
}

/**
 * Free bytes at the end of `padding` (just before the entry): NOP instructions or int3 fill, scanning
 * forward from the previous function's end; only a tail that is entirely fill counts. Anything else
 * is skipped a whole instruction at a time, as objdump's linear sweep does: the gap may hold code no
 * symbol covers (a stripped library's local functions, cold blocks), and a 0xcc or 0x90 inside one of
 * its instructions (`jmp .-0x32` is `eb cc`) is not fill. `from` is where to start (an instruction
 * boundary inside the padding, see SiteContext.paddingScanFrom).
 */
export function freePaddingBeforeEntry(arch: Arch, padding: Uint8Array, from = 0): number {
  let at = Math.min(Math.max(0, from), padding.length);
  let freeFrom = at;
  while (at < padding.length) {
    if (arch.trapByte !== undefined && padding[at] === arch.trapByte) {
      at += 1;
      continue;
    }
    const n = arch.nopLength(padding, at);
    if (n > 0 && at + n <= padding.length) {
      at += n;
      continue;
    }
    // Not fill: skip the instruction (one byte when it does not decode) and count again after it.
    const insn = arch.decodeOne(padding.subarray(at), 0n);
    at += insn === undefined || insn.kind === "invalid" ? 1 : insn.length;
    freeFrom = Math.min(at, padding.length);
  }
  return padding.length - freeFrom;
}
