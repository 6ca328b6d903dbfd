import { GraftError, RefusedError } from "../core/errors.js";
import { bytesFromHex, hex, hexString } from "../core/hex.js";
import { findMapping, readMaps } from "../process/maps.js";
import { openMemory, type ProcessMemory, readMemory } from "../process/memory.js";
import { nowNs, sleepSync } from "../process/poll-wait.js";
import { stepThreadsOutOf } from "../process/step-out.js";
import { type StoppedProcess, type StopWindow, stopProcess } from "../process/stop-the-world.js";
import { injectMunmap } from "../process/syscall-inject.js";
import { type AuditNote, audited } from "./audit-log.js";
import type { Consistency } from "./consistency.js";
import { faultPoint } from "./fault-point.js";
import { type Journal, type JournalPatch, loadJournal, saveJournal } from "./journal.js";
import { readPatchFile } from "./patch-file.js";
import { findBlockingThreads, type GuardedRange } from "./quiescence.js";
import { CODE_FILE_PATTERN } from "./shared-code-file.js";
import { lockTarget } from "./target-lock.js";
import { type ModuleCache, TargetModules } from "./target-modules.js";
import { findSeccompBlocks, refuseSharedMemory } from "./target-safety.js";

export interface RevertOptions {
  /** Patch id (or a prefix), or a patch file; default: the last applied. */
  readonly patch?: string;
  /** Revert every patch, last first. */
  readonly all?: boolean;
  /** Revert exactly these journal entries (full ids), last first, in one stop (graft callsite --restore). */
  readonly ids?: readonly string[];
  /** How long to keep trying to unmap code that a thread still runs or will return into. */
  readonly unmapDeadlineMs?: number;
  /** `quiescent`: restore nothing while a thread runs or has a frame in the patch's code (consistency.ts). */
  readonly consistency?: Consistency;
  /** How long `quiescent` keeps retrying before it refuses (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Parsed modules shared between processes (graft revert --all-of), for unwinding. */
  readonly moduleCache?: ModuleCache;
}

export interface RevertedPatch {
  readonly id: string;
  /** `callsite`: a graft callsite change (no code of its own). */
  readonly kind: "patch" | "callsite";
  readonly file: string;
  readonly functions: readonly string[];
  /** Writes put back (0 when a crashed graft had not written them yet). */
  readonly restored: number;
  /** The code mapping was unmapped; false when a thread may still return into it (kept, retired). */
  readonly unmapped: boolean;
}

export interface RevertResult {
  readonly pid: number;
  readonly reverted: readonly RevertedPatch[];
  readonly pauses: readonly StopWindow[];
}

function overlaps(a: JournalPatch, b: JournalPatch): boolean {
  const range = (w: JournalPatch["writes"][number]): [bigint, bigint] => [
    BigInt(w.address),
    BigInt(w.address) + BigInt(w.after.length / 2),
  ];
  return a.writes.some((x) =>
    b.writes.some((y) => {
      const [xs, xe] = range(x);
      const [ys, ye] = range(y);
      return xs < ye && ys < xe;
    }),
  );
}

/** Which patches to revert, last first; refuses when a later patch, not reverted with them, builds on one. */
function choose(journal: Journal, options: RevertOptions, pid: number): JournalPatch[] {
  if (journal.patches.length === 0) {
    throw new RefusedError("PATCH_NOT_APPLIED", [`graft has applied no patch to process ${pid}`], {
      subject: `pid ${pid}`,
    });
  }
  if (options.all) return [...journal.patches].reverse();
  if (options.ids !== undefined) return chooseIds(journal, options.ids, pid);
  let wanted: JournalPatch | undefined;
  if (options.patch === undefined) wanted = journal.patches[journal.patches.length - 1];
  else {
    let id = options.patch;
    if (id.includes("/") || id.endsWith(".graft")) id = readPatchFile(id).manifest.id;
    const matches = journal.patches.filter((p) => p.id === id || p.id.startsWith(id));
    const exact = matches.find((p) => p.id === id);
    if (exact === undefined && matches.length > 1) {
      throw new GraftError(
        "USAGE",
        `"${id}" matches ${matches.length} entries: ${matches.map((p) => p.id).join(", ")}`,
        {
          subject: `pid ${pid}`,
          hint: "give more of the id (see graft status PID)",
        },
      );
    }
    wanted = exact ?? matches[0];
  }
  if (wanted === undefined) {
    throw new RefusedError("PATCH_NOT_APPLIED", [`patch ${options.patch} is not applied to process ${pid}`], {
      subject: `pid ${pid}`,
    });
  }
  const later = journal.patches.slice(journal.patches.indexOf(wanted) + 1);
  const blockers = later.filter((p) => p.dependsOn.includes(wanted.id) || overlaps(p, wanted));
  if (blockers.length > 0) {
    throw new RefusedError(
      "REVERT_ORDER",
      blockers.map(
        (b) =>
          `patch ${b.id} (${b.source}) was applied later and ${b.dependsOn.includes(wanted.id) ? "depends on it" : "rewrites the same sites"}`,
      ),
      { subject: `pid ${pid}` },
    );
  }
  return [wanted];
}

/** The entries `ids`, last first; refuses when a later entry outside them builds on one of them. */
function chooseIds(journal: Journal, ids: readonly string[], pid: number): JournalPatch[] {
  const missing = ids.filter((id) => !journal.patches.some((p) => p.id === id));
  if (missing.length > 0) {
    throw new RefusedError(
      "PATCH_NOT_APPLIED",
      missing.map((id) => `${id} is not applied to process ${pid}`),
      { subject: `pid ${pid}` },
    );
  }
  const wanted = journal.patches.filter((p) => ids.includes(p.id));
  const reasons: string[] = [];
  for (const w of wanted) {
    for (const b of journal.patches.slice(journal.patches.indexOf(w) + 1)) {
      if (ids.includes(b.id) || !(b.dependsOn.includes(w.id) || overlaps(b, w))) continue;
      reasons.push(
        `${b.id} (${b.source}) was applied later and ${b.dependsOn.includes(w.id) ? "depends on" : "rewrites the same bytes as"} ${w.id}`,
      );
    }
  }
  if (reasons.length > 0)
    throw new RefusedError("REVERT_ORDER", [...new Set(reasons)], { subject: `pid ${pid}` });
  return wanted.reverse();
}

/**
 * `graft revert PID [PATCH|--all]`: put back the bytes a patch changed and unmap its code. Exact even
 * after a crash of the graft that applied it: each write is restored only if it holds what that graft
 * wrote, skipped if it already holds the original, and refused if it holds anything else.
 */
export function revertPatch(pid: number, options: RevertOptions = {}): RevertResult {
  return audited("revert", pid, (note) => revertOnce(pid, options, note));
}

function revertOnce(pid: number, options: RevertOptions, note: AuditNote): RevertResult {
  refuseSharedMemory(pid);
  const lock = lockTarget(pid);
  const mem = openMemory(pid);
  try {
    const journal = loadJournal(pid);
    const targets = choose(journal, options, pid);
    note.entries = targets.map((p) => p.id);
    if (targets.length === 1 && (targets[0]!.kind ?? "patch") === "patch")
      note.patch = {
        id: targets[0]!.id,
        file: targets[0]!.file,
        ...(targets[0]!.sha256 === undefined ? {} : { sha256: targets[0]!.sha256 }),
      };
    // Check every byte before changing any, in the order they will be restored: a patch stacked on
    // another (reverted first, with --all) puts back the bytes the one below it wrote.
    const foreign: string[] = [];
    const restoredBytes = new Map<bigint, number>();
    for (const p of targets) {
      for (const w of p.writes) {
        const at = BigInt(w.address);
        const have = hexString(
          mem.read(at, w.after.length / 2).map((b, i) => restoredBytes.get(at + BigInt(i)) ?? b),
        );
        if (have !== w.after && have !== w.before)
          foreign.push(
            `${w.function} at ${w.address}: expected ${w.after} (or original ${w.before}), found ${have}`,
          );
        for (const [i, b] of bytesFromHex(w.before).entries()) restoredBytes.set(at + BigInt(i), b);
      }
    }
    if (foreign.length > 0)
      throw new RefusedError("SITE_BYTES_CHANGED", foreign, {
        subject: `pid ${pid}`,
        hint: "another tool changed these bytes; graft will not overwrite them",
      });
    // Putting bytes back needs no system call in the target, unmapping does: a seccomp filter that
    // would refuse or punish munmap leaves the code mapped (retired) rather than kill the process.
    const unmapBlocked = new Map<JournalPatch, string>();
    for (const p of targets) {
      const reason = munmapBlocked(pid, p);
      if (reason !== undefined) unmapBlocked.set(p, reason);
    }
    for (const p of targets) p.state = "reverting";
    saveJournal(journal);
    const pauses: StopWindow[] = [];
    faultPoint("revert:journaled");

    const reverted: RevertedPatch[] = [];
    // Until a byte changes, a failure (a thread that will not stop or step out) leaves things as they
    // were: the journal goes back to `applied` so later applies are not refused as unfinished.
    const backToApplied = (): void => {
      for (const p of targets) p.state = "applied";
      saveJournal(journal);
    };
    let stopped: StoppedProcess;
    try {
      stopped = stopQuiescent(pid, targets, options, pauses);
    } catch (e) {
      backToApplied();
      throw e;
    }
    const restoredCounts: number[] = [];
    // Code nobody runs any more is unmapped in the same stop; the rest is retried after resuming.
    const unmappedAtOnce = new Set<JournalPatch>();
    try {
      for (const p of targets) restoredCounts.push(restoreWrites(stopped, mem, p));
      for (const p of targets)
        if (!unmapBlocked.has(p) && tryUnmap(stopped, p) !== "busy") unmappedAtOnce.add(p);
    } catch (e) {
      if (restoredCounts.every((n) => n === 0) && restoredCounts.length < targets.length) {
        pauses.push(stopped.resume());
        backToApplied();
      }
      throw e;
    } finally {
      if (!stopped.resumed) pauses.push(stopped.resume());
    }
    faultPoint("revert:restored");
    for (const [i, p] of targets.entries()) {
      const blocked = unmapBlocked.get(p);
      const unmapped =
        blocked === undefined &&
        (unmappedAtOnce.has(p) || unmapWhenUnused(pid, p, options.unmapDeadlineMs ?? 2000, pauses));
      if (!unmapped)
        journal.retired.push({
          ...p.mapping,
          patch: p.id,
          reason: blocked ?? "a thread was still running or would return into the patch code",
        });
      if (unmapped && p.mapping.dataOffset !== undefined) {
        const from = BigInt(p.mapping.address) + BigInt(p.mapping.dataOffset);
        journal.retired.push({
          address: hex(from),
          size: hex(BigInt(p.mapping.address) + BigInt(p.mapping.size) - from),
          patch: p.id,
          reason:
            "the fix's constants and data stay mapped: pointers to them may live anywhere in the process",
        });
      }
      faultPoint("revert:unmapped");
      journal.patches = journal.patches.filter((x) => x !== p);
      saveJournal(journal);
      reverted.push({
        id: p.id,
        kind: p.kind ?? "patch",
        file: p.file,
        functions: p.functions.map((f) => f.name),
        restored: restoredCounts[i]!,
        unmapped,
      });
    }
    return { pid, reverted, pauses };
  } finally {
    mem.close();
    lock.release();
  }
}

/**
 * Stop every thread; with `--consistency quiescent`, only return once no thread runs or has a frame
 * in the code of a patch being reverted (the functions being replaced now), looking again after
 * backing off 1, 2, 4 … 64 ms until the deadline, then refusing with the blocking threads.
 */
function stopQuiescent(
  pid: number,
  targets: readonly JournalPatch[],
  options: RevertOptions,
  pauses: StopWindow[],
): StoppedProcess {
  if (options.consistency !== "quiescent") return stopProcess(pid);
  const guarded: GuardedRange[] = targets
    .filter((p) => BigInt(p.mapping.size) > 0n)
    .map((p) => {
      const start = BigInt(p.mapping.address);
      const size = BigInt(p.mapping.dataOffset ?? p.mapping.size);
      return {
        start,
        end: start + size,
        name: `the code of patch ${p.id} (${p.functions.map((f) => f.name).join(", ")})`,
      };
    });
  const maps = readMaps(pid);
  const modules = new TargetModules(pid, maps, options.moduleCache);
  const deadline = nowNs() + BigInt(options.timeoutMs ?? 5000) * 1_000_000n;
  for (let round = 0; ; round++) {
    const stopped = stopProcess(pid);
    let blockers: string[];
    try {
      blockers = findBlockingThreads(stopped, maps, modules, guarded);
    } catch (e) {
      pauses.push(stopped.resume());
      throw e;
    }
    if (blockers.length === 0) return stopped;
    pauses.push(stopped.resume());
    if (nowNs() > deadline)
      throw new RefusedError("THREAD_NOT_QUIESCENT", blockers, { subject: `pid ${pid}` });
    sleepSync(Math.min(64, 2 ** round));
  }
}

/** Why the process's seccomp filters forbid unmapping `p`'s code, if they do. */
function munmapBlocked(pid: number, p: JournalPatch): string | undefined {
  const size = BigInt(p.mapping.size);
  if (size === 0n) return undefined;
  const codeSize = p.mapping.dataOffset === undefined ? size : BigInt(p.mapping.dataOffset);
  try {
    const blocks = findSeccompBlocks(pid, [{ name: "munmap", args: [BigInt(p.mapping.address), codeSize] }]);
    return blocks.length === 0 ? undefined : `kept mapped: ${blocks.join("; ")}`;
  } catch (e) {
    if (e instanceof GraftError) return `kept mapped: ${e.message}`;
    throw e;
  }
}

/** Entry jumps first (no thread enters the patch after that), far jumps after. */
function restoreWrites(stopped: StoppedProcess, mem: ProcessMemory, p: JournalPatch): number {
  const writes = [...p.writes].sort((a, b) => (a.role === b.role ? 0 : a.role === "entry" ? -1 : 1));
  stepThreadsOutOf(
    stopped,
    writes.map((w) => ({ start: BigInt(w.address), end: BigInt(w.address) + BigInt(w.after.length / 2) })),
  );
  let restored = 0;
  for (const w of writes) {
    const at = BigInt(w.address);
    if (hexString(mem.read(at, w.after.length / 2)) === w.before) continue;
    mem.write(at, bytesFromHex(w.before));
    restored++;
    faultPoint(`revert:wrote-${w.role}`);
  }
  for (const w of writes) {
    if (hexString(mem.read(BigInt(w.address), w.before.length / 2)) !== w.before) {
      throw new GraftError("MEMORY_ACCESS_FAILED", `original bytes at ${w.address} did not read back`, {
        subject: `pid ${stopped.pid}`,
      });
    }
  }
  return restored;
}

/**
 * Unmap a reverted patch's code once no thread runs it or has a return address into it. Threads
 * that were inside the replacement when its entry was restored leave it within microseconds, so this
 * lets the process run, stops it, looks, and backs off between looks, until a deadline.
 */
function unmapWhenUnused(pid: number, p: JournalPatch, deadlineMs: number, pauses: StopWindow[]): boolean {
  const deadline = nowNs() + BigInt(deadlineMs) * 1_000_000n;
  for (let round = 0; ; round++) {
    // Back off 1, 2, 4 … 32 ms: each look stops every thread, so look less often the longer it takes.
    sleepSync(Math.min(32, 2 ** round));
    const stopped = stopProcess(pid);
    let outcome: ReturnType<typeof tryUnmap>;
    try {
      outcome = tryUnmap(stopped, p);
    } finally {
      pauses.push(stopped.resume());
    }
    if (outcome !== "busy") return true;
    if (nowNs() > deadline) return false;
  }
}

/**
 * With the process stopped: unmap the patch's code unless a thread runs it or has a return address
 * into it. `none` when there is nothing of graft's to unmap (a call-site change; an apply that died
 * before its mmap, whose address may now hold someone else's mapping).
 */
function tryUnmap(stopped: StoppedProcess, p: JournalPatch): "unmapped" | "none" | "busy" {
  const start = BigInt(p.mapping.address);
  const end = start + BigInt(p.mapping.size);
  if (end === start) return "none";
  const mapping = findMapping(readMaps(stopped.memoryPid), start);
  // Graft's mapping: anonymous, or its shared code file (shared-code-file.ts).
  const ours = mapping !== undefined && (mapping.path === "" || CODE_FILE_PATTERN.test(mapping.path));
  if (mapping === undefined || mapping.start !== start || !ours || !mapping.perms.x) return "none";
  // Only the code goes when the fix has constants or data of its own: pointers to them may sit anywhere.
  const codeEnd = p.mapping.dataOffset === undefined ? end : start + BigInt(p.mapping.dataOffset);
  if (findUser(stopped, start, codeEnd) !== undefined) return "busy";
  injectMunmap(stopped, start, codeEnd - start);
  return "unmapped";
}

/** A thread executing in [start, end), or with a word on its stack pointing there (a return address). */
function findUser(stopped: StoppedProcess, start: bigint, end: bigint): string | undefined {
  const maps = readMaps(stopped.memoryPid);
  for (const t of stopped.threads) {
    const rip = t.regs.rip;
    if (rip >= start && rip < end) return `thread ${t.tid} executes patch code at ${hex(rip)}`;
    const stack = findMapping(maps, t.regs.rsp);
    if (stack === undefined) continue;
    const limit = stack.end - t.regs.rsp > 8n << 20n ? t.regs.rsp + (8n << 20n) : stack.end;
    const bytes = readMemory(stopped.memoryPid, t.regs.rsp & ~7n, Number(limit - (t.regs.rsp & ~7n)));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let o = 0; o + 8 <= bytes.length; o += 8) {
      const word = view.getBigUint64(o, true);
      if (word >= start && word < end) return `thread ${t.tid} has ${hex(word)} on its stack`;
    }
  }
  return undefined;
}
