/**
 * Typed ptrace(2) requests for x86-64 Linux, each throwing a ProcessError that names the request,
 * the thread and the errno. Call them all from one OS thread (see libc.ts).
 */
import { ProcessError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { ERRNO, errnoName, getLibc, lastErrno, setErrno } from "./libc.js";
import { decodeRegisters, encodeRegisters, type Registers, USER_REGS_FIELDS } from "./registers.js";
import { decodeWaitStatus, type WaitStatus } from "./wait-status.js";

/** ptrace request numbers [linux/ptrace.h, asm/ptrace-abi.h]. */
export const PTRACE = {
  PTRACE_PEEKDATA: 2,
  PTRACE_POKEDATA: 5,
  PTRACE_CONT: 7,
  PTRACE_SINGLESTEP: 9,
  PTRACE_GETREGS: 12,
  PTRACE_SETREGS: 13,
  PTRACE_DETACH: 17,
  PTRACE_GETEVENTMSG: 0x4201,
  PTRACE_GETSIGINFO: 0x4202,
  PTRACE_SETSIGINFO: 0x4203,
  PTRACE_SEIZE: 0x4206,
  PTRACE_INTERRUPT: 0x4207,
  PTRACE_GETSIGMASK: 0x420a,
  PTRACE_SETSIGMASK: 0x420b,
} as const;

/** PTRACE_SETOPTIONS / PTRACE_SEIZE option bits [linux/ptrace.h]. */
export const PTRACE_O = {
  PTRACE_O_TRACESYSGOOD: 1,
  PTRACE_O_TRACEFORK: 1 << 1,
  PTRACE_O_TRACEVFORK: 1 << 2,
  PTRACE_O_TRACECLONE: 1 << 3,
  PTRACE_O_TRACEEXEC: 1 << 4,
  PTRACE_O_TRACEEXIT: 1 << 6,
  PTRACE_O_EXITKILL: 1 << 20,
} as const;

/** Event numbers reported in `status >> 16` [linux/ptrace.h]. */
export const PTRACE_EVENT = {
  PTRACE_EVENT_FORK: 1,
  PTRACE_EVENT_VFORK: 2,
  PTRACE_EVENT_CLONE: 3,
  PTRACE_EVENT_EXEC: 4,
  PTRACE_EVENT_VFORK_DONE: 5,
  PTRACE_EVENT_EXIT: 6,
  PTRACE_EVENT_STOP: 128,
} as const;

/** Signal numbers on x86-64 Linux [asm/signal.h] that the process layer reasons about. */
export const SIG = {
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGTRAP: 5,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
} as const;

/** sizeof(siginfo_t) on Linux: the buffer PTRACE_GETSIGINFO fills. */
export const SIGINFO_SIZE = 128;

const WNOHANG = 1;
/** Wait for any kind of child, clone or not: needed for threads [waitpid(2) "__WALL"]. */
const WALL = 0x40000000;

/** Where a ptrace error happened, for ProcessError's subject. */
export interface TraceeRef {
  /** Thread group (process) id, used as the error subject. */
  readonly pid: number;
  /** The thread the request is about. */
  readonly tid: number;
}

/**
 * The ProcessError for a failed request: ESRCH → NO_SUCH_PROCESS (ptrace(2) also returns ESRCH
 * for a tracee that is not stopped), EPERM/EACCES → PERMISSION_DENIED, anything else
 * PTRACE_FAILED with the errno's name.
 */
export function ptraceError(op: string, where: TraceeRef, errno: number): ProcessError {
  const name = errnoName(errno);
  const at = { pid: where.pid, tid: where.tid, op, errno };
  const detail = `${op} on thread ${where.tid} failed: ${name}`;
  if (errno === ERRNO.ESRCH) return new ProcessError("NO_SUCH_PROCESS", detail, at);
  if (errno === ERRNO.EPERM || errno === ERRNO.EACCES) {
    return new ProcessError("PERMISSION_DENIED", detail, {
      ...at,
      hint: "run as root or the process owner; check /proc/sys/kernel/yama/ptrace_scope; another tracer (gdb, strace, graft) may be attached",
    });
  }
  return new ProcessError("PTRACE_FAILED", detail, at);
}

function ref(tid: number, pid: number | undefined): TraceeRef {
  return { pid: pid ?? tid, tid };
}

function check(op: string, where: TraceeRef, result: number | bigint): void {
  if (Number(result) === -1) throw ptraceError(op, where, lastErrno());
}

/**
 * PTRACE_SEIZE: attach to one thread without stopping it and without the SIGSTOP that
 * PTRACE_ATTACH sends (ptrace(2): "Attaching and detaching"), so a parent waiting with WUNTRACED
 * sees nothing. Enables PTRACE_INTERRUPT and PTRACE_EVENT_STOP reporting.
 */
export function seize(tid: number, options = 0, pid?: number): void {
  check("PTRACE_SEIZE", ref(tid, pid), getLibc().ptrace(PTRACE.PTRACE_SEIZE, tid, 0n, BigInt(options)));
}

/**
 * PTRACE_INTERRUPT: make a seized thread stop. It reports a PTRACE_EVENT_STOP (ptrace(2):
 * "PTRACE_EVENT_STOP ... PTRACE_INTERRUPT"), or a signal-delivery-stop if a signal got there first.
 */
export function interrupt(tid: number, pid?: number): void {
  check("PTRACE_INTERRUPT", ref(tid, pid), getLibc().ptrace(PTRACE.PTRACE_INTERRUPT, tid, 0n, 0n));
}

/** PTRACE_CONT: restart a stopped tracee, delivering `signal` if it is in a signal-delivery-stop. */
export function cont(tid: number, signal = 0, pid?: number): void {
  check("PTRACE_CONT", ref(tid, pid), getLibc().ptrace(PTRACE.PTRACE_CONT, tid, 0n, BigInt(signal)));
}

/**
 * PTRACE_DETACH: restart and detach a stopped tracee. A nonzero `signal` is delivered only from a
 * signal-delivery-stop; ptrace(2) "Signal injection and suppression": in other stops it "may
 * simply be ignored".
 */
export function detach(tid: number, signal = 0, pid?: number): void {
  check("PTRACE_DETACH", ref(tid, pid), getLibc().ptrace(PTRACE.PTRACE_DETACH, tid, 0n, BigInt(signal)));
}

/** PTRACE_SINGLESTEP: run one instruction; the tracee then reports a SIGTRAP signal-delivery-stop. */
export function singleStep(tid: number, signal = 0, pid?: number): void {
  check(
    "PTRACE_SINGLESTEP",
    ref(tid, pid),
    getLibc().ptrace(PTRACE.PTRACE_SINGLESTEP, tid, 0n, BigInt(signal)),
  );
}

/** PTRACE_GETREGS: the stopped thread's general-purpose registers. */
export function getRegs(tid: number, pid?: number): Registers {
  const words = new BigUint64Array(USER_REGS_FIELDS.length);
  check("PTRACE_GETREGS", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_GETREGS, tid, 0n, words));
  return decodeRegisters(words);
}

/** PTRACE_SETREGS: replace the stopped thread's general-purpose registers. */
export function setRegs(tid: number, regs: Registers, pid?: number): void {
  check(
    "PTRACE_SETREGS",
    ref(tid, pid),
    getLibc().ptraceBuffer(PTRACE.PTRACE_SETREGS, tid, 0n, encodeRegisters(regs)),
  );
}

/** PTRACE_GETEVENTMSG: the message of the last event stop (the new thread's id for PTRACE_EVENT_CLONE). */
export function getEventMsg(tid: number, pid?: number): bigint {
  const out = new BigUint64Array(1);
  check("PTRACE_GETEVENTMSG", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_GETEVENTMSG, tid, 0n, out));
  return out[0] ?? 0n;
}

/** PTRACE_GETSIGINFO: the raw siginfo_t of the signal that caused the current stop. */
export function getSigInfo(tid: number, pid?: number): Uint8Array {
  const out = new Uint8Array(SIGINFO_SIZE);
  check("PTRACE_GETSIGINFO", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_GETSIGINFO, tid, 0n, out));
  return out;
}

/**
 * PTRACE_SETSIGINFO: replace the siginfo_t of the current signal-delivery-stop; restarting with the
 * same signal number then delivers exactly this siginfo (kernel ptrace_signal keeps it when
 * si_signo matches).
 */
export function setSigInfo(tid: number, info: Uint8Array, pid?: number): void {
  check("PTRACE_SETSIGINFO", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_SETSIGINFO, tid, 0n, info));
}

/** PTRACE_GETSIGMASK (Linux 3.11+): the thread's blocked-signal mask, bit n−1 for signal n. */
export function getSigMask(tid: number, pid?: number): bigint {
  const mask = new BigUint64Array(1);
  check("PTRACE_GETSIGMASK", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_GETSIGMASK, tid, 8n, mask));
  return mask[0] ?? 0n;
}

/** PTRACE_SETSIGMASK: replace the blocked-signal mask (the kernel never blocks SIGKILL or SIGSTOP). */
export function setSigMask(tid: number, mask: bigint, pid?: number): void {
  const words = new BigUint64Array([BigInt.asUintN(64, mask)]);
  check("PTRACE_SETSIGMASK", ref(tid, pid), getLibc().ptraceBuffer(PTRACE.PTRACE_SETSIGMASK, tid, 8n, words));
}

/**
 * PTRACE_PEEKDATA: one 8-byte word. Its −1 return is ambiguous, so errno is cleared first and
 * checked after (ptrace(2) NOTES); prefer readMemory.
 */
export function peekData(tid: number, addr: bigint, pid?: number): bigint {
  setErrno(0);
  const word = getLibc().ptrace(PTRACE.PTRACE_PEEKDATA, tid, addr, 0n);
  if (Number(word) === -1) {
    const errno = lastErrno();
    if (errno !== 0) throw ptraceError(`PTRACE_PEEKDATA ${hex(addr)}`, ref(tid, pid), errno);
  }
  return BigInt.asUintN(64, BigInt(word));
}

/** PTRACE_POKEDATA: write one 8-byte word, ignoring page protections (the fallback writer). */
export function pokeData(tid: number, addr: bigint, word: bigint, pid?: number): void {
  check(
    `PTRACE_POKEDATA ${hex(addr)}`,
    ref(tid, pid),
    getLibc().ptrace(PTRACE.PTRACE_POKEDATA, tid, addr, BigInt.asUintN(64, word)),
  );
}

const statusWord = new Int32Array(1);

/**
 * waitpid(tid, __WALL): the next state change of one tracee thread, or undefined when `noHang`
 * and nothing is pending. Throws NO_SUCH_PROCESS (errno ECHILD) when the thread is not a tracee
 * of the calling thread or was already reaped. EINTR is retried.
 */
export function waitThread(
  tid: number,
  options: { noHang?: boolean; pid?: number } = {},
): WaitStatus | undefined {
  const flags = WALL | (options.noHang ? WNOHANG : 0);
  for (;;) {
    const r = getLibc().waitpid(tid, statusWord, flags);
    if (r === tid) return decodeWaitStatus(statusWord[0] ?? 0);
    if (r === 0) return undefined;
    const errno = lastErrno();
    if (errno === ERRNO.EINTR) continue;
    const where = ref(tid, options.pid);
    if (errno === ERRNO.ECHILD) {
      throw new ProcessError("NO_SUCH_PROCESS", `thread ${tid} is gone or not traced by graft`, {
        ...where,
        op: "waitpid",
        errno,
      });
    }
    throw ptraceError("waitpid", where, errno);
  }
}
