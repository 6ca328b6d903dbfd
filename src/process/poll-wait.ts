/**
 * Waiting for tracees without ever blocking forever. A blocking waitpid cannot time out, and a
 * thread in uninterruptible sleep (a vfork parent, a D-state read) never reaches its ptrace stop,
 * so the process layer polls waitpid(WNOHANG) against a deadline instead.
 */
import { getLibc } from "./libc.js";
import { waitThread } from "./ptrace.js";
import type { WaitStatus } from "./wait-status.js";

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Let time pass between two polls: sleep 20 µs (Atomics.wait is allowed on Node's main thread and
 * takes fractional milliseconds). Sleeping, not spinning or sched_yield, leaves this CPU to the
 * tracees, which need it to reach their stops; measured on 2 vCPUs with 4 busy threads, a
 * sched_yield loop stopped 9 threads in ~200 µs median but with ms tails, a 20 µs sleep in
 * ~270 µs with a flat tail, and a blocking waitpid (which cannot time out) in ~140 µs.
 */
export function idle(): void {
  if (!slackLowered) lowerTimerSlack();
  Atomics.wait(sleeper, 0, 0, 0.02);
}

let slackLowered = false;
/** prctl(2) PR_SET_TIMERSLACK; x86-64 syscall number of prctl. */
const PR_SET_TIMERSLACK = 29;
const SYS_prctl = 157;

/**
 * The default timer slack (50 µs) stretches every 20 µs sleep to ~85 µs (measured by bench/apply);
 * 1 µs of slack for graft's own thread makes the poll as fine as it says. Only this thread changes.
 */
function lowerTimerSlack(): void {
  slackLowered = true;
  getLibc().syscall3(SYS_prctl, PR_SET_TIMERSLACK, 1000, 0);
}

/**
 * Block graft's thread for `ms` milliseconds (fractions allowed) without giving up its ptrace
 * tracees: a synchronous sleep, since everything around it must stay on this one thread.
 */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** Monotonic now in nanoseconds. */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/**
 * The next state change of one tracee, polling until `deadlineNs` (a nowNs() value); undefined
 * when the deadline passes first. Throws like waitThread when the thread is not a tracee.
 */
export function waitThreadUntil(tid: number, deadlineNs: bigint, pid?: number): WaitStatus | undefined {
  for (;;) {
    const status = waitThread(tid, { noHang: true, ...(pid === undefined ? {} : { pid }) });
    if (status !== undefined) return status;
    if (nowNs() > deadlineNs) return undefined;
    idle();
  }
}
