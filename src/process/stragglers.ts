/**
 * Threads graft seized but could not stop in time. ptrace(2) "Detaching": PTRACE_DETACH needs the
 * tracee stopped, so a thread stuck in uninterruptible sleep (a vfork parent, a D-state I/O) can
 * be neither waited for nor detached. It keeps its pending PTRACE_INTERRUPT and will stop as soon
 * as it wakes; left alone it would then sit in that stop until graft exits. This registry detaches
 * such threads when they finally stop, polled by an unref'd timer so it never keeps Node alive.
 */
import { detach, getEventMsg, PTRACE_EVENT, waitThread } from "./ptrace.js";

interface Straggler {
  readonly pid: number;
  /** A signal taken from the thread that must go back to it on detach. */
  signal: number;
}

const stragglers = new Map<number, Straggler>();
let timer: NodeJS.Timeout | undefined;

/** Hand over a seized thread that is not stopped; it is detached once it stops. */
export function adoptStraggler(pid: number, tid: number, signal = 0): void {
  stragglers.set(tid, { pid, signal });
  if (timer === undefined) {
    timer = setInterval(releaseStragglers, 10);
    timer.unref();
  }
}

/** Threads still waiting to be detached. */
export function stragglerCount(): number {
  return stragglers.size;
}

/**
 * Detach every adopted thread that has stopped since, re-delivering the signal of a
 * signal-delivery-stop. Runs on a timer and at the start of every stopProcess; safe to call often.
 */
export function releaseStragglers(): void {
  for (const [tid, s] of stragglers) {
    try {
      const status = waitThread(tid, { noHang: true, pid: s.pid });
      if (status === undefined) continue;
      if (status.kind !== "stopped") {
        stragglers.delete(tid);
        continue;
      }
      if (status.event === PTRACE_EVENT.PTRACE_EVENT_CLONE) {
        // Threads born from a straggler are auto-attached (PTRACE_O_TRACECLONE): adopt them too.
        // The parent is in a ptrace-stop right now, so it can be detached here.
        adoptStraggler(s.pid, Number(getEventMsg(tid, s.pid)));
        detach(tid, s.signal, s.pid);
        stragglers.delete(tid);
        continue;
      }
      // A signal-delivery-stop (event 0) carries a real signal: give it back on detach.
      const signal = status.event === 0 ? status.signal : s.signal;
      detach(tid, signal, s.pid);
      stragglers.delete(tid);
    } catch {
      // ECHILD/ESRCH: the thread is gone or already reaped; nothing left to release.
      stragglers.delete(tid);
    }
  }
  if (stragglers.size === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}
