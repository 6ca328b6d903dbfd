import { nowNs, waitThreadUntil } from "../process/poll-wait.js";
import { cont, detach, getRegs, interrupt, PTRACE_EVENT, SIG } from "../process/ptrace.js";
import type { Registers } from "../process/registers.js";

/**
 * Interrupt and detach threads that graft kept seized and running (breakpoints, probe traps). A
 * thread that reports a SIGTRAP on the way is shown to `onTrap` (which moves it off a trap that is
 * gone, and returns true when it was one of graft's); any other signal is let through. Threads that
 * exit meanwhile are skipped.
 */
export function releaseThreads(
  pid: number,
  threads: Iterable<number>,
  onTrap: (tid: number, regs: Registers) => boolean,
): void {
  const live: number[] = [];
  for (const tid of threads) {
    try {
      interrupt(tid, pid);
      live.push(tid);
    } catch {
      // exited
    }
  }
  for (const tid of live) {
    try {
      for (let i = 0; i < 16; i++) {
        const status = waitThreadUntil(tid, nowNs() + 1_000_000_000n, pid);
        if (status === undefined || status.kind !== "stopped") break;
        if (status.event === PTRACE_EVENT.PTRACE_EVENT_STOP) break;
        let signal = status.event === 0 ? status.signal : 0;
        if (status.event === 0 && status.signal === SIG.SIGTRAP && onTrap(tid, getRegs(tid, pid))) signal = 0;
        // Let it happen, then stop again.
        cont(tid, signal, pid);
        interrupt(tid, pid);
      }
      detach(tid, 0, pid);
    } catch {
      // The thread exited.
    }
  }
}
