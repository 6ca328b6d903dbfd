/**
 * x86-64 general-purpose registers as PTRACE_GETREGS returns them: `struct user_regs_struct`
 * from <sys/user.h> (the kernel's `struct user_regs_struct` in arch/x86/include/asm/user_64.h),
 * 27 unsigned 64-bit fields in this exact order.
 */

/** Field names of `struct user_regs_struct` in kernel order. */
export const USER_REGS_FIELDS = [
  "r15",
  "r14",
  "r13",
  "r12",
  "rbp",
  "rbx",
  "r11",
  "r10",
  "r9",
  "r8",
  "rax",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "orig_rax",
  "rip",
  "cs",
  "eflags",
  "rsp",
  "ss",
  "fs_base",
  "gs_base",
  "ds",
  "es",
  "fs",
  "gs",
] as const;

/** One register name of `struct user_regs_struct`. */
export type RegisterName = (typeof USER_REGS_FIELDS)[number];

/**
 * A thread's registers, each as the unsigned 64-bit value the kernel stores. A negative value such
 * as rax = -ERESTARTSYS reads as 2^64 − 512; use `BigInt.asIntN(64, r.rax)` for the signed view.
 */
export type Registers = { readonly [K in RegisterName]: bigint };

/** sizeof(struct user_regs_struct) on x86-64. */
export const USER_REGS_SIZE = USER_REGS_FIELDS.length * 8;

/** Decode a user_regs_struct buffer (little-endian u64s) into a frozen record. */
export function decodeRegisters(words: BigUint64Array): Registers {
  const out: Record<string, bigint> = {};
  USER_REGS_FIELDS.forEach((name, i) => {
    out[name] = words[i] ?? 0n;
  });
  return Object.freeze(out) as Registers;
}

/** Encode a register record into a user_regs_struct buffer for PTRACE_SETREGS. */
export function encodeRegisters(regs: Registers): BigUint64Array {
  const words = new BigUint64Array(USER_REGS_FIELDS.length);
  USER_REGS_FIELDS.forEach((name, i) => {
    words[i] = BigInt.asUintN(64, regs[name]);
  });
  return words;
}
