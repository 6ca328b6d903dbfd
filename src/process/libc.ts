/**
 * The libc boundary of the process layer: koffi bindings for the few system calls graft needs,
 * loaded once on first use.
 *
 * Every binding is called synchronously. ptrace(2): "a tracee is attached to a tracer thread" —
 * every request after PTRACE_SEIZE must come from the same OS thread, so koffi's `.async` calls,
 * which run on a worker pool, must never be used here.
 *
 * koffi notes (3.x): a `Uint8Array`/`BigUint64Array`/`Int32Array` passed for a `void *` parameter
 * is passed by address, without a copy (checked against memcpy's return value), so kernel writes
 * land in the JS buffer. 64-bit integer parameters accept `bigint`; `long` results come back as a
 * `number` when they fit in 2^53 and as a `bigint` otherwise, so callers normalise with `BigInt()`.
 * Node's fs.writeSync ignores a `bigint` position (it writes at the current file offset instead,
 * checked on Node 20.20), while fs.readSync honours one; /proc/PID/mem offsets are addresses, so
 * both directions go through pread64/pwrite64 here.
 * glibc declares ptrace and syscall variadic; binding them with fixed integer parameters is fine on
 * x86-64 SysV because only vector arguments depend on the variadic convention (%al).
 */
import koffi from "koffi";

/** The raw functions, typed as graft calls them. Numbers are C ints; bigints are 64-bit values. */
export interface Libc {
  /** `long ptrace(long request, pid_t pid, void *addr, void *data)` with an integer `data`. */
  ptrace(request: number, pid: number, addr: bigint, data: bigint): number | bigint;
  /** The same ptrace with `data` pointing at a buffer (GETREGS, SETREGS, GETSIGINFO, GETEVENTMSG). */
  ptraceBuffer(request: number, pid: number, addr: bigint, data: ArrayBufferView): number | bigint;
  /** `pid_t waitpid(pid_t pid, int *status, int options)`; `status` is an Int32Array of length ≥ 1. */
  waitpid(pid: number, status: Int32Array, options: number): number;
  /** `ssize_t process_vm_readv(...)`; the iovec arrays are BigUint64Array pairs {base, len}. */
  processVmReadv(
    pid: number,
    local: BigUint64Array,
    liovcnt: number,
    remote: BigUint64Array,
    riovcnt: number,
    flags: number,
  ): number | bigint;
  /** `ssize_t process_vm_writev(...)`, same layout as processVmReadv. */
  processVmWritev(
    pid: number,
    local: BigUint64Array,
    liovcnt: number,
    remote: BigUint64Array,
    riovcnt: number,
    flags: number,
  ): number | bigint;
  /** `long syscall(long nr, ...)` with up to three integer arguments (tgkill). */
  syscall3(nr: number, a: number | bigint, b: number | bigint, c: number | bigint): number | bigint;
  /** `int sched_setscheduler(pid_t pid, int policy, const struct sched_param *param)`; param = [priority]. */
  schedSetScheduler(pid: number, policy: number, param: Int32Array): number;
  /** `int sched_getscheduler(pid_t pid)`. */
  schedGetScheduler(pid: number): number;
  /** `int sched_getparam(pid_t pid, struct sched_param *param)`. */
  schedGetParam(pid: number, param: Int32Array): number;
  /** `ssize_t pread(int fd, void *buf, size_t count, off_t offset)` (64-bit offset). */
  pread(fd: number, buf: Uint8Array, count: number, offset: bigint): number | bigint;
  /** `ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)` (64-bit offset). */
  pwrite(fd: number, buf: Uint8Array, count: number, offset: bigint): number | bigint;
  /** `int sched_yield(void)`: let a just-interrupted tracee have this CPU while graft polls. */
  schedYield(): number;
}

let libc: Libc | undefined;

/** The libc bindings, loaded on first use (koffi.load of libc.so.6). */
export function getLibc(): Libc {
  if (libc !== undefined) return libc;
  const lib = koffi.load("libc.so.6");
  const ptrace = lib.func("long ptrace(long request, int pid, uint64_t addr, uint64_t data)");
  const ptraceBuffer = lib.func("long ptrace(long request, int pid, uint64_t addr, void *data)");
  const waitpid = lib.func("int waitpid(int pid, void *status, int options)");
  const processVmReadv = lib.func(
    "long process_vm_readv(int pid, void *local, uint64_t liovcnt, void *remote, uint64_t riovcnt, uint64_t flags)",
  );
  const processVmWritev = lib.func(
    "long process_vm_writev(int pid, void *local, uint64_t liovcnt, void *remote, uint64_t riovcnt, uint64_t flags)",
  );
  const syscall3 = lib.func("long syscall(long nr, long a, long b, long c)");
  const schedYield = lib.func("int sched_yield(void)");
  const schedSetScheduler = lib.func("int sched_setscheduler(int pid, int policy, void *param)");
  const schedGetScheduler = lib.func("int sched_getscheduler(int pid)");
  const schedGetParam = lib.func("int sched_getparam(int pid, void *param)");
  const pread = lib.func("long pread64(int fd, void *buf, uint64_t count, int64_t offset)");
  const pwrite = lib.func("long pwrite64(int fd, void *buf, uint64_t count, int64_t offset)");
  libc = {
    ptrace: (request, pid, addr, data) => ptrace(request, pid, addr, data),
    ptraceBuffer: (request, pid, addr, data) => ptraceBuffer(request, pid, addr, data),
    waitpid: (pid, status, options) => waitpid(pid, status, options),
    processVmReadv: (pid, local, liovcnt, remote, riovcnt, flags) =>
      processVmReadv(pid, local, liovcnt, remote, riovcnt, flags),
    processVmWritev: (pid, local, liovcnt, remote, riovcnt, flags) =>
      processVmWritev(pid, local, liovcnt, remote, riovcnt, flags),
    syscall3: (nr, a, b, c) => syscall3(nr, a, b, c),
    schedYield: () => schedYield(),
    schedSetScheduler: (pid, policy, param) => schedSetScheduler(pid, policy, param),
    schedGetScheduler: (pid) => schedGetScheduler(pid),
    schedGetParam: (pid, param) => schedGetParam(pid, param),
    pread: (fd, buf, count, offset) => pread(fd, buf, count, offset),
    pwrite: (fd, buf, count, offset) => pwrite(fd, buf, count, offset),
  };
  return libc;
}

/**
 * The address of a buffer's first byte, for pointers stored inside structs (iovec). Pass buffers
 * backed by `new ArrayBuffer(n)`: their backing store lives outside the V8 heap and never moves.
 */
export function addressOf(view: ArrayBufferView): bigint {
  return koffi.address(view);
}

/** errno of the calling thread; read it in the statement right after the failing call. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Set errno of the calling thread (to tell a −1 result from an error, as PEEKDATA needs). */
export function setErrno(value: number): void {
  koffi.errno(value);
}

let errnoNames: Map<number, string> | undefined;

/** The symbolic name of an errno value (`ESRCH`), or `errno N` when libc's table lacks it. */
export function errnoName(errno: number): string {
  if (errnoNames === undefined) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(koffi.os.errno as Record<string, number>)) {
      // Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK): keep the first, canonical spelling.
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** errno values the process layer branches on [errno-base.h, errno.h]. */
export const ERRNO = {
  EPERM: 1,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ECHILD: 10,
  EAGAIN: 11,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSYS: 38,
  EACCES: 13,
} as const;
