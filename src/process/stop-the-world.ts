/**
 * Stop every thread of a process with ptrace, and let them all go again.
 *
 * Protocol (DESIGN.md "The safe code-modification protocol", step 2):
 * 1. Read /proc/PID/task; refuse early when a thread already has a tracer.
 * 2. PTRACE_SEIZE every thread with PTRACE_O_TRACECLONE, so a thread created from now on is
 *    attached by the kernel and starts in a PTRACE_EVENT_STOP (ptrace(2) "PTRACE_O_TRACECLONE").
 *    Seizing does not stop anything, so it stays outside the measured window.
 * 3. PTRACE_INTERRUPT every thread, then poll waitpid(__WALL | WNOHANG) until each reports
 *    PTRACE_EVENT_STOP (ptrace(2) "Group-stop" and "PTRACE_EVENT_STOP": the interrupt stop and a
 *    group-stop of a seized tracee both report that event). Along the way:
 *    - a thread that exits is dropped (ESRCH on a request, an exit status from waitpid);
 *    - a signal-delivery-stop (the thread dequeued a real signal before it saw the interrupt) is
 *      kept as the thread's stop: the thread is stopped, and the signal is handed back with
 *      PTRACE_DETACH(sig) on resume, siginfo intact — it is neither lost nor run early;
 *    - a PTRACE_EVENT_CLONE stop names a new thread (PTRACE_GETEVENTMSG); that trap consumed the
 *      parent's interrupt, so the parent is interrupted again and continued to the new interrupt
 *      stop, and the child is awaited like the others.
 * 4. When every known thread is stopped, read /proc/PID/task again; a stopped process cannot make
 *    threads, so one read with nothing new ends the loop.
 * A deadline (2 s by default) bounds it all; on failure every stopped thread is detached and the
 * ones that never stopped are detached as soon as they do (stragglers.ts).
 *
 * PTRACE_O_EXITKILL is deliberately not set: if graft dies, the kernel detaches and the target
 * lives on (and keeps whatever was written, which is why writes come last in the protocol).
 */
import { ProcessError } from "../core/errors.js";
import { idle, nowNs } from "./poll-wait.js";
import {
  cont,
  detach,
  getEventMsg,
  getRegs,
  getSigInfo,
  interrupt,
  PTRACE_EVENT,
  PTRACE_O,
  seize,
  setSigInfo,
  waitThread,
} from "./ptrace.js";
import { boostToRealtime } from "./realtime-boost.js";
import type { Registers } from "./registers.js";
import { sendSignal } from "./send-signal.js";
import { adoptStraggler, releaseStragglers } from "./stragglers.js";
import { findProcessName, findThreadStatus, listThreads } from "./threads.js";
import type { WaitStatus } from "./wait-status.js";

/** Options of stopProcess. */
export interface StopOptions {
  /** Give up after this long (default 2000 ms) with THREAD_STOP_FAILED, leaving the target running. */
  readonly timeoutMs?: number;
  /**
   * Run the interrupt and detach loops under SCHED_FIFO when allowed (default true), so that
   * woken threads do not preempt graft halfway through them (realtime-boost.ts).
   */
  readonly realtime?: boolean;
  /**
   * Stop only these threads, not the whole process (default: every thread). Enough for work that
   * needs one thread to inject a system call while the others run on, such as mapping patch code
   * that nothing can reach yet. Threads they create meanwhile are stopped too (TRACECLONE).
   */
  readonly only?: readonly number[];
}

/** One stopped thread. */
export interface StoppedThread {
  readonly tid: number;
  /** Registers at the stop (read on first access, then cached). */
  readonly regs: Registers;
}

/** A signal taken from a thread during the stop, to be given back to it on resume. */
export interface HeldSignal {
  readonly signal: number;
  /** The raw siginfo_t, so the handler sees the original sender and code. */
  readonly siginfo: Uint8Array;
}

/**
 * Per-thread bookkeeping shared with syscall-inject.ts (same layer); not part of the public API.
 * `held` is a signal whose signal-delivery-stop the thread was in when first stopped; `inSignalStop`
 * says the thread's current stop is a signal-delivery-stop, where PTRACE_DETACH can inject a signal.
 */
export interface ThreadControl {
  readonly tid: number;
  held: HeldSignal | undefined;
  inSignalStop: boolean;
  /** Further signals met while the thread was driven (single-stepped); re-sent with tgkill. */
  readonly extra: number[];
  regs: Registers | undefined;
  /** The thread's own signal mask, read at its first injection (it cannot change while stopped). */
  mask?: bigint;
}

/** Where the time of one stop→resume cycle went, in nanoseconds. */
export interface StopWindow {
  /** First PTRACE_INTERRUPT → last thread reported stopped. */
  readonly stopNs: number;
  /** All stopped → resume() called (the caller's work). */
  readonly heldNs: number;
  /** resume() called → last PTRACE_DETACH returned. */
  readonly resumeNs: number;
  /** First PTRACE_INTERRUPT → last PTRACE_DETACH: the longest any thread could have been stopped by graft. */
  readonly windowNs: number;
  /** Signals handed back to threads on resume. */
  readonly signalsRedelivered: number;
  /** The interrupt and detach loops ran under SCHED_FIFO (see realtime-boost.ts). */
  readonly realtime: boolean;
}

/** A process whose threads are all in a ptrace-stop, owned by the calling OS thread. */
export class StoppedProcess {
  /** The thread group id. */
  readonly pid: number;
  /** First PTRACE_INTERRUPT → all stopped, in nanoseconds. */
  readonly stopNs: number;
  /**
   * A live thread through which to reach the address space: `pid` itself, unless the main thread
   * has ended with pthread_exit. A zombie leader has no mm, so /proc/PID/maps and /proc/PID/mem
   * read empty and process_vm_readv(PID) fails; /proc/TID/… of any live thread works.
   */
  readonly memoryPid: number;
  readonly #controls: Map<number, ThreadControl>;
  readonly #interruptedAt: bigint;
  readonly #stoppedAt: bigint;
  readonly #realtime: boolean;
  #window: StopWindow | undefined;

  /** Built by stopProcess only. */
  constructor(
    pid: number,
    controls: Map<number, ThreadControl>,
    timing: { interruptedAt: bigint; stoppedAt: bigint; realtime: boolean },
  ) {
    this.pid = pid;
    this.#controls = controls;
    this.#interruptedAt = timing.interruptedAt;
    this.#stoppedAt = timing.stoppedAt;
    this.#realtime = timing.realtime;
    this.stopNs = Number(timing.stoppedAt - timing.interruptedAt);
    this.memoryPid = controls.has(pid) ? pid : Math.min(...controls.keys());
  }

  /** Every stopped thread, ascending by tid. Registers are read lazily and cached. */
  get threads(): readonly StoppedThread[] {
    const pid = this.pid;
    return [...this.#controls.values()]
      .sort((a, b) => a.tid - b.tid)
      .map((c) => ({
        tid: c.tid,
        get regs(): Registers {
          c.regs ??= getRegs(c.tid, pid);
          return c.regs;
        },
      }));
  }

  /** True once resume() ran; the threads are no longer under graft's control. */
  get resumed(): boolean {
    return this.#window !== undefined;
  }

  /**
   * Internal (syscall-inject.ts): the bookkeeping of one stopped thread. Throws when the thread is
   * not part of this stop or the process was resumed.
   */
  control(tid: number): ThreadControl {
    const c = this.#controls.get(tid);
    if (c === undefined || this.#window !== undefined) {
      throw new ProcessError("NO_SUCH_PROCESS", `thread ${tid} is not stopped by graft`, {
        pid: this.pid,
        tid,
        op: "control",
      });
    }
    return c;
  }

  /**
   * Detach every thread, giving back the signals taken during the stop, and report the timing.
   * Threads that died meanwhile (SIGKILL from elsewhere) are reaped. Calling it again returns
   * the first report.
   */
  resume(): StopWindow {
    if (this.#window !== undefined) return this.#window;
    const called = nowNs();
    // As for the interrupts: one PTRACE_DETACH has no other detach after it to delay.
    const boost = this.#realtime && this.#controls.size > 1 ? boostToRealtime() : undefined;
    let redelivered = 0;
    const resend: [number, number][] = [];
    let done: bigint;
    try {
      for (const c of this.#controls.values()) redelivered += releaseThread(this.pid, c, resend);
    } finally {
      // Read the clock before dropping priority: the woken threads may take this CPU right then.
      done = nowNs();
      boost?.restore();
    }
    // Signals that could not ride on PTRACE_DETACH go out once everything runs again.
    for (const [tid, signal] of resend) sendSignal(this.pid, tid, signal);
    this.#window = {
      stopNs: this.stopNs,
      heldNs: Number(called - this.#stoppedAt),
      resumeNs: Number(done - called),
      windowNs: Number(done - this.#interruptedAt),
      signalsRedelivered: redelivered,
      realtime: boost?.boosted ?? false,
    };
    return this.#window;
  }
}

/**
 * Detach one stopped thread. A held signal rides on PTRACE_DETACH when the thread sits in a
 * signal-delivery-stop (after PTRACE_SETSIGINFO restores its siginfo, in case an injection replaced
 * the stop); otherwise it is queued for tgkill. Returns the number of signals given back.
 */
function releaseThread(pid: number, c: ThreadControl, resend: [number, number][]): number {
  let count = 0;
  let signal = 0;
  if (c.held !== undefined) {
    count++;
    if (c.inSignalStop) {
      signal = c.held.signal;
      try {
        setSigInfo(c.tid, c.held.siginfo, pid);
      } catch {
        // The thread was killed meanwhile; detach below reports nothing either.
      }
    } else {
      resend.push([c.tid, c.held.signal]);
    }
  }
  for (const extra of c.extra) {
    resend.push([c.tid, extra]);
    count++;
  }
  try {
    detach(c.tid, signal, pid);
  } catch {
    // ESRCH: the thread died while stopped (SIGKILL); reap it so no traced zombie lingers.
    try {
      waitThread(c.tid, { noHang: true, pid });
    } catch {
      // Already reaped.
    }
  }
  return count;
}

const STOP_EVENT_OPTIONS = PTRACE_O.PTRACE_O_TRACECLONE;

interface Pending {
  /** Seized (or auto-attached) and not yet in a ptrace-stop. */
  readonly running: Set<number>;
  readonly controls: Map<number, ThreadControl>;
  /**
   * Listed in /proc/PID/task but not stoppable: zombies, such as a main thread that ended with
   * pthread_exit while the others run on. Remembered so the rescan does not meet them as new.
   */
  readonly ignored: Set<number>;
}

/**
 * Stop every thread of `pid` (see the file comment for the protocol). Throws NO_SUCH_PROCESS when
 * the process does not exist or exits meanwhile, ALREADY_TRACED when a debugger holds it,
 * PERMISSION_DENIED when ptrace is not allowed, THREAD_STOP_FAILED after the deadline; after any
 * throw no thread of the target is left stopped by graft.
 */
export function stopProcess(pid: number, options: StopOptions = {}): StoppedProcess {
  if (pid === process.pid) {
    // ptrace(2): a thread group cannot trace itself (PTRACE_SEIZE fails with EPERM).
    throw new ProcessError("PERMISSION_DENIED", "graft cannot stop its own process", { pid, op: "stop" });
  }
  releaseStragglers();
  const deadline = nowNs() + BigInt(Math.round((options.timeoutMs ?? 2000) * 1e6));
  const all = listThreads(pid);
  const initial = options.only === undefined ? all : all.filter((tid) => options.only!.includes(tid));
  if (initial.length === 0)
    throw new ProcessError("NO_SUCH_PROCESS", `no thread ${options.only?.join(", ")} in process ${pid}`, {
      pid,
      op: "stop",
    });
  refuseIfTraced(pid, initial);
  const state: Pending = { running: new Set(), controls: new Map(), ignored: new Set() };
  try {
    const seized = initial.filter((tid) => trySeize(pid, tid, state));
    if (state.running.size === 0) {
      throw new ProcessError("NO_SUCH_PROCESS", `process ${pid} has no live thread`, { pid, op: "stop" });
    }
    const realtime = options.realtime ?? true;
    // One PTRACE_INTERRUPT has nothing after it for a woken thread to delay: no boost (two
    // sched_setscheduler calls saved on every single-threaded target).
    const boost = realtime && seized.length > 1 ? boostToRealtime() : undefined;
    const interruptedAt = nowNs();
    try {
      for (const tid of seized) tryInterrupt(pid, tid);
    } finally {
      boost?.restore();
    }
    for (;;) {
      let progressed = false;
      for (const tid of [...state.running]) {
        let status: WaitStatus | undefined;
        try {
          status = waitThread(tid, { noHang: true, pid });
        } catch {
          dropThread(tid, state); // ECHILD: gone and reaped.
          progressed = true;
          continue;
        }
        if (status === undefined) continue;
        progressed = true;
        advance(pid, tid, status, state);
      }
      if (state.running.size === 0) {
        if (state.controls.size === 0) {
          throw new ProcessError("NO_SUCH_PROCESS", `process ${pid} exited while being stopped`, {
            pid,
            op: "stop",
          });
        }
        const fresh = (options.only === undefined ? listThreadsOrGone(pid) : []).filter(
          (tid) => !state.controls.has(tid) && !state.running.has(tid) && !state.ignored.has(tid),
        );
        if (fresh.length === 0) {
          return new StoppedProcess(pid, state.controls, { interruptedAt, stoppedAt: nowNs(), realtime });
        }
        refuseIfTraced(pid, fresh);
        for (const tid of fresh) if (trySeize(pid, tid, state)) tryInterrupt(pid, tid);
        continue;
      }
      if (nowNs() > deadline) {
        const stuck = [...state.running];
        throw new ProcessError(
          "THREAD_STOP_FAILED",
          `threads ${stuck.join(", ")} of ${pid} did not stop within ${options.timeoutMs ?? 2000} ms`,
          { pid, tid: stuck[0], op: "stop" },
        );
      }
      if (!progressed) idle();
    }
  } catch (error) {
    abandon(pid, state);
    throw error;
  }
}

/** /proc/PID/task, or nothing when the whole process has gone meanwhile. */
function listThreadsOrGone(pid: number): number[] {
  try {
    return listThreads(pid);
  } catch {
    return [];
  }
}

/**
 * Refuse before touching anything when a thread already has a tracer: PTRACE_SEIZE would fail
 * with EPERM, which is indistinguishable from a ptrace_scope refusal. A tracer that is the calling
 * process is graft itself (a thread it auto-attached through TRACECLONE), so it is not refused.
 */
function refuseIfTraced(pid: number, tids: readonly number[]): void {
  for (const tid of tids) {
    const status = findThreadStatus(pid, tid);
    if (status === undefined || status.tracerPid === 0 || status.tracerPid === process.pid) continue;
    const tracer = findProcessName(status.tracerPid);
    const who = tracer === undefined ? `pid ${status.tracerPid}` : `${tracer} (pid ${status.tracerPid})`;
    throw new ProcessError("ALREADY_TRACED", `thread ${tid} of ${pid} is already traced by ${who}`, {
      pid,
      tid,
      op: "PTRACE_SEIZE",
      hint: `another tracer (gdb, strace, graft) is attached: ${who}; detach it and retry`,
    });
  }
}

/** PTRACE_SEIZE one thread into `state`; false when it is gone or already graft's own. */
function trySeize(pid: number, tid: number, state: Pending): boolean {
  try {
    seize(tid, STOP_EVENT_OPTIONS, pid);
    track(tid, state);
    return true;
  } catch (error) {
    if (!(error instanceof ProcessError)) throw error;
    if (error.code === "NO_SUCH_PROCESS") {
      state.ignored.add(tid);
      return false;
    }
    // EPERM has four causes: a zombie thread (ptrace_attach refuses exit_state), a thread graft
    // already holds (auto-attached by TRACECLONE), another tracer that raced in, or policy.
    const status = findThreadStatus(pid, tid);
    if (status === undefined || status.state === "Z" || status.state === "X") {
      state.ignored.add(tid);
      return false;
    }
    if (status.tracerPid === process.pid) {
      track(tid, state);
      return false; // auto-attached: it will report its own PTRACE_EVENT_STOP, no interrupt needed
    }
    if (status.tracerPid !== 0) refuseIfTraced(pid, [tid]);
    throw error;
  }
}

function track(tid: number, state: Pending): void {
  if (state.controls.has(tid) || state.running.has(tid)) return;
  state.running.add(tid);
}

function tryInterrupt(pid: number, tid: number): void {
  try {
    interrupt(tid, pid);
  } catch (error) {
    // ESRCH: the thread is exiting; waitpid will report its exit (it stays in `running` till then).
    if (!(error instanceof ProcessError) || error.code !== "NO_SUCH_PROCESS") throw error;
  }
}

function dropThread(tid: number, state: Pending): void {
  state.running.delete(tid);
  state.controls.delete(tid);
}

function stopped(tid: number, state: Pending, held?: HeldSignal): void {
  state.running.delete(tid);
  state.controls.set(tid, { tid, held, inSignalStop: held !== undefined, extra: [], regs: undefined });
}

/** onStatus, dropping a thread that vanishes under the requests it makes (SIGKILL, exit). */
function advance(pid: number, tid: number, status: WaitStatus, state: Pending): void {
  try {
    onStatus(pid, tid, status, state);
  } catch (error) {
    if (!(error instanceof ProcessError) || error.code !== "NO_SUCH_PROCESS") throw error;
    dropThread(tid, state);
  }
}

/** Advance one thread according to what waitpid reported. */
function onStatus(pid: number, tid: number, status: WaitStatus, state: Pending): void {
  switch (status.kind) {
    case "exited":
    case "signaled":
      dropThread(tid, state);
      return;
    case "continued":
      return;
    case "stopped":
      break;
  }
  if (status.event === PTRACE_EVENT.PTRACE_EVENT_STOP) {
    // The interrupt stop, a group-stop (WSTOPSIG = the stop signal), or the first stop of a thread
    // auto-attached by TRACECLONE: in all of them the thread is parked at a user-mode boundary.
    stopped(tid, state);
    return;
  }
  if (status.event === PTRACE_EVENT.PTRACE_EVENT_CLONE) {
    // The new thread is already attached; its first report is a PTRACE_EVENT_STOP. The parent is
    // inside clone(), where its registers are not yet the syscall's result, so it is not held here.
    // Any ptrace trap consumes a pending interrupt (kernel ptrace_stop: "any trap clears pending
    // STOP trap"), so interrupt it again before letting it run on, or it would run free.
    const child = Number(getEventMsg(tid, pid));
    track(child, state);
    reinterruptAndContinue(pid, tid);
    return;
  }
  if (status.event === 0) {
    // Signal-delivery-stop: a real signal. Keep the thread right here and give the signal back
    // on resume (see file comment).
    stopped(tid, state, { signal: status.signal, siginfo: getSigInfo(tid, pid) });
    return;
  }
  // Any other event (none is enabled): keep going toward the interrupt stop.
  reinterruptAndContinue(pid, tid);
}

/**
 * Continue a thread out of an event stop toward a fresh interrupt stop. PTRACE_INTERRUPT on a
 * stopped tracee leaves the current trap alone and arms the next one, which fires as the thread
 * returns to user mode.
 */
function reinterruptAndContinue(pid: number, tid: number): void {
  interrupt(tid, pid);
  cont(tid, 0, pid);
}

/**
 * Undo a partial stop: interrupt whatever is still running (a thread seized but not yet
 * interrupted would otherwise never stop, and PTRACE_DETACH needs a stopped tracee), wait a
 * moment for it, detach every stopped thread with its signals, and leave the rest to the
 * straggler registry, which detaches them once they stop.
 */
function abandon(pid: number, state: Pending): void {
  for (const tid of state.running) tryInterrupt(pid, tid);
  const deadline = nowNs() + ABANDON_WAIT_NS;
  while (state.running.size > 0 && nowNs() < deadline) {
    let progressed = false;
    for (const tid of [...state.running]) {
      try {
        const status = waitThread(tid, { noHang: true, pid });
        if (status === undefined) continue;
        progressed = true;
        advance(pid, tid, status, state);
      } catch {
        dropThread(tid, state);
      }
    }
    if (!progressed) idle();
  }
  const resend: [number, number][] = [];
  for (const c of state.controls.values()) releaseThread(pid, c, resend);
  for (const tid of state.running) adoptStraggler(pid, tid);
  for (const [tid, signal] of resend) sendSignal(pid, tid, signal);
  state.controls.clear();
  state.running.clear();
}

/** How long an aborted stop waits for threads to stop before leaving them to the registry. */
const ABANDON_WAIT_NS = 100_000_000n;
