/** Sending a signal to one thread of a process. */
import { ProcessError } from "../core/errors.js";
import { ERRNO, errnoName, getLibc, lastErrno } from "./libc.js";

/** __NR_tgkill on x86-64 [arch/x86/entry/syscalls/syscall_64.tbl]. */
const NR_TGKILL = 234;

/**
 * tgkill(2): send `signal` to thread `tid` of process `pid` (tgkill rather than kill so a reused
 * thread id in another process is never hit). Returns false when the thread has gone (ESRCH).
 */
export function sendSignal(pid: number, tid: number, signal: number): boolean {
  if (Number(getLibc().syscall3(NR_TGKILL, pid, tid, signal)) === 0) return true;
  const errno = lastErrno();
  if (errno === ERRNO.ESRCH) return false;
  throw new ProcessError("PTRACE_FAILED", `tgkill(${pid}, ${tid}, ${signal}) failed: ${errnoName(errno)}`, {
    pid,
    tid,
    op: "tgkill",
    errno,
  });
}
