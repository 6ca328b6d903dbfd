/**
 * Start a command so that graft can change it before it runs a single instruction of its own, without
 * it being a child of graft's Node process (libuv reaps its children with waitpid, which would take
 * ptrace stops meant for graft).
 *
 * 1. `sh -c '… & echo $!'` starts a second shell in the background and exits, so the second shell
 *    is re-parented away from graft; it stops itself (`kill -STOP $$`) and will `exec` the command.
 * 2. graft seizes it with PTRACE_O_TRACEEXEC (a seized, group-stopped task reports the stop at once,
 *    ptrace(2) "PTRACE_SEIZE"), sends SIGCONT and lets it run to the PTRACE_EVENT_EXEC stop: the
 *    command's image is mapped, nothing of it has run.
 * 3. It runs the task on to the program's entry point (AT_ENTRY, an int3 there for the moment):
 *    the dynamic loader has mapped and relocated every needed library by then, so what graft
 *    hooks in them (the C++ runtime's unwinder, for tracing) is there to hook, while not one
 *    instruction of the program itself has run.
 * 4. It queues SIGSTOP and detaches: the task dequeues the SIGSTOP first thing and sits in a
 *    group-stop (state T), untraced, where the ordinary stop-the-world can take it.
 * The caller sends SIGCONT when done. graft makes itself a child subreaper first (prctl
 * PR_SET_CHILD_SUBREAPER), so the orphaned command is re-parented to graft, not to init: when it
 * exits, graft can collect its exit status (reapStarted), as `time` or `strace` report it. libuv
 * reaps only the children it spawned, by PID, so it never takes this one.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { GraftError, ProcessError } from "../core/errors.js";
import { getLibc } from "./libc.js";
import { readMemory, writeMemory } from "./memory.js";
import { nowNs, sleepSync, waitThreadUntil } from "./poll-wait.js";
import { cont, detach, getRegs, PTRACE_EVENT, PTRACE_O, seize, setRegs, waitThread } from "./ptrace.js";
import { findThreadStatus } from "./threads.js";
import type { WaitStatus } from "./wait-status.js";

const SYS_prctl = 157;
const PR_SET_CHILD_SUBREAPER = 36;
const SIGSTOP = 19;
const SIGCONT = 18;

function waitForState(pid: number, state: string, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = findThreadStatus(pid, pid);
    if (s === undefined)
      throw new ProcessError("NO_SUCH_PROCESS", `process ${pid} exited before it started`, {
        pid,
        op: "start",
      });
    if (s.state === state) return;
    if (Date.now() > deadline) {
      throw new ProcessError("THREAD_STOP_FAILED", `process ${pid} did not reach state ${state}`, {
        pid,
        op: "start",
      });
    }
    sleepSync(1);
  }
}

/** Start `argv` stopped right after its exec (see the file comment); returns its PID. */
export function startStopped(argv: readonly string[], cwd?: string): number {
  if (argv.length === 0) throw new GraftError("USAGE", "no command given after --");
  getLibc().syscall3(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0);
  const script = `sh -c 'kill -STOP $$; exec "$@"' sh "$@" 3>&- & echo $! >&3`;
  const r = spawnSync("sh", ["-c", script, "sh", ...argv], {
    stdio: ["inherit", "inherit", "inherit", "pipe"],
    ...(cwd === undefined ? {} : { cwd }),
  });
  const pid = Number(String(r.output?.[3] ?? "").trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new GraftError("USAGE", `could not start ${argv[0]}`);
  waitForState(pid, "T", 2000);
  seize(pid, PTRACE_O.PTRACE_O_TRACEEXEC);
  const deadline = nowNs() + 5_000_000_000n;
  process.kill(pid, SIGCONT);
  for (;;) {
    const status = waitThreadUntil(pid, deadline, pid);
    if (status === undefined) {
      throw new ProcessError("THREAD_STOP_FAILED", `${argv[0]} did not reach exec`, { pid, op: "start" });
    }
    if (status.kind !== "stopped") {
      throw new ProcessError("NO_SUCH_PROCESS", `${argv[0]} could not be started (exec failed?)`, {
        pid,
        op: "exec",
      });
    }
    if (status.event === PTRACE_EVENT.PTRACE_EVENT_EXEC) break;
    // The group-stop reported at seize, SIGCONT's delivery: let it go on (suppressing SIGCONT is harmless).
    cont(pid, 0, pid);
  }
  runToEntry(pid, argv[0]!, deadline);
  process.kill(pid, SIGSTOP);
  detach(pid, 0, pid);
  waitForState(pid, "T", 2000);
  return pid;
}

const AT_ENTRY = 9n;
const SIGTRAP = 5;

/** The program's entry point, from the kernel's auxiliary vector for the process. */
function entryPoint(pid: number): bigint | undefined {
  const auxv = readFileSync(`/proc/${pid}/auxv`);
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    if (auxv.readBigUInt64LE(at) === AT_ENTRY) return auxv.readBigUInt64LE(at + 8);
  }
  return undefined;
}

/**
 * From the exec stop (seized, stopped) to the program's first instruction, the loader's work done:
 * an int3 over that instruction, run, take the trap, put the byte and the instruction pointer back.
 * Signals met on the way are passed on. Any failure puts the byte back before it throws.
 */
function runToEntry(pid: number, name: string, deadline: bigint): void {
  const entry = entryPoint(pid);
  if (entry === undefined) return; // no auxiliary vector entry: hook at the exec stop as before
  const original = readMemory(pid, entry, 1);
  writeMemory(pid, entry, Uint8Array.of(0xcc));
  let reached = false;
  try {
    cont(pid, 0, pid);
    for (;;) {
      const status = waitThreadUntil(pid, deadline, pid);
      if (status === undefined) {
        throw new ProcessError("THREAD_STOP_FAILED", `${name} did not reach its entry point`, {
          pid,
          op: "start",
        });
      }
      if (status.kind !== "stopped") {
        throw new ProcessError(
          "NO_SUCH_PROCESS",
          `${name} ended before its entry point (a missing library?)`,
          {
            pid,
            op: "start",
          },
        );
      }
      if (status.signal === SIGTRAP && status.event === 0) {
        const regs = getRegs(pid, pid);
        if (regs.rip === entry + 1n) {
          writeMemory(pid, entry, original);
          reached = true;
          setRegs(pid, { ...regs, rip: entry }, pid);
          return;
        }
      }
      cont(pid, status.signal === SIGTRAP ? 0 : status.signal, pid);
    }
  } finally {
    if (!reached) {
      try {
        writeMemory(pid, entry, original);
      } catch {}
    }
  }
}

/** Let a process started by startStopped run. */
export function resumeStarted(pid: number): void {
  process.kill(pid, SIGCONT);
}

/**
 * How a process started by startStopped ended, once it has (it is graft's child then, a zombie until
 * this collects it); undefined while it runs, or when graft is not its parent after all (another
 * subreaper between them, or a kernel without PR_SET_CHILD_SUBREAPER).
 */
export function reapStarted(pid: number): WaitStatus | undefined {
  try {
    const status = waitThread(pid, { noHang: true, pid });
    return status?.kind === "exited" || status?.kind === "signaled" ? status : undefined;
  } catch {
    return undefined;
  }
}
