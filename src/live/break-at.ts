/**
 * `graft break`: stop the thread that reaches a function, show it, let it go on — the way a debugger
 * does, with the process's other threads running throughout.
 *
 * 1. PTRACE_SEIZE every thread (PTRACE_O_TRACECLONE: threads born later are traced too). Seizing
 *    stops nothing.
 * 2. Write int3 over the first byte of the function's hook site (the patch site `graft check` found:
 *    a sled NOP or the fentry call; else the entry). A one-byte store of 0xcc over an instruction's
 *    first byte is the one cross-modification that needs no synchronisation (Intel erratum 54
 *    discussion; Linux text_poke_bp starts the same way), so the threads need not be stopped.
 * 3. Poll the threads (waitpid WNOHANG): a SIGTRAP stop with rip = site + 1 is a hit. Other signals
 *    are delivered as they come, new threads continued.
 * 4. On a hit, read the registers, the arguments (rdi, rsi, rdx, rcx, r8, r9) and a backtrace
 *    (process/unwind.ts), report, and continue: when the replaced byte was a one-byte NOP (gcc's sled), the
 *    thread just goes on at site + 1 (skipping a NOP is exact, and the trap stays armed); otherwise
 *    the original byte is put back, the thread single-steps it and the int3 is re-armed (another
 *    thread passing meanwhile is not stopped).
 * 5. After `count` hits (or when asked to stop): the original byte goes back, every thread is
 *    interrupted — one that trapped meanwhile is moved back to the site in step mode — and detached.
 */
import { checkElf } from "../analysis/check.js";
import { listFunctions } from "../analysis/functions.js";
import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { readMaps } from "../process/maps.js";
import { openMemory } from "../process/memory.js";
import { listModules } from "../process/modules.js";
import { nowNs, waitThreadUntil } from "../process/poll-wait.js";
import { cont, getRegs, PTRACE_O, SIG, seize, setRegs, singleStep } from "../process/ptrace.js";
import type { Registers } from "../process/registers.js";
import { pollSignalStops } from "../process/signal-stops.js";
import { listThreads } from "../process/threads.js";
import { Unwinder } from "../process/unwind.js";
import { loadMainModule } from "./main-module.js";
import { releaseThreads } from "./release-threads.js";
import { lockTarget } from "./target-lock.js";

/** One frame of a backtrace. */
export interface Frame {
  readonly address: bigint;
  /** `function+0x12`, `libc.so.6+0x2a1ca`, or undefined when unknown. */
  readonly symbol: string | undefined;
}

export interface BreakHit {
  readonly hit: number;
  readonly tid: number;
  readonly function: string;
  readonly address: bigint;
  readonly registers: Registers;
  /** rdi, rsi, rdx, rcx, r8, r9: the first six integer/pointer arguments (SysV x86-64). */
  readonly args: readonly bigint[];
  /** Innermost first: the function, then every caller the unwinder found (process/unwind.ts). */
  readonly backtrace: readonly Frame[];
}

export interface BreakOptions {
  /** Stop after this many hits (default 1). */
  readonly count?: number;
  /** Called with each hit while the thread is stopped; it resumes when the promise settles. */
  readonly onHit: (hit: BreakHit) => void | Promise<void>;
  /** Called once the breakpoint is armed. */
  readonly onArmed?: (address: bigint, mode: BreakResult["mode"]) => void;
  /** Polled between waits: true ends the session early. */
  readonly shouldStop?: () => boolean;
}

export interface BreakResult {
  readonly function: string;
  readonly address: bigint;
  readonly mode: "skip-nop" | "step";
  readonly hits: number;
  readonly restored: boolean;
}

const INT3 = 0xcc;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Name addresses: the main module's functions, other modules as `file+offset`. */
function symbolizer(pid: number, mainFunctions: { name: string; address: bigint; size: bigint }[]) {
  const sorted = [...mainFunctions].sort((a, b) => (a.address < b.address ? -1 : 1));
  const modules = listModules(readMaps(pid));
  return (address: bigint): string | undefined => {
    let lo = 0;
    let hi = sorted.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const f = sorted[mid]!;
      if (address < f.address) hi = mid - 1;
      else if (address >= f.address + (f.size === 0n ? 1n : f.size)) lo = mid + 1;
      else return address === f.address ? f.name : `${f.name}+${hex(address - f.address)}`;
    }
    const m = modules.find((x) => address >= x.start && address < x.end);
    return m === undefined ? undefined : `${m.path.split("/").pop()}+${hex(address - m.start)}`;
  };
}

/**
 * The thread's frames, innermost first, through the process layer's unwinder (CFI, frame pointers
 * where there is none). The thread trapped on the int3 at the function's first byte, so it is
 * unwound as standing at that byte: nothing of the function's frame exists yet. Built per hit, since
 * the process may have loaded modules since the last one.
 */
function backtrace(pid: number, regs: Registers, name: (a: bigint) => string | undefined): Frame[] {
  const unwinder = new Unwinder(pid, readMaps(pid));
  try {
    return unwinder
      .unwind({ ...regs, rip: regs.rip - 1n })
      .frames.map((f) => ({ address: f.pc, symbol: name(f.pc) }));
  } finally {
    unwinder.close();
  }
}

/** Break at `functionName` in process `pid` (see the file comment). */
export async function breakAt(
  pid: number,
  functionName: string,
  options: BreakOptions,
): Promise<BreakResult> {
  const loaded = loadMainModule(pid);
  const arch = getLiveArchForMachine(loaded.elf.header.e_machine, loaded.module.path);
  const report = checkElf(loaded.elf, arch, { functionGlob: functionName });
  const fn = report.functions.find((f) => f.name === functionName || f.aliases.includes(functionName));
  if (fn === undefined) {
    throw new GraftError("UNKNOWN_SYMBOL", `no function ${functionName} in ${loaded.module.path}`, {
      subject: `pid ${pid}`,
    });
  }
  // The hook site's first byte when there is one (a NOP there can simply be skipped), else the entry.
  const site = fn.sites.find((s) => s.problems.length === 0 && (s.kind === "sled" || s.kind === "fentry"));
  const link = site?.writes.find((w) => w.role === "entry")?.address ?? fn.address;
  const address = link + loaded.bias;
  const name = symbolizer(
    pid,
    listFunctions(loaded.elf, arch).map((f) => ({
      name: f.name,
      address: f.address + loaded.bias,
      size: f.size,
    })),
  );
  const count = options.count ?? 1;
  const lock = lockTarget(pid);
  const mem = openMemory(pid);
  const threads = new Set<number>();
  let original: number | undefined;
  let hits = 0;
  let mode: BreakResult["mode"] = "step";
  try {
    for (const tid of listThreads(pid)) {
      seize(tid, PTRACE_O.PTRACE_O_TRACECLONE, pid);
      threads.add(tid);
    }
    original = mem.read(address, 1)[0]!;
    if (original === INT3) {
      throw new GraftError("TRACE_SITE_BUSY", `${hex(address)} already holds a breakpoint`, {
        subject: `pid ${pid}`,
      });
    }
    mode = original === 0x90 ? "skip-nop" : "step";
    mem.write(address, Uint8Array.of(INT3));
    options.onArmed?.(address, mode);
    while (hits < count && options.shouldStop?.() !== true) {
      const round = pollSignalStops(pid, threads);
      for (const { tid, signal } of round.stops) {
        const regs = getRegs(tid, pid);
        if (signal !== SIG.SIGTRAP || regs.rip !== address + 1n) {
          cont(tid, signal, pid);
          continue;
        }
        hits++;
        await options.onHit({
          hit: hits,
          tid,
          function: fn.name,
          address,
          registers: regs,
          args: [regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9],
          backtrace: backtrace(pid, regs, name),
        });
        if (mode === "step") {
          mem.write(address, Uint8Array.of(original));
          setRegs(tid, { ...regs, rip: address }, pid);
          singleStep(tid, 0, pid);
          const stepped = waitThreadUntil(tid, nowNs() + 2_000_000_000n, pid);
          if (stepped?.kind !== "stopped") {
            threads.delete(tid);
            continue;
          }
          if (hits < count) mem.write(address, Uint8Array.of(INT3));
        }
        cont(tid, 0, pid);
      }
      if (round.idle) await sleep(2);
    }
    return { function: fn.name, address, mode, hits, restored: true };
  } finally {
    try {
      if (original !== undefined) mem.write(address, Uint8Array.of(original));
    } finally {
      releaseThreads(pid, threads, (tid, regs) => {
        if (regs.rip !== address + 1n) return false;
        // It trapped before the byte went back: in step mode, run the restored instruction.
        if (mode === "step") setRegs(tid, { ...regs, rip: address }, pid);
        return true;
      });
      mem.close();
      lock.release();
    }
  }
}
