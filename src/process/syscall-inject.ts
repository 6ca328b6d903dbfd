/**
 * Making a stopped thread run one system call on graft's behalf (mmap, mprotect, munmap), with no
 * byte of the target changed and the thread's state restored exactly.
 *
 * How (the libcare/upatch technique, with the fixes their issue trackers call for):
 * - Reuse a `syscall` instruction (0f 05) already in an executable mapping — the vDSO always has
 *   one on x86-64 (its clock_gettime/gettimeofday fallbacks) — rather than writing one at RIP.
 *   Any 0f 05 pair works, even inside a longer instruction: the CPU decodes from RIP.
 * - Set rip = that address, rax = nr, args in rdi rsi rdx r10 r8 r9 (syscall(2) x86-64 ABI), and
 *   orig_rax = −1. A thread stopped inside a blocking call (read, nanosleep) shows rax = −ERESTARTSYS
 *   (−512) or −ERESTART_RESTARTBLOCK (−516) and orig_rax = its syscall number; the kernel's restart
 *   logic (arch_do_signal_or_restart) runs on the way back to user mode and would rewind RIP and
 *   reload rax if orig_rax stayed ≥ 0 (libpulp issue #123 leaked −512 this way).
 * - Block every signal for the duration (PTRACE_SETSIGMASK), so no signal can interrupt the step
 *   and be taken out of the kernel's queue: signals that arrive meanwhile stay pending with their
 *   siginfo and are delivered after resume. (Re-sending them with tgkill would rewrite si_code and
 *   si_pid, which a target that checks siginfo notices.) The mask is put back afterwards.
 * - PTRACE_SINGLESTEP: the thread executes the syscall and reports a SIGTRAP stop right after it.
 * - Read rax, then PTRACE_SETREGS the saved registers — orig_rax and rax included — so when the
 *   thread resumes, the restart logic sees the interrupted call again and restarts it: a read()
 *   on a pipe keeps waiting for data instead of failing with EINTR.
 * Only general registers are touched: the kernel's syscall path saves no FP/vector state to
 * user-visible registers, so XSAVE state need not be saved.
 */
import { readFileSync } from "node:fs";
import { ProcessError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { ERRNO, errnoName } from "./libc.js";
import { readMaps } from "./maps.js";
import { readMemory } from "./memory.js";
import { nowNs, waitThreadUntil } from "./poll-wait.js";
import {
  getRegs,
  getSigMask,
  interrupt,
  PTRACE_EVENT,
  SIG,
  setRegs,
  setSigMask,
  singleStep,
} from "./ptrace.js";
import type { Registers } from "./registers.js";
import { leaveTrapStop } from "./step-out.js";
import type { StoppedProcess } from "./stop-the-world.js";

/** x86-64 system call numbers used here [arch/x86/entry/syscalls/syscall_64.tbl]. */
export const SYS = { mmap: 9, mprotect: 10, munmap: 11 } as const;

/** mmap(2)/mprotect(2) protection bits [asm-generic/mman-common.h]. */
export const PROT = { PROT_NONE: 0, PROT_READ: 1, PROT_WRITE: 2, PROT_EXEC: 4 } as const;

/** mmap(2) flags [asm-generic/mman-common.h, linux/mman.h]. */
export const MAP = {
  MAP_SHARED: 0x01,
  MAP_PRIVATE: 0x02,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  MAP_FIXED_NOREPLACE: 0x100000,
} as const;

/** Options of injectSyscall. */
export interface InjectOptions {
  /** Thread that runs the call; default the main thread if stopped, else the lowest tid. */
  readonly tid?: number;
  /** Give up after this long (default 1000 ms). */
  readonly timeoutMs?: number;
}

const gadgets = new WeakMap<StoppedProcess, bigint>();
const SYSCALL_INSN = [0x0f, 0x05] as const;
const ORIG_RAX_NONE = (1n << 64n) - 1n;
const ALL_SIGNALS = (1n << 64n) - 1n;
/** Largest -errno a raw system call returns (include/linux/err.h MAX_ERRNO). */
const MAX_ERRNO = 4095n;

/**
 * Run system call `nr` with up to six arguments in a thread of a stopped process and return its
 * raw result (rax, signed). A result in [−4095, −1] throws SYSCALL_INJECTION_FAILED naming the
 * errno; the thread's registers are restored either way.
 */
export function injectSyscall(
  stopped: StoppedProcess,
  nr: number,
  args: readonly (bigint | number)[] = [],
  options: InjectOptions = {},
): bigint {
  const pid = stopped.pid;
  const tid = options.tid ?? defaultThread(stopped);
  const control = stopped.control(tid);
  const saved = control.regs ?? getRegs(tid, pid);
  control.regs = saved;
  const gadget = syscallGadget(stopped);
  const arg = (i: number): bigint => BigInt.asUintN(64, BigInt(args[i] ?? 0));
  const call: Registers = {
    ...saved,
    rip: gadget,
    rax: BigInt(nr),
    orig_rax: ORIG_RAX_NONE,
    rdi: arg(0),
    rsi: arg(1),
    rdx: arg(2),
    r10: arg(3),
    r8: arg(4),
    r9: arg(5),
  };
  control.mask ??= getSigMask(tid, pid);
  const mask = control.mask;
  setSigMask(tid, ALL_SIGNALS, pid);
  let after: Registers;
  try {
    setRegs(tid, call, pid);
    after = stepOverSyscall(stopped, tid, gadget, options.timeoutMs ?? 1000);
  } finally {
    setRegs(tid, saved, pid);
    setSigMask(tid, mask, pid);
  }
  // The thread now sits in the SIGTRAP signal-delivery-stop of the step. With a held signal it stays
  // there: PTRACE_DETACH can carry that signal (with PTRACE_SETSIGINFO, see StoppedProcess.resume).
  // Otherwise it trades the stop for a PTRACE_EVENT_STOP, so a graft killed now cannot leave the
  // kernel to deliver the SIGTRAP and kill the target.
  control.inSignalStop = true;
  if (control.held === undefined) leaveTrapStop(stopped, tid, nowNs() + 1_000_000_000n);
  const result = BigInt.asIntN(64, after.rax);
  if (result < 0n && result >= -MAX_ERRNO) {
    const errno = Number(-result);
    throw new ProcessError(
      "SYSCALL_INJECTION_FAILED",
      `system call ${nr} injected into thread ${tid} failed: ${errnoName(errno)}`,
      { pid, tid, op: `syscall ${nr}`, errno },
    );
  }
  return result;
}

/**
 * Single-step until the thread has executed the syscall at `gadget` (its RIP is gadget + 2 in a
 * SIGTRAP stop). Stops met on the way are absorbed: a pending PTRACE_INTERRUPT or group-stop
 * (PTRACE_EVENT_STOP, reported before the instruction runs), or a signal that cannot be blocked
 * (SIGSTOP), which is kept in the thread's `extra` list for resume() to send again.
 */
function stepOverSyscall(stopped: StoppedProcess, tid: number, gadget: bigint, timeoutMs: number): Registers {
  const pid = stopped.pid;
  const control = stopped.control(tid);
  const deadline = nowNs() + BigInt(Math.round(timeoutMs * 1e6));
  for (let attempt = 0; attempt < 64; attempt++) {
    singleStep(tid, 0, pid);
    let status = waitThreadUntil(tid, deadline, pid);
    if (status === undefined) {
      // The call blocks (mmap behind a held mmap_lock?). Pull the thread back into a stop so its
      // registers can be restored; the call's effect, if any, stands.
      interrupt(tid, pid);
      status = waitThreadUntil(tid, nowNs() + 1_000_000_000n, pid);
      if (status === undefined) {
        throw new ProcessError(
          "SYSCALL_INJECTION_FAILED",
          `thread ${tid} did not come back from an injected system call`,
          {
            pid,
            tid,
            op: "PTRACE_SINGLESTEP",
            hint: "the thread is stuck in the kernel; graft detaches it as soon as it stops",
          },
        );
      }
    }
    if (status.kind === "exited" || status.kind === "signaled") {
      throw new ProcessError("NO_SUCH_PROCESS", `thread ${tid} died during an injected system call`, {
        pid,
        tid,
        op: "PTRACE_SINGLESTEP",
      });
    }
    if (status.kind !== "stopped") continue;
    const regs = getRegs(tid, pid);
    if (status.event === 0 && status.signal === SIG.SIGTRAP && regs.rip === gadget + 2n) return regs;
    if (status.event === 0 && status.signal !== SIG.SIGTRAP) control.extra.push(status.signal);
    if (status.event !== 0 && status.event !== PTRACE_EVENT.PTRACE_EVENT_STOP) continue;
    if (regs.rip !== gadget && regs.rip !== gadget + 2n) {
      throw new ProcessError(
        "SYSCALL_INJECTION_FAILED",
        `thread ${tid} left the syscall gadget (rip ${hex(regs.rip)})`,
        {
          pid,
          tid,
          op: "PTRACE_SINGLESTEP",
        },
      );
    }
    if (regs.rip === gadget + 2n) return regs;
  }
  throw new ProcessError(
    "SYSCALL_INJECTION_FAILED",
    `thread ${tid} kept stopping before the injected system call`,
    {
      pid,
      tid,
      op: "PTRACE_SINGLESTEP",
    },
  );
}

function defaultThread(stopped: StoppedProcess): number {
  const tids = stopped.threads.map((t) => t.tid);
  if (tids.includes(stopped.pid)) return stopped.pid;
  const first = tids[0];
  if (first === undefined)
    throw new ProcessError("NO_SUCH_PROCESS", "no stopped thread", { pid: stopped.pid, op: "inject" });
  return first;
}

/**
 * Where the last search found a `syscall` in a vDSO, as an offset from its start: every process
 * on one kernel maps the same vDSO image, so in a fleet of processes the next one is checked there
 * first (two bytes read) instead of searched through /proc/PID/maps.
 */
let vdsoGadgetOffset: bigint | undefined;
const AT_SYSINFO_EHDR = 33n;

/** The vDSO's address from the process's auxiliary vector (AT_SYSINFO_EHDR), if it has one. */
function findVdsoStart(pid: number): bigint | undefined {
  let auxv: Buffer;
  try {
    auxv = readFileSync(`/proc/${pid}/auxv`);
  } catch {
    return undefined;
  }
  for (let i = 0; i + 16 <= auxv.length; i += 16) {
    const type = auxv.readBigUInt64LE(i);
    if (type === 0n) break;
    if (type === AT_SYSINFO_EHDR) return auxv.readBigUInt64LE(i + 8);
  }
  return undefined;
}

/** The syscall at the remembered vDSO offset, if this process's vDSO has one there. */
function knownVdsoGadget(stopped: StoppedProcess): bigint | undefined {
  if (vdsoGadgetOffset === undefined) return undefined;
  const vdso = findVdsoStart(stopped.memoryPid);
  if (vdso === undefined || vdso === 0n) return undefined;
  const at = vdso + vdsoGadgetOffset;
  try {
    const bytes = readMemory(stopped.memoryPid, at, 2);
    return bytes[0] === SYSCALL_INSN[0] && bytes[1] === SYSCALL_INSN[1] ? at : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The address of a `syscall` instruction in the target: the vDSO first, then any executable
 * file mapping (a static binary without a vDSO still has one in its own text). Cached per stop.
 */
export function syscallGadget(stopped: StoppedProcess): bigint {
  const cached = gadgets.get(stopped) ?? knownVdsoGadget(stopped);
  if (cached !== undefined) {
    gadgets.set(stopped, cached);
    return cached;
  }
  const maps = readMaps(stopped.memoryPid).filter((m) => m.perms.x && m.path !== "[vsyscall]");
  const ordered = [...maps.filter((m) => m.path === "[vdso]"), ...maps.filter((m) => m.path !== "[vdso]")];
  for (const m of ordered) {
    const size = m.end - m.start;
    const chunk = 1n << 20n;
    for (let off = 0n; off < size; off += chunk) {
      // One byte of overlap so a pair split across two chunks is still found.
      const rest = size - off;
      const len = Number(rest < chunk + 1n ? rest : chunk + 1n);
      let bytes: Uint8Array;
      try {
        bytes = readMemory(stopped.memoryPid, m.start + off, len);
      } catch {
        break;
      }
      for (let i = 0; i + 1 < bytes.length; i++) {
        if (bytes[i] === SYSCALL_INSN[0] && bytes[i + 1] === SYSCALL_INSN[1]) {
          const at = m.start + off + BigInt(i);
          gadgets.set(stopped, at);
          if (m.path === "[vdso]") vdsoGadgetOffset = at - m.start;
          return at;
        }
      }
    }
  }
  throw new ProcessError("SYSCALL_INJECTION_FAILED", "no syscall instruction in any executable mapping", {
    pid: stopped.pid,
    op: "find syscall instruction",
  });
}

/** What to map with injectMmap. */
export interface MmapRequest {
  readonly length: bigint;
  /** PROT_* bits; default PROT_READ | PROT_EXEC. */
  readonly prot?: number;
  /** MAP_* bits; default MAP_PRIVATE | MAP_ANONYMOUS, plus MAP_FIXED_NOREPLACE when `addr` is given. */
  readonly flags?: number;
  /** Where to map; with MAP_FIXED_NOREPLACE the mapping lands exactly there or the call fails. */
  readonly addr?: bigint;
  readonly fd?: number;
  readonly offset?: bigint;
}

/**
 * mmap(2) in the target; returns the mapping's address. With MAP_FIXED_NOREPLACE and a kernel that
 * ignores it (< 4.17: the address becomes a hint), a mapping placed elsewhere is unmapped again and
 * reported as SYSCALL_INJECTION_FAILED (EEXIST).
 */
export function injectMmap(
  stopped: StoppedProcess,
  request: MmapRequest,
  options: InjectOptions = {},
): bigint {
  const flags =
    request.flags ??
    MAP.MAP_PRIVATE | MAP.MAP_ANONYMOUS | (request.addr === undefined ? 0 : MAP.MAP_FIXED_NOREPLACE);
  const prot = request.prot ?? PROT.PROT_READ | PROT.PROT_EXEC;
  const addr = request.addr ?? 0n;
  const result = BigInt.asUintN(
    64,
    injectSyscall(
      stopped,
      SYS.mmap,
      [addr, request.length, prot, flags, request.fd ?? -1, request.offset ?? 0n],
      options,
    ),
  );
  if ((flags & MAP.MAP_FIXED_NOREPLACE) !== 0 && result !== addr) {
    injectMunmap(stopped, result, request.length, options);
    throw new ProcessError("SYSCALL_INJECTION_FAILED", `mmap placed ${hex(result)} instead of ${hex(addr)}`, {
      pid: stopped.pid,
      op: "mmap",
      errno: ERRNO.EEXIST,
    });
  }
  return result;
}

/** mprotect(2) in the target. */
export function injectMprotect(
  stopped: StoppedProcess,
  addr: bigint,
  length: bigint,
  prot: number,
  options: InjectOptions = {},
): void {
  injectSyscall(stopped, SYS.mprotect, [addr, length, prot], options);
}

/** munmap(2) in the target. */
export function injectMunmap(
  stopped: StoppedProcess,
  addr: bigint,
  length: bigint,
  options: InjectOptions = {},
): void {
  injectSyscall(stopped, SYS.munmap, [addr, length], options);
}
