import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError, ProcessError, RefusedError } from "../core/errors.js";
import { bytesFromHex, hex, hexString } from "../core/hex.js";
import { findFreeRegionNear } from "../process/free-region.js";
import { readMaps } from "../process/maps.js";
import { openMemory, type ProcessMemory } from "../process/memory.js";
import { nowNs, sleepSync } from "../process/poll-wait.js";
import { warmUpSavedPcSearch } from "../process/step-out.js";
import { type StoppedProcess, type StopWindow, stopProcess } from "../process/stop-the-world.js";
import {
  injectMmap,
  injectMprotect,
  injectMunmap,
  injectSyscall,
  MAP,
  PROT,
} from "../process/syscall-inject.js";
import { listThreads, pickQuietThread } from "../process/threads.js";
import { type AuditNote, audited } from "./audit-log.js";
import type { Consistency } from "./consistency.js";
import { faultPoint } from "./fault-point.js";
import { type JournalPatch, loadJournal, saveJournal } from "./journal.js";
import { journaledBytes } from "./journaled-bytes.js";
import { linkPatch } from "./link-patch.js";
import { type PatchFile, readPatchFile } from "./patch-file.js";
import { layoutPatch, ownDataOffset, type PatchLayout } from "./patch-image.js";
import { type TrustedKey, type VerifiedSignature, verifyPatchSignature } from "./patch-signature.js";
import { findBlockingThreads, functionExtent, type GuardedRange } from "./quiescence.js";
import { type PlannedWrite, redirectBytes } from "./redirect-bytes.js";
import { sharedCodeFile } from "./shared-code-file.js";
import { lockTarget } from "./target-lock.js";
import { type ModuleCache, TargetModules } from "./target-modules.js";
import { refuseSeccompBlocks, refuseSharedMemory, targetNotes } from "./target-safety.js";
import { writeWhileStopped } from "./write-while-stopped.js";

export interface ApplyOptions {
  /** Check and plan everything, change nothing. */
  readonly dryRun?: boolean;
  /** Give up stopping the threads after this long. */
  readonly stopTimeoutMs?: number;
  /** The patch, already read and verified (graft apply --all-of reads it once for every process). */
  readonly patchFile?: PatchFile;
  /** Parsed modules shared between processes (graft apply --all-of). */
  readonly moduleCache?: ModuleCache;
  /** `quiescent`: also wait until no thread runs or has a frame in a replaced function (consistency.ts). */
  readonly consistency?: Consistency;
  /** How long `quiescent` keeps retrying before it refuses (default 5000 ms). */
  readonly timeoutMs?: number;
  /**
   * Map the code from graft's shared code file (default true; shared-code-file.ts); false: a private
   * anonymous copy, as before sharing existed (bench:fleet measures the difference).
   */
  readonly sharedCode?: boolean;
  /**
   * Require a valid signature by one of these keys (`graft apply --require-signature`), checked before
   * the target is touched.
   */
  readonly trustedKeys?: readonly TrustedKey[];
  /** The signature file; default PATCH.sig. */
  readonly signatureFile?: string;
}

export interface AppliedFunction {
  readonly name: string;
  readonly kind: string;
  readonly address: bigint;
  readonly replacement: bigint;
}

export interface ApplyResult {
  readonly pid: number;
  readonly patch: string;
  readonly file: string;
  readonly dryRun: boolean;
  readonly module: string;
  readonly bias: bigint;
  readonly mapping: { readonly address: bigint; readonly size: bigint };
  readonly functions: readonly AppliedFunction[];
  readonly writes: readonly { address: bigint; before: string; after: string }[];
  readonly bindings: Readonly<Record<string, bigint>>;
  /** Stop-the-world timing; undefined on a dry run. */
  readonly pause: StopWindow | undefined;
  /** Instructions single-stepped to move threads out of rewritten bytes. */
  readonly stepped: number;
  /** Facts about the target worth knowing (a CET shadow stack…), none of which stopped the apply. */
  readonly notes: readonly string[];
  /** Who signed the patch, when a signature was required. */
  readonly signer: VerifiedSignature | undefined;
}

/**
 * `graft apply PID PATCH`: load a patch into a running process and redirect the functions it
 * replaces, as one transaction [DESIGN "safe code-modification protocol"]: verify build-id and site
 * bytes; journal the plan (write-ahead); stop every thread; map the code (R-X, never W+X; bytes go in
 * through /proc/PID/mem); step threads out of the rewritten bytes; write far jumps, then entry jumps;
 * resume. Any failure before resume puts back every byte, unmaps the code and resumes.
 */
export function applyPatch(pid: number, patchPath: string, options: ApplyOptions = {}): ApplyResult {
  // A dry run changes nothing, so it leaves no audit line.
  if (options.dryRun) return applyOnce(pid, patchPath, options, { patch: { file: patchPath } });
  return audited("apply", pid, (note) => {
    note.patch = { file: patchPath };
    return applyOnce(pid, patchPath, options, note);
  });
}

function applyOnce(pid: number, patchPath: string, options: ApplyOptions, note: AuditNote): ApplyResult {
  const patch = options.patchFile ?? readPatchFile(patchPath);
  const m = patch.manifest;
  note.patch = { id: m.id, sha256: m.sha256, file: patchPath };
  // Verified on the bytes just read and hashed, so the file cannot change between check and use.
  const signer =
    options.trustedKeys === undefined
      ? undefined
      : verifyPatchSignature(patch, options.trustedKeys, options.signatureFile);
  if (signer !== undefined) note.signedBy = signer.key;
  refuseSharedMemory(pid);
  const arch = getLiveArchForMachine(patch.elf.header.e_machine, patchPath);
  const lock = options.dryRun ? undefined : lockTarget(pid);
  const mem = openMemory(pid);
  try {
    const journal = loadJournal(pid);
    const unfinished = journal.patches.find((p) => p.state !== "applied");
    if (unfinished !== undefined) {
      throw new RefusedError(
        "JOURNAL_INCOMPLETE",
        [`patch ${unfinished.id} (${unfinished.file}) was left ${unfinished.state}`],
        { subject: `pid ${pid}` },
      );
    }
    if (journal.patches.some((p) => p.id === m.id)) {
      throw new RefusedError(
        "PATCH_ALREADY_APPLIED",
        [`patch ${m.id} (${m.source}) is already applied to process ${pid}`],
        { subject: `pid ${pid}` },
      );
    }
    const missing = m.dependsOn.filter((d) => !journal.patches.some((p) => p.id === d));
    if (missing.length > 0) {
      throw new RefusedError(
        "DEPENDENCY_MISSING",
        missing.map((d) => `patch ${d} must be applied first`),
        { subject: `pid ${pid}` },
      );
    }
    const maps = readMaps(pid);
    const modules = new TargetModules(pid, maps, options.moduleCache);
    const target = modules.getByBuildId(m.target.buildId, m.target.file);

    // Every site must hold what the patch expects (or what earlier patches put there).
    const changed: string[] = [];
    for (const fn of m.functions) {
      for (const w of fn.writes) {
        const at = BigInt(w.address) + target.bias;
        const want = journaledBytes(journal.patches, at, bytesFromHex(w.expected));
        const have = mem.read(at, w.room);
        if (hexString(have) !== hexString(want))
          changed.push(
            `${fn.name} ${w.role} site at ${hex(at)}: expected ${hexString(want)}, found ${hexString(have)}`,
          );
      }
    }
    if (changed.length > 0) throw new RefusedError("SITE_BYTES_CHANGED", changed, { subject: `pid ${pid}` });

    const defined = new Set(
      patch.elf
        .symbols()
        .filter((s) => s.st_shndx !== 0)
        .map((s) => s.name),
    );
    const isDefined = (name: string): boolean => defined.has(name);
    const resolved = new Map<string, bigint | undefined>();
    const resolve = (name: string): bigint | undefined => {
      if (!resolved.has(name)) resolved.set(name, modules.resolve(target, name));
      return resolved.get(name);
    };
    // Right below the module (the usual place, see placeBelowModule), the code reaches the module's
    // functions and variables with rel32: calls need no stub and GOT loads become `lea` with no slot,
    // so a fix using nothing else has no GOT and no rodata page (one system call and one private page
    // less per process). Elsewhere, the plain layout: a stub and a slot for every external.
    const isNear = (name: string): boolean => {
      if (isDefined(name)) return true;
      const at = resolve(name);
      return at !== undefined && distance(at, target.module.start) < REL32_SAFE;
    };
    let layout = layoutPatch(patch.elf, isDefined, isNear);
    const siteAddresses = m.functions.flatMap((f) => f.writes.map((w) => BigInt(w.address) + target.bias));
    const low = siteAddresses.reduce((a, b) => (b < a ? b : a));
    const high = siteAddresses.reduce((a, b) => (b > a ? b : a));
    const near = {
      start: low < target.module.start ? low : target.module.start,
      end: high > target.module.end ? high : target.module.end,
    };
    let region = placeBelowModule(maps, target.module.start, layout.size);
    if (region === undefined) {
      layout = layoutPatch(patch.elf, isDefined);
      region = findFreeRegionNear(maps, near, layout.size);
    }
    if (region === undefined) {
      throw new RefusedError(
        "SYSCALL_INJECTION_FAILED",
        [`no free address range within ±2 GiB of ${target.module.path}`],
        {
          subject: `pid ${pid}`,
          hint: "the address space near the module is full; report this layout",
        },
      );
    }
    const base = region.start;
    // Every system call loadCode (and a rollback) will inject, with its real arguments, must pass the
    // process's seccomp filters: a filter that kills on mmap(PROT_EXEC) would kill the target.
    refuseSeccompBlocks(pid, [
      {
        name: "mmap",
        args: [
          base,
          layout.size,
          BigInt(PROT.PROT_READ | PROT.PROT_EXEC),
          BigInt(MAP.MAP_PRIVATE | MAP.MAP_ANONYMOUS | MAP.MAP_FIXED_NOREPLACE),
          BigInt.asUintN(64, -1n),
          0n,
        ],
      },
      ...layout.segments
        .filter((s) => s.kind === "rodata" || s.kind === "data")
        .map((s) => ({
          name: "mprotect" as const,
          args: [
            base + s.offset,
            s.size,
            BigInt(s.kind === "rodata" ? PROT.PROT_READ : PROT.PROT_READ | PROT.PROT_WRITE),
          ],
        })),
      { name: "munmap", args: [base, layout.size] },
    ]);
    const linked = linkPatch(patch.elf, layout, base, resolve);

    const functions: AppliedFunction[] = [];
    const planned: PlannedWrite[] = [];
    for (const fn of m.functions) {
      const replacement = linked.symbols.get(fn.replacement);
      if (replacement === undefined)
        throw new GraftError("PATCH_CORRUPT", `the patch does not define ${fn.replacement}`, {
          subject: patchPath,
        });
      planned.push(...redirectBytes(arch, fn, target.bias, replacement));
      functions.push({
        name: fn.qualifiedName,
        kind: fn.kind,
        address: BigInt(fn.address) + target.bias,
        replacement,
      });
    }
    // Far jumps first (never executed until an entry jump leads there), entry jumps last.
    planned.sort((a, b) => (a.role === b.role ? 0 : a.role === "far" ? -1 : 1));
    const writes = planned.map((w) => ({
      address: w.address,
      before: hexString(mem.read(w.address, w.bytes.length)),
      after: hexString(w.bytes),
    }));
    const result = {
      pid,
      signer,
      notes: targetNotes(pid),
      patch: m.id,
      file: patchPath,
      module: target.module.path,
      bias: target.bias,
      mapping: { address: base, size: layout.size },
      functions,
      writes,
      bindings: Object.fromEntries(linked.bindings),
    };
    if (options.dryRun) return { ...result, dryRun: true, pause: undefined, stepped: 0 };

    const record: JournalPatch = {
      id: m.id,
      file: patchPath,
      sha256: m.sha256,
      source: m.source,
      state: "applying",
      mapping: { address: hex(base), size: hex(layout.size), ...dataOffsetField(patch.elf, layout) },
      writes: planned.map((w, i) => ({
        address: hex(w.address),
        before: writes[i]!.before,
        after: writes[i]!.after,
        role: w.role,
        function:
          m.functions.find(
            (f) =>
              w.address >= BigInt(f.address) + target.bias - 256n &&
              w.address <= BigInt(f.address) + target.bias + 16n,
          )?.name ?? "",
      })),
      functions: functions.map((f) => ({
        name: f.name,
        replacement: hex(f.replacement),
        address: hex(f.address),
        kind: f.kind,
      })),
      dependsOn: m.dependsOn,
      appliedAt: new Date().toISOString(),
      by: { pid: process.pid, uid: process.getuid?.() },
    };
    journal.patches.push(record);
    note.entries = [record.id];
    saveJournal(journal);
    faultPoint("apply:journaled");

    const undoJournal = (): void => {
      journal.patches = journal.patches.filter((p) => p !== record);
      saveJournal(journal);
    };
    // A process with one thread is stopped once for both steps: stopping its only thread to map the
    // code stops the whole process already, so a second stop for the redirects would only add one.
    let alone: StoppedProcess | undefined;
    const withThread = <T>(work: (stopped: StoppedProcess) => T): T =>
      alone === undefined ? withOneThread(pid, work) : work(alone);
    try {
      alone = stopIfSingleThreaded(pid, options.stopTimeoutMs);
      loadCode(pid, mem, linked.image, base, layout.segments, options.sharedCode ?? true, withThread);
    } catch (e) {
      alone?.resume();
      undoJournal();
      throw e;
    }
    let outcome: { pause: StopWindow; stepped: number } | undefined;
    try {
      // A thread that cannot leave the rewritten bytes right now (a signal handler returning into them,
      // a thread looping inside) usually can a moment later: let the process run and try again.
      warmUpSavedPcSearch(pid, maps);
      const guarded: GuardedRange[] = m.functions.map((f) => {
        const start = BigInt(f.address) + target.bias;
        return { start, end: start + functionExtent(target.elf, BigInt(f.address)), name: f.qualifiedName };
      });
      const findBlockers =
        options.consistency === "quiescent"
          ? (stopped: StoppedProcess) => findBlockingThreads(stopped, maps, modules, guarded)
          : undefined;
      const deadline = nowNs() + BigInt(options.timeoutMs ?? 5000) * 1_000_000n;
      for (let attempt = 0, quiet = 0; outcome === undefined; attempt++) {
        try {
          outcome = writeWhileStopped(
            pid,
            mem,
            planned.map((w) => ({ ...w, faultPoint: `apply:wrote-${w.role}` })),
            {
              checkSignalFrames: maps,
              ...(alone === undefined ? {} : { stopped: alone }),
              ...(findBlockers === undefined ? {} : { findBlockers }),
              ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
            },
          );
        } catch (e) {
          alone = undefined; // resumed by writeWhileStopped: a retry stops the process anew
          // Quiescence: back off 1, 2, 4 … 64 ms between looks (each look stops every thread) until the deadline.
          if (e instanceof RefusedError && e.code === "THREAD_NOT_QUIESCENT" && nowNs() < deadline) {
            sleepSync(Math.min(64, 2 ** quiet++));
            attempt--;
            continue;
          }
          if (!(e instanceof ProcessError && e.code === "THREAD_IN_PATCH_RANGE") || attempt >= 4) throw e;
          sleepSync(2 ** attempt);
        }
      }
    } catch (e) {
      alone?.resume();
      alone = undefined;
      if (e instanceof GraftError && /rollback incomplete/.test(e.message)) throw e; // journal stays: revert finishes
      unloadCode(withThread, base, layout.size);
      undoJournal();
      throw e;
    }
    const { pause, stepped } = outcome;
    faultPoint("apply:resumed");
    record.state = "applied";
    saveJournal(journal);
    return { ...result, dryRun: false, pause, stepped };
  } finally {
    mem.close();
    lock?.release();
  }
}

type Segments = ReturnType<typeof layoutPatch>["segments"];

/**
 * Symbols this close to the module's start are within rel32 reach of code placed right below it
 * (a patch image is far smaller than the other half of the ±2 GiB).
 */
const REL32_SAFE = 1n << 30n;
const distance = (a: bigint, b: bigint): bigint => (a > b ? a - b : b - a);

/** Runs `work` with a thread stopped that can inject system calls. */
type WithThread = <T>(work: (stopped: StoppedProcess) => T) => T;

/**
 * The whole process stopped, when it has a single thread (undefined otherwise, nothing stopped). A
 * thread it starts meanwhile is stopped too (stopProcess follows clones), which is still correct.
 */
function stopIfSingleThreaded(pid: number, timeoutMs: number | undefined): StoppedProcess | undefined {
  if (listThreads(pid).length !== 1) return undefined;
  return stopProcess(pid, timeoutMs === undefined ? {} : { timeoutMs });
}

/** Stop one quiet thread (the others run on) to inject system calls. */
function withOneThread<T>(pid: number, work: (stopped: StoppedProcess) => T): T {
  const stopped = stopProcess(pid, { only: [pickQuietThread(pid)] });
  try {
    return work(stopped);
  } finally {
    stopped.resume();
  }
}

/**
 * Map the patch code (R-X; rodata R, data RW) and write it through /proc/PID/mem. Nothing can reach
 * this code until a redirect is written, so only the one thread that runs the injected mmap/mprotect
 * is stopped, briefly; the stop-the-world pause is left with the redirect writes alone. The code
 * pages come from a shared file when the process can map it (sharedCodeFile: many processes, one
 * copy in memory); else, and always for rodata (graft's GOT, different in each process) and data,
 * from anonymous memory written through /proc/PID/mem.
 */
function loadCode(
  pid: number,
  mem: ProcessMemory,
  image: Uint8Array,
  base: bigint,
  segments: Segments,
  shared: boolean,
  withThread: WithThread,
): void {
  const textEnd = segments.find((s) => s.kind !== "text")?.offset ?? BigInt(image.length);
  let privateFrom = 0n;
  withThread((stopped) => {
    if (shared && textEnd > 0n && mapSharedText(stopped, mem, image.subarray(0, Number(textEnd)), base))
      privateFrom = textEnd;
    try {
      if (privateFrom < BigInt(image.length)) {
        injectMmap(stopped, {
          addr: base + privateFrom,
          length: BigInt(image.length) - privateFrom,
          prot: privateFrom === 0n ? PROT.PROT_READ | PROT.PROT_EXEC : PROT.PROT_READ,
        });
      }
      for (const s of segments) {
        if (s.kind === "rodata" && privateFrom === 0n)
          injectMprotect(stopped, base + s.offset, s.size, PROT.PROT_READ);
        if (s.kind === "data")
          injectMprotect(stopped, base + s.offset, s.size, PROT.PROT_READ | PROT.PROT_WRITE);
      }
    } catch (e) {
      injectMunmap(stopped, base, BigInt(image.length));
      throw e;
    }
  });
  faultPoint("apply:mapped");
  try {
    if (privateFrom < BigInt(image.length))
      mem.write(base + privateFrom, image.subarray(Number(privateFrom)));
    if (!Buffer.from(mem.read(base, image.length)).equals(image)) {
      throw new GraftError("MEMORY_ACCESS_FAILED", "patch code did not read back as written", {
        subject: `pid ${pid}`,
      });
    }
  } catch (e) {
    unloadCode(withThread, base, BigInt(image.length));
    throw e;
  }
  faultPoint("apply:loaded");
}

/** x86-64 system call numbers and flags for opening the shared code file in the target. */
const SYS_openat = 257;
const SYS_close = 3;
const AT_FDCWD = -100;
const O_RDONLY_CLOEXEC = 0x80000;

/**
 * Map `text` at `base` from graft's shared code file: the stopped thread opens it (the path written
 * on its stack, below the red zone, and put back after), mmaps it R-X MAP_PRIVATE, closes it. False,
 * with nothing left behind, when the target cannot (another mount namespace, a noexec state dir, a
 * seccomp filter): the caller falls back to anonymous memory.
 */
function mapSharedText(stopped: StoppedProcess, mem: ProcessMemory, text: Uint8Array, base: bigint): boolean {
  let path: string;
  try {
    path = sharedCodeFile(text);
  } catch {
    return false;
  }
  const thread = stopped.threads[0];
  if (thread === undefined) return false;
  const name = new TextEncoder().encode(`${path}\0`);
  const scratch = (thread.regs.rsp - 128n - BigInt(name.length) - 64n) & ~15n;
  let saved: Uint8Array;
  try {
    saved = mem.read(scratch, name.length);
    mem.write(scratch, name);
  } catch {
    return false;
  }
  let fd: bigint;
  try {
    fd = injectSyscall(stopped, SYS_openat, [AT_FDCWD, scratch, O_RDONLY_CLOEXEC, 0], { tid: thread.tid });
  } catch {
    return false;
  } finally {
    mem.write(scratch, saved);
  }
  try {
    injectMmap(
      stopped,
      {
        addr: base,
        length: BigInt(text.length),
        prot: PROT.PROT_READ | PROT.PROT_EXEC,
        flags: MAP.MAP_PRIVATE | MAP.MAP_FIXED_NOREPLACE,
        fd: Number(fd),
        offset: 0n,
      },
      { tid: thread.tid },
    );
    return true;
  } catch {
    return false;
  } finally {
    injectSyscall(stopped, SYS_close, [fd], { tid: thread.tid });
  }
}

function unloadCode(withThread: WithThread, base: bigint, size: bigint): void {
  withThread((stopped) => injectMunmap(stopped, base, size));
}

function dataOffsetField(elf: PatchFile["elf"], layout: PatchLayout): { dataOffset?: string } {
  const offset = ownDataOffset(elf, layout);
  return offset === undefined ? {} : { dataOffset: hex(offset) };
}

/**
 * Right below the module, when that is free: the same place relative to the module in every process
 * of a binary, so the linked code (PC-relative calls into the module) is byte-identical across them
 * and one shared code file serves them all (ASLR moves the module, not the distance).
 */
function placeBelowModule(
  maps: readonly { start: bigint; end: bigint }[],
  moduleStart: bigint,
  size: bigint,
): { start: bigint; end: bigint } | undefined {
  const start = moduleStart - size;
  if (start < 0x10000n) return undefined;
  return maps.some((m) => m.start < moduleStart && m.end > start) ? undefined : { start, end: moduleStart };
}
