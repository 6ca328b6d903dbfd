/**
 * A process's seccomp state, read from outside: the mode of every thread from
 * /proc/PID/task/TID/status (`Seccomp:` 0 none, 1 strict, 2 filter; `Seccomp_filters:` how many),
 * and each filter's program through PTRACE_SECCOMP_GET_FILTER [ptrace(2)], which needs the thread in
 * a ptrace-stop and CAP_SYS_ADMIN in graft.
 */
import { readFileSync } from "node:fs";
import { ProcessError } from "../core/errors.js";
import { ERRNO, errnoName, getLibc, lastErrno } from "./libc.js";
import { stopProcess } from "./stop-the-world.js";
import { listThreads } from "./threads.js";

const PTRACE_SECCOMP_GET_FILTER = 0x420c;
const ENOENT = 2;

/** One thread's seccomp mode. */
export interface ThreadSeccomp {
  readonly tid: number;
  /** 0 none, 1 strict (only read, write, _exit, sigreturn), 2 filter. */
  readonly mode: number;
  readonly filters: number;
}

/** The seccomp mode of every thread of `pid` (threads that end meanwhile are left out). */
export function readSeccompModes(pid: number): ThreadSeccomp[] {
  const out: ThreadSeccomp[] = [];
  for (const tid of listThreads(pid)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/status`, "latin1");
    } catch {
      continue;
    }
    const mode = Number(/^Seccomp:\s*(\d+)/m.exec(text)?.[1] ?? 0);
    const filters = Number(/^Seccomp_filters:\s*(\d+)/m.exec(text)?.[1] ?? (mode === 2 ? 1 : 0));
    out.push({ tid, mode, filters });
  }
  return out;
}

/**
 * The filters of each listed thread, oldest first (index 0 is the first installed: kernel/seccomp.c
 * get_nth_filter), as `struct sock_filter[]` bytes.
 */
export type ThreadFilters = ReadonlyMap<number, readonly Uint8Array[]>;

/**
 * Read the seccomp filters of threads `tids` of `pid`, stopping one thread at a time (never the whole
 * process: this runs before every apply to a filtered process, e.g. anything in a container), reading
 * every filter by index until ENOENT, and resuming it. Throws PERMISSION_DENIED when the kernel will
 * not show them (EACCES: graft lacks CAP_SYS_ADMIN or runs under seccomp itself; EINVAL: a kernel
 * without CONFIG_CHECKPOINT_RESTORE).
 */
export function readSeccompFilters(pid: number, tids: readonly number[]): ThreadFilters {
  const out = new Map<number, Uint8Array[]>();
  for (const tid of tids) {
    let stopped: ReturnType<typeof stopProcess>;
    try {
      stopped = stopProcess(pid, { only: [tid], realtime: false });
    } catch (e) {
      if (e instanceof ProcessError && e.code === "NO_SUCH_PROCESS" && pid !== tid) continue; // ended
      throw e;
    }
    try {
      if (stopped.threads.some((t) => t.tid === tid)) out.set(tid, readThreadFilters(pid, tid));
    } finally {
      stopped.resume();
    }
  }
  return out;
}

function readThreadFilters(pid: number, tid: number): Uint8Array[] {
  const libc = getLibc();
  const filters: Uint8Array[] = [];
  for (let index = 0; ; index++) {
    const count = Number(libc.ptrace(PTRACE_SECCOMP_GET_FILTER, tid, BigInt(index), 0n));
    if (count === -1) {
      const errno = lastErrno();
      if (errno === ENOENT) return filters;
      throw new ProcessError(
        "PERMISSION_DENIED",
        `cannot read seccomp filter ${index} of thread ${tid}: ${errnoName(errno)}`,
        { pid, tid, op: "PTRACE_SECCOMP_GET_FILTER", errno },
      );
    }
    const program = new Uint8Array(new ArrayBuffer(count * 8));
    const got = Number(libc.ptraceBuffer(PTRACE_SECCOMP_GET_FILTER, tid, BigInt(index), program));
    if (got !== count) {
      const errno = lastErrno();
      throw new ProcessError("PTRACE_FAILED", `seccomp filter ${index} of thread ${tid} changed while read`, {
        pid,
        tid,
        op: "PTRACE_SECCOMP_GET_FILTER",
        errno: got === -1 ? errno : ERRNO.EINTR,
      });
    }
    filters.push(program);
  }
}
