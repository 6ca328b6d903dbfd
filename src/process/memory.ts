/**
 * Reading and writing another process's memory.
 *
 * Reads use process_vm_readv(2): one system call, no file descriptor, no ptrace stop needed. It
 * honours page protections, so what it cannot read (an execute-only or PROT_NONE page) is retried
 * through /proc/PID/mem, which reads with FOLL_FORCE like a debugger (proc(5) "/proc/pid/mem").
 * Writes go through /proc/PID/mem: FOLL_FORCE lets a ptracer (or root) write read-only text —
 * the way gdb inserts breakpoints — and the kernel breaks copy-on-write so only this process sees
 * the change. Opening it needs PTRACE_MODE_ATTACH_FSCREDS access, not a ptrace attach.
 *
 * `pid` may be any live thread id of the process: when the main thread has ended with
 * pthread_exit, the PID itself has no address space left (use StoppedProcess.memoryPid).
 */
import { closeSync, openSync } from "node:fs";
import { ProcessError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { addressOf, ERRNO, errnoName, getLibc, lastErrno } from "./libc.js";

/** An open /proc/PID/mem, for many reads and writes at the cost of one open. */
export interface ProcessMemory {
  readonly pid: number;
  /** Read exactly `length` bytes at `addr`; throws MEMORY_ACCESS_FAILED naming the first unreadable address. */
  read(addr: bigint, length: number): Uint8Array;
  /** Write all of `bytes` at `addr`, read-only pages included; throws MEMORY_ACCESS_FAILED on a short write. */
  write(addr: bigint, bytes: Uint8Array): void;
  /** Close the file descriptor. */
  close(): void;
}

/** Open a process's memory for repeated access (see the file comment for the channels used). */
export function openMemory(pid: number): ProcessMemory {
  let fd: number | undefined;
  const memFd = (): number => {
    fd ??= openProcMem(pid);
    return fd;
  };
  return {
    pid,
    read(addr, length) {
      const out = new Uint8Array(new ArrayBuffer(length));
      let done = vmRead(pid, addr, out);
      while (done < length) {
        const n = Number(getLibc().pread(memFd(), out.subarray(done), length - done, addr + BigInt(done)));
        if (n <= 0) throw accessError(pid, "read", addr + BigInt(done), n < 0 ? lastErrno() : undefined);
        done += n;
      }
      return out;
    },
    write(addr, bytes) {
      let done = 0;
      while (done < bytes.length) {
        const n = Number(
          getLibc().pwrite(memFd(), bytes.subarray(done), bytes.length - done, addr + BigInt(done)),
        );
        if (n <= 0) throw accessError(pid, "write", addr + BigInt(done), n < 0 ? lastErrno() : undefined);
        done += n;
      }
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** Read `length` bytes of process `pid` at `addr` (one-shot; use openMemory for many). */
export function readMemory(pid: number, addr: bigint, length: number): Uint8Array {
  const mem = openMemory(pid);
  try {
    return mem.read(addr, length);
  } finally {
    mem.close();
  }
}

/** Write `bytes` into process `pid` at `addr`, read-only text included (one-shot). */
export function writeMemory(pid: number, addr: bigint, bytes: Uint8Array): void {
  const mem = openMemory(pid);
  try {
    mem.write(addr, bytes);
  } finally {
    mem.close();
  }
}

/**
 * process_vm_readv into `out`; returns how many bytes arrived (it stops at the first page it
 * cannot read). Errors that /proc/PID/mem may get past (EFAULT, EPERM under some LSMs, ENOSYS)
 * return 0 so the caller falls back; a vanished process throws NO_SUCH_PROCESS.
 */
function vmRead(pid: number, addr: bigint, out: Uint8Array): number {
  if (out.length === 0) return 0;
  const local = new BigUint64Array([addressOf(out), BigInt(out.length)]);
  const remote = new BigUint64Array([addr, BigInt(out.length)]);
  const n = Number(getLibc().processVmReadv(pid, local, 1, remote, 1, 0));
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === ERRNO.ESRCH) {
    throw new ProcessError("NO_SUCH_PROCESS", `no process ${pid}`, { pid, op: "process_vm_readv", errno });
  }
  return 0;
}

function openProcMem(pid: number): number {
  try {
    return openSync(`/proc/${pid}/mem`, "r+");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") {
      throw new ProcessError("NO_SUCH_PROCESS", `no process ${pid}`, { pid, op: "open /proc/PID/mem" });
    }
    throw new ProcessError("PERMISSION_DENIED", `cannot open /proc/${pid}/mem: ${code}`, {
      pid,
      op: "open /proc/PID/mem",
    });
  }
}

function accessError(
  pid: number,
  op: "read" | "write",
  addr: bigint,
  errno: number | undefined,
): ProcessError {
  const why = errno === undefined ? "end of mapping" : errnoName(errno);
  if (errno === ERRNO.ESRCH) {
    return new ProcessError("NO_SUCH_PROCESS", `no process ${pid}`, { pid, op: `${op} memory`, errno });
  }
  return new ProcessError("MEMORY_ACCESS_FAILED", `cannot ${op} memory at ${hex(addr)} (${why})`, {
    pid,
    op: `${op} memory`,
    ...(errno === undefined ? {} : { errno }),
  });
}
