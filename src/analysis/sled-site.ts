import {
  branchProblems,
  freePaddingBeforeEntry,
  nopRun,
  paddingBranchProblems,
  type SiteContext,
} from "./site-context.js";
import type { RedirectSite, RedirectWrite } from "./site-types.js";

/**
 * The sled of `-fpatchable-function-entry=N,M`, from its record (the address of the first NOP):
 * M NOPs before the entry and N−M after it (after endbr64 under -fcf-protection, after `bti c` under
 * -mbranch-protection; on AArch64 N and M count 4-byte NOPs). The bytes are
 * verified to be NOPs; a sled that is not NOPs was rewritten by someone else and is not usable.
 * A sled with room for the short jump at the entry but none for the far jump before it (`=2`, the
 * hotpatch shape) takes the far jump in the free alignment padding before the entry, as a hotpatch
 * pad does; gcc fills such a sled with two 1-byte NOPs, which the hotpatch rule alone would refuse.
 */
export function findSledSite(ctx: SiteContext, record: bigint): RedirectSite {
  const { arch, fn, body, padding, endbr } = ctx;
  const problems: string[] = [];
  const entryNops = fn.address + BigInt(endbr);
  let before = 0;
  if (record < fn.address) {
    before = Number(fn.address - record);
    const pre = padding.subarray(padding.length - before);
    const nops = nopRun(arch, pre, 0);
    if (pre.length < before || nops !== before) {
      problems.push(
        `the ${before} bytes before the entry are not all NOPs (recorded sled at 0x${record.toString(16)})`,
      );
    }
  }
  // With M = 0 the record may point at the entry or just after endbr64.
  const after = nopRun(arch, body, endbr);
  // gcc 12 and clang 14 put `bti c` first and the sled after it; a sled placed before the landing pad
  // (what older compilers did, and hand-written code may do) makes the entry itself a NOP.
  const landingPad =
    endbr > 0 ? "before-sled" : after > 0 && arch.endbrLength(body, after) > 0 ? "after-sled" : undefined;
  const verified = problems.length === 0;
  const writes: RedirectWrite[] = [];
  if (after >= arch.nearJumpLength) {
    writes.push({ role: "entry", address: entryNops, room: after });
  } else if (after >= arch.shortJumpLength && before >= arch.farJumpLength) {
    writes.push({ role: "far", address: record, room: before });
    writes.push({ role: "entry", address: entryNops, room: after });
  } else if (verified) {
    const free = freePaddingBeforeEntry(arch, padding, ctx.paddingScanFrom);
    // The far jump must lie in the padding and within the short jump's reach of the entry.
    const reachStart = entryNops - arch.shortJumpBackReach;
    const padStart = fn.address - BigInt(free);
    const farAt = padStart > reachStart ? padStart : reachStart;
    const usable = fn.address > farAt ? Number(fn.address - farAt) : 0;
    if (after >= arch.shortJumpLength && usable >= arch.farJumpLength) {
      writes.push({ role: "far", address: farAt, room: usable });
      writes.push({ role: "entry", address: entryNops, room: after });
      problems.push(...paddingBranchProblems(ctx, farAt, fn.address));
    } else {
      problems.push(
        `sled too small to redirect: ${before} NOP byte(s) before and ${after} after the entry, ${free} byte(s) of free padding before it (need ${arch.nearJumpLength} at the entry${arch.shortJumpLength < arch.nearJumpLength ? `, or ${arch.shortJumpLength} at the entry and ${arch.farJumpLength} before` : ""})`,
      );
    }
  }
  if (writes.length > 0) {
    const entry = writes[writes.length - 1]!;
    problems.push(
      ...branchProblems(
        ctx,
        entry.address,
        entry.address + BigInt(Math.min(entry.room, arch.nearJumpLength)),
      ),
    );
  }
  // Where the far jump is absolute (AArch64's literal load) it reaches further than the entry's own
  // jump: a sled with room for it before the entry offers that too.
  const far =
    problems.length === 0 &&
    writes.length === 1 &&
    arch.farJumpLength === arch.absoluteJumpLength &&
    before >= arch.farJumpLength &&
    paddingBranchProblems(ctx, record, fn.address).length === 0
      ? [{ role: "far" as const, address: record, room: before }, writes[0]!]
      : undefined;
  return {
    kind: "sled",
    address: record < fn.address ? record : entryNops,
    length: before + after,
    writes: problems.length === 0 ? writes : [],
    ...(far === undefined ? {} : { alternatives: [far] }),
    problems,
    detail: { kind: "sled", before, after, verified, ...(landingPad === undefined ? {} : { landingPad }) },
  };
}
