/**
 * The closed set of error codes graft reports. Codes are stable strings that scripts and tests
 * match on; the message and hint are for people. Add a code here before throwing it anywhere.
 */
export const ERROR_CODES = {
  // formats
  ELF_TRUNCATED: { message: "file is truncated", hint: "the file is incomplete; copy it again" },
  ELF_BAD_MAGIC: { message: "not an ELF file", hint: "pass an ELF executable, shared library or .o" },
  ELF_UNSUPPORTED: {
    message: "unsupported ELF variant",
    hint: "graft reads 64-bit little-endian ELF (x86-64, AArch64)",
  },
  ELF_CORRUPT: { message: "corrupt ELF structure", hint: "the file is damaged or not produced by a linker" },
  DWARF_CORRUPT: { message: "corrupt DWARF data", hint: "rebuild with -g, or strip the debug info" },
  DWARF_TRUNCATED: {
    message: "DWARF data runs past the end of its section",
    hint: "the debug info is incomplete; rebuild with -g, or strip the debug info",
  },
  DWARF_UNSUPPORTED: {
    message: "unsupported DWARF variant",
    hint: "graft reads DWARF 2-5 in the file itself (not split .dwo files), uncompressed or zlib-compressed",
  },
  // I/O and usage
  FILE_NOT_FOUND: { message: "no such file", hint: "check the path" },
  FILE_UNREADABLE: { message: "cannot read file", hint: "check the file's permissions" },
  USAGE: { message: "bad usage", hint: "see graft --help" },
  NO_COMPILER: {
    message: "compiler not found",
    hint: "install gcc or clang (apt-get install gcc clang)",
  },
  COMPILE_FAILED: { message: "compilation failed", hint: "fix the compiler errors shown above" },
  // process
  NO_SUCH_PROCESS: { message: "no such process", hint: "check the PID; the process may have exited" },
  PERMISSION_DENIED: {
    message: "permission denied",
    hint: "run as the process owner or root, and check /proc/sys/kernel/yama/ptrace_scope",
  },
  PTRACE_FAILED: { message: "ptrace failed", hint: "another tracer (gdb, strace) may be attached" },
  ALREADY_TRACED: {
    message: "process is already traced",
    hint: "another tracer (gdb, strace, graft) is attached; detach it and retry",
  },
  THREAD_STOP_FAILED: {
    message: "could not stop every thread",
    hint: "retry; a thread may be in uninterruptible sleep",
  },
  SYSCALL_INJECTION_FAILED: {
    message: "injected system call failed",
    hint: "a seccomp filter or W^X policy may block mmap/mprotect in the target",
  },
  MEMORY_ACCESS_FAILED: { message: "cannot access target memory", hint: "the address is not mapped" },
  // live patching
  BUILD_ID_MISMATCH: {
    message: "patch was built for another binary (build-id differs)",
    hint: "rebuild the patch with --target pointing at the binary the process runs",
  },
  SITE_BYTES_CHANGED: {
    message: "bytes at a patch site differ from what the patch expects",
    hint: "the process was modified by another tool or patch; see graft status",
  },
  UNKNOWN_SYMBOL: {
    message: "symbol not found in the target",
    hint: "check the name; use name@file.c for a static symbol",
  },
  AMBIGUOUS_SYMBOL: {
    message: "symbol is ambiguous in the target",
    hint: "qualify it as name@file.c",
  },
  ARCH_UNSUPPORTED: {
    message: "not supported on this architecture yet",
    hint: "AArch64 files can be analysed (graft check); live patching is x86-64 only for now",
  },
  UNSUPPORTED_RELOCATION: {
    message: "relocation type not supported",
    hint: "rebuild the fix without TLS or exotic code models",
  },
  NOT_PATCHABLE: {
    message: "function has no patch site",
    hint: "rebuild with the flags from graft cflags",
  },
  THREAD_IN_PATCH_RANGE: {
    message: "a thread stays inside bytes being rewritten",
    hint: "retry; the thread could not be stepped out",
  },
  THREAD_NOT_QUIESCENT: {
    message: "a thread is running, or has a frame in, a function being replaced",
    hint: "retry when the function has returned (or give --timeout longer), or apply without --consistency quiescent",
  },
  TARGET_LOCKED: {
    message: "the process is being patched by another graft",
    hint: "wait for it to finish, or check for a stale lock with graft status",
  },
  PATCH_CORRUPT: { message: "patch file is corrupt", hint: "rebuild it with graft build" },
  PATCH_NOT_APPLIED: { message: "patch is not applied", hint: "see graft status PID" },
  PATCH_ALREADY_APPLIED: { message: "patch is already applied", hint: "see graft status PID" },
  REVERT_ORDER: {
    message: "a later patch depends on this one",
    hint: "revert the later patches first, or use --all",
  },
  JOURNAL_INCOMPLETE: {
    message: "a previous graft stopped midway through changing this process",
    hint: "run graft status PID, then graft revert PID to finish undoing it",
  },
  DEPENDENCY_MISSING: {
    message: "a patch this one depends on is not applied",
    hint: "apply the patches it was built --after first",
  },
  // signatures
  SIGNATURE_MISSING: {
    message: "the patch is not signed",
    hint: "sign it with graft sign PATCH --key KEY (the signature goes to PATCH.sig), or pass --signature FILE",
  },
  SIGNATURE_INVALID: {
    message: "the patch's signature does not match it",
    hint: "the patch or its manifest was changed after signing, or the .sig belongs to another patch; get the patch again",
  },
  SIGNATURE_UNTRUSTED: {
    message: "the patch is signed by a key that is not trusted",
    hint: "pass the signer's public key with --pubkey PUB, or put it in the GRAFT_TRUSTED_KEYS directory",
  },
  KEY_INVALID: {
    message: "not a usable ed25519 key",
    hint: "make a key pair with graft keygen; pass the .key to sign and the .pub to verify",
  },
  // targets graft will not change
  SECCOMP_BLOCKS_SYSCALL: {
    message: "a seccomp filter in the process would block or kill a system call graft injects",
    hint: "the filter cannot be changed from outside; patch the program's next start instead, or relax the service's SystemCallFilter",
  },
  SECCOMP_UNREADABLE: {
    message: "the process runs under a seccomp filter that graft cannot read",
    hint: "run graft as root (reading a filter needs CAP_SYS_ADMIN) so it can check the filter allows mmap/mprotect",
  },
  MEMORY_SHARED: {
    message: "another process shares this process's memory (CLONE_VM or vfork)",
    hint: "graft stops one process's threads; retry once a vfork child has exec'd or exited",
  },
  // call-site changes
  CALL_SITE_NOT_FOUND: {
    message: "no such call site",
    hint: "list the call sites with graft calls FILE [--to FUNC]; SITE is a link-time address in the file",
  },
  CALL_SITE_UNSAFE: {
    message: "the call site cannot be rewritten safely",
    hint: "graft calls FILE says why for each site",
  },
  CALL_RESULT_USED: {
    message: "the caller uses the call's result",
    hint: "retarget the call instead, or add --force if a garbage result is acceptable",
  },
  TARGET_OUT_OF_REACH: {
    message: "the new callee is beyond the reach of a direct call",
    hint: "call a function of the same module, or one loaded by a patch (patch-id:function)",
  },
  TRACE_UNSUPPORTED: {
    message: "cannot trace this process",
    hint: "tracing needs glibc threads and functions with a usable patch site (graft probes FILE)",
  },
  NOTHING_TO_TRACE: {
    message: "no function to trace",
    hint: "build with graft cflags, or widen -F / narrow -N (graft probes FILE lists the hooks)",
  },
  TRACE_SITE_BUSY: {
    message: "a site to trace is already changed",
    hint: "another tracer or a graft patch owns it (graft status PID); revert it first",
  },
  INTERNAL: { message: "internal error", hint: "please report it with GRAFT_DEBUG=1 output" },
} as const satisfies Record<string, { message: string; hint: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
