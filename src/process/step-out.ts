/**
 * Moving a stopped thread out of bytes that are about to be rewritten. A thread whose RIP lies
 * strictly inside a rewritten range would resume in the middle of a new instruction; one whose RIP
 * is at the range's first byte is fine (it executes the new instruction whole). Single-stepping
 * such a thread a few instructions always leaves short ranges (a 2–14-byte entry), unless it loops
 * inside them or blocks in a system call, which the bound and the deadline catch.
 */
import { ProcessError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { findMapping, type Mapping } from "./maps.js";
import { readMemory } from "./memory.js";
import { nowNs, waitThreadUntil } from "./poll-wait.js";
import { cont, getRegs, interrupt, PTRACE_EVENT, SIG, singleStep } from "./ptrace.js";
import type { StoppedProcess } from "./stop-the-world.js";

/** A byte range [start, end). */
export interface ByteRange {
  readonly start: bigint;
  readonly end: bigint;
}

const strictlyInside = (rip: bigint, ranges: readonly ByteRange[]): ByteRange | undefined =>
  ranges.find((r) => rip > r.start && rip < r.end);

/** Options of stepThreadsOutOf. */
export interface StepOutOptions {
  /** Instructions a thread may execute before graft gives up on it (default 64). */
  readonly maxSteps?: number;
  /** Total time allowed (default 200 ms). */
  readonly timeoutMs?: number;
}

/**
 * Single-step every thread whose RIP is strictly inside one of `ranges` until it is not. Returns how
 * many instructions were stepped in all. Throws THREAD_IN_PATCH_RANGE naming the thread and address
 * when a thread cannot be moved out; the caller then undoes its work and resumes the process.
 */
export function stepThreadsOutOf(
  stopped: StoppedProcess,
  ranges: readonly ByteRange[],
  options: StepOutOptions = {},
): number {
  const pid = stopped.pid;
  const maxSteps = options.maxSteps ?? 64;
  const deadline = nowNs() + BigInt(Math.round((options.timeoutMs ?? 200) * 1e6));
  let stepped = 0;
  for (const thread of stopped.threads) {
    let range = strictlyInside(thread.regs.rip, ranges);
    if (range === undefined) continue;
    const control = stopped.control(thread.tid);
    for (let step = 0; range !== undefined; step++) {
      if (step >= maxSteps) {
        throw new ProcessError(
          "THREAD_IN_PATCH_RANGE",
          `thread ${thread.tid} stays inside ${hex(range.start)}..${hex(range.end)} after ${maxSteps} instructions`,
          {
            pid,
            tid: thread.tid,
            op: "PTRACE_SINGLESTEP",
          },
        );
      }
      singleStep(thread.tid, 0, pid);
      let status = waitThreadUntil(thread.tid, deadline, pid);
      if (status === undefined) {
        // Blocked in a system call inside the range: bring it back and give up.
        interrupt(thread.tid, pid);
        status = waitThreadUntil(thread.tid, nowNs() + 1_000_000_000n, pid);
        control.regs = getRegs(thread.tid, pid);
        throw new ProcessError(
          "THREAD_IN_PATCH_RANGE",
          `thread ${thread.tid} blocks inside ${hex(range.start)}..${hex(range.end)}`,
          {
            pid,
            tid: thread.tid,
            op: "PTRACE_SINGLESTEP",
          },
        );
      }
      if (status.kind === "exited" || status.kind === "signaled") break;
      if (status.kind !== "stopped") continue;
      if (status.event === 0 && status.signal !== SIG.SIGTRAP) control.extra.push(status.signal);
      if (status.event !== 0 && status.event !== PTRACE_EVENT.PTRACE_EVENT_STOP) continue;
      // The registers changed: later injections restore these, not the ones from the stop.
      control.regs = getRegs(thread.tid, pid);
      control.inSignalStop = status.event === 0;
      stepped++;
      range = strictlyInside(control.regs.rip, ranges);
      if (range === undefined && control.inSignalStop && control.held === undefined) {
        leaveTrapStop(stopped, thread.tid, deadline);
        range = strictlyInside(control.regs!.rip, ranges);
      }
    }
  }
  return stepped;
}

/**
 * A stepped thread sits in the SIGTRAP signal-delivery-stop of its step. If graft died now, the kernel
 * would deliver that SIGTRAP on detach and kill the target. Trade it for a PTRACE_EVENT_STOP, where a
 * vanished tracer just lets the thread run: queue an interrupt, resume with the SIGTRAP suppressed, and
 * wait for the trap the interrupt reports before the thread returns to user mode.
 */
export function leaveTrapStop(stopped: StoppedProcess, tid: number, deadline: bigint): void {
  const pid = stopped.pid;
  const control = stopped.control(tid);
  interrupt(tid, pid);
  cont(tid, 0, pid);
  for (let i = 0; i < 16; i++) {
    const status = waitThreadUntil(tid, deadline + 1_000_000_000n, pid);
    if (status === undefined || status.kind !== "stopped") break;
    if (status.event === PTRACE_EVENT.PTRACE_EVENT_STOP) {
      control.inSignalStop = false;
      control.regs = getRegs(tid, pid);
      return;
    }
    // A signal that got there first: keep it for resume and go on to an interrupt stop. That trap
    // consumed the pending interrupt (any ptrace trap does), so queue another before continuing.
    if (status.event === 0 && status.signal !== SIG.SIGTRAP) control.extra.push(status.signal);
    interrupt(tid, pid);
    cont(tid, 0, pid);
  }
  control.regs = getRegs(tid, pid);
}

/** Bytes of each thread's stack, up from its stack pointer, searched for interrupted program counters. */
const SIGNAL_FRAME_WINDOW = 16n * 1024n;

/**
 * A thread inside a signal handler has the program counter it was interrupted at saved in the
 * signal frame on its stack (or sigaltstack), and sigreturn resumes there. If that address is strictly
 * inside a range about to be rewritten (e.g. the second of two 1-byte sled NOPs) the thread would
 * resume in the middle of the new jump. Look for such words just above every thread's stack pointer
 * (the frame and the handler's own frames sit there); a match is reported, never stepped: the caller
 * lets the process run a moment and tries again.
 */
export function findSavedPcInside(
  stopped: StoppedProcess,
  ranges: readonly ByteRange[],
  maps: readonly Mapping[],
): { tid: number; address: bigint } | undefined {
  // Every address strictly inside a range, as the 8 bytes a stack slot would hold: ranges are a few
  // bytes long, and a native Buffer search per value is far cheaper than a JS loop over each word.
  const needles: { address: bigint; bytes: Buffer }[] = [];
  for (const r of ranges) {
    for (let a = r.start + 1n; a < r.end; a++) {
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64LE(a);
      needles.push({ address: a, bytes });
    }
  }
  if (needles.length === 0) return undefined;
  for (const thread of stopped.threads) {
    const rsp = thread.regs.rsp & ~7n;
    const stack = findMapping(maps, rsp);
    if (stack === undefined) continue;
    const end = stack.end - rsp > SIGNAL_FRAME_WINDOW ? rsp + SIGNAL_FRAME_WINDOW : stack.end;
    let bytes: Uint8Array;
    try {
      bytes = readMemory(stopped.memoryPid, rsp, Number(end - rsp));
    } catch {
      continue;
    }
    const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const n of needles) {
      for (let at = haystack.indexOf(n.bytes); at >= 0; at = haystack.indexOf(n.bytes, at + 1)) {
        if (at % 8 === 0) return { tid: thread.tid, address: n.address };
      }
    }
  }
  return undefined;
}

/**
 * Run the stack-reading path once before the process is stopped: its first use in a fresh graft
 * (JIT, buffers) costs ~1 ms, which would otherwise land inside the stop-the-world pause.
 */
export function warmUpSavedPcSearch(pid: number, maps: readonly Mapping[]): void {
  const stack = maps.find((m) => m.path === "[stack]");
  if (stack === undefined) return;
  try {
    const bytes = readMemory(pid, stack.end - 4096n, 4096);
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(Buffer.alloc(8, 0xff));
  } catch {}
}
