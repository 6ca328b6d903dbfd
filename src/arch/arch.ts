/**
 * The arch contract: every ISA fact the rest of graft needs, behind one interface, so that
 * analysis and live patching never look at opcode bytes themselves. x86-64 fills it today
 * (src/arch/x86-64, on iced-x86); AArch64 fills it for analysis (src/arch/aarch64: fixed 4-byte
 * instructions, BTI landing pads, `b` ±128 MiB), and throws ARCH_UNSUPPORTED where only live patching
 * needs an answer (register writes, return-value use).
 */

/** What an instruction does to control flow, as far as patching cares. */
export type InstructionKind =
  | "nop" // any architectural NOP form (x86: 90, 66 90, 0f 1f /0 of every length, xchg ax,ax; A64: nop/hint)
  | "endbr" // a landing pad for indirect branches (x86 endbr64, A64 bti c/j/jc)
  | "jump" // unconditional direct branch (target known)
  | "cond-jump" // conditional direct branch (target known)
  | "call" // direct call (target known)
  | "indirect-jump"
  | "indirect-call"
  | "return"
  | "trap" // int3, ud2, hlt: never falls through
  | "other"
  | "invalid"; // bytes that do not decode

export interface Instruction {
  readonly address: bigint;
  readonly length: number;
  readonly kind: InstructionKind;
  /** Destination of a direct jump/branch/call. */
  readonly target?: bigint;
  /** True when the instruction addresses memory relative to its own address (x86 RIP-relative, A64 ADR/ADRP/literal loads). */
  readonly pcRelative: boolean;
  /** Effective address of a PC-relative memory operand (x86 `disp(%rip)`), e.g. the GOT slot of `call *x@GOTPCREL(%rip)`. */
  readonly memoryAddress?: bigint;
  /**
   * False when the instruction cannot be copied to another address with the same meaning, even by
   * re-encoding its displacement: x86 `loop`/`loope`/`loopne`/`jrcxz`/`jecxz` reach only ±128 bytes
   * and have no wider form. Direct branches and PC-relative accesses are relocatable (within the
   * reach of their widest form). `undefined` when the arch does not say; x86-64 always sets it.
   */
  readonly relocatable?: boolean;
  /** Assembly text (GNU/AT&T on x86 to match objdump), for people, not for logic. */
  readonly text: string;
}

/** One direct control transfer found by a scan: where it is and where it goes. */
export interface BranchRef {
  readonly from: bigint;
  readonly to: bigint;
  readonly kind: "jump" | "cond-jump" | "call";
  readonly length: number;
}

/** What the code after a call does with the value the call returns (see Arch.returnValueUse). */
export interface ReturnValueUse {
  /** True when some path may read the result, or graft cannot tell. */
  readonly used: boolean;
  /** The instruction that reads it, or where graft stopped following. */
  readonly at?: bigint;
  /** Why, for people: `0x1234 reads %rax before writing it`. */
  readonly reason: string;
}

/** What one function's own code does to caller-saved registers, and where it hands control on (see Arch.registerWrites). */
export interface RegisterWrites {
  /** Caller-saved registers some instruction writes, in `Arch.callerSavedRegisters` order. */
  readonly clobbered: readonly string[];
  /** Destinations of its direct calls and of its direct jumps out of the code (tail calls). */
  readonly callees: readonly bigint[];
  /** It calls or jumps indirectly: what runs then, and what that clobbers, is unknown. */
  readonly opaque: boolean;
}

/** Where one constant of an instruction sits, for comparing code built twice (see Arch.decodeFields). */
export interface InstructionField {
  /** Byte offset inside the instruction. */
  readonly offset: number;
  readonly size: number;
  /** pc-relative: a PC-relative memory displacement; branch: a relative branch displacement. */
  readonly role: "pc-relative" | "displacement" | "immediate" | "branch";
  /**
   * The bits of the little-endian field the constant occupies, when it does not fill whole bytes
   * (A64 fields share bytes with conditions and registers); absent: every bit of the bytes.
   */
  readonly mask?: number;
}

/** An instruction with the offsets of its constants, relative to the start of the decoded bytes. */
export interface FieldedInstruction {
  readonly offset: number;
  readonly length: number;
  readonly kind: InstructionKind;
  readonly fields: readonly InstructionField[];
  /** Destination of a direct branch or call. */
  readonly target?: bigint;
  /** Effective address of a PC-relative memory operand. */
  readonly memoryAddress?: bigint;
  /** Bytes the instruction reads or writes there (0 for an address-only `lea`). */
  readonly memorySize?: number;
}

export interface Arch {
  readonly name: "x86-64" | "aarch64";
  /** ELF e_machine value (EM_X86_64 = 62, EM_AARCH64 = 183). */
  readonly elfMachine: number;
  /** Bytes in the smallest jump that can reach any address (x86: 14 = jmp *0(%rip) + imm64). */
  readonly absoluteJumpLength: number;
  /** Bytes in the near jump with the widest PC-relative reach (x86: 5 = jmp rel32). */
  readonly nearJumpLength: number;
  /**
   * Registers the C ABI lets a callee change without saving them (x86-64 SysV: rax, rcx, rdx, rsi,
   * rdi, r8–r11, every vector register, the x87 stack, the mask registers).
   */
  readonly callerSavedRegisters: readonly string[];
  /** Bytes in the shortest jump (x86: 2 = jmp rel8; A64: 4 = b). */
  readonly shortJumpLength: number;
  /** How far before its own address a short jump reaches (x86 rel8: 126; A64 b: 128 MiB). */
  readonly shortJumpBackReach: bigint;
  /** How far either way the near jump reaches (x86 rel32: 2 GiB; A64 b: 128 MiB). */
  readonly nearJumpReach: bigint;
  /**
   * Bytes of the jump written in room before an entry (pre-entry sled NOPs, padding), which the
   * entry's short jump goes to: x86 5 (`jmp rel32`, more reach than the entry's `jmp rel8`); A64 16
   * (`ldr x16, #8; br x16; .quad`, more reach than the entry's `b`).
   */
  readonly farJumpLength: number;
  /** Names of the jumps for people, as verdicts speak of them. */
  readonly jumpNames: { readonly short: string; readonly near: string; readonly far: string };
  /** Byte that fills padding between functions when it is not NOPs (x86 int3 = 0xcc). */
  readonly trapByte: number | undefined;

  /** Decode up to `limit` instructions (default: all) from `bytes`, which start at `address`. */
  decode(bytes: Uint8Array, address: bigint, limit?: number): Instruction[];
  /**
   * Decode all of `bytes` (at `address`) with the place of every displacement, immediate and
   * branch offset in each instruction, so two builds of a function can be compared with addresses
   * replaced by what they point at.
   */
  decodeFields(bytes: Uint8Array, address: bigint): FieldedInstruction[];
  /** Decode one instruction; `undefined` when the bytes run out. */
  decodeOne(bytes: Uint8Array, address: bigint): Instruction | undefined;
  /**
   * Linear sweep over `bytes` (at `address`) reporting every direct jump/branch/call. Fast path:
   * no text, no objects per ordinary instruction. Used to find branch targets in a whole file.
   */
  scanBranches(bytes: Uint8Array, address: bigint, onBranch: (ref: BranchRef) => void): void;
  /** Length of the NOP at `offset` in `bytes`, or 0 when the instruction there is not a NOP. */
  nopLength(bytes: Uint8Array, offset: number): number;
  /** Length of the endbr/bti at `offset`, or 0. */
  endbrLength(bytes: Uint8Array, offset: number): number;
  /**
   * Whether the instruction at `offset` is a landing pad for indirect calls without being an endbr:
   * A64 `paciasp`/`pacibsp` under BTI. Overwriting one makes indirect calls fault in a guarded page.
   * x86: never.
   */
  isImplicitLandingPad(bytes: Uint8Array, offset: number): boolean;
  /** The best NOP fill of exactly `length` bytes (x86: the fewest, longest recommended NOPs). */
  nopFill(length: number): Uint8Array;
  /** `jmp` from `from` to `to` in `shortJumpLength` bytes, or `undefined` when out of reach. */
  encodeShortJump(from: bigint, to: bigint): Uint8Array | undefined;
  /** `jmp` from `from` to `to` in `nearJumpLength` bytes, or `undefined` when out of reach. */
  encodeNearJump(from: bigint, to: bigint): Uint8Array | undefined;
  /**
   * A position-independent jump to any address, `absoluteJumpLength` bytes. x86: clobbers no register;
   * A64: clobbers x16 (IP0), which AAPCS64 lets veneers use between a call and its callee, so it is
   * only valid where a call enters a function.
   */
  encodeAbsoluteJump(to: bigint): Uint8Array;
  /** Direct `call` from `from` to `to`, or `undefined` when out of reach. */
  encodeNearCall(from: bigint, to: bigint): Uint8Array | undefined;
  /**
   * Whether the caller reads a call's return value (the C ABI's result registers) before writing
   * it, following every path from the return address `from` through `code` (the caller's bytes, at
   * `codeAddress`) a bounded distance. Answers "used" whenever it cannot tell. Decides whether a
   * call can be NOP'd out without leaving the caller a garbage result.
   */
  returnValueUse(code: Uint8Array, codeAddress: bigint, from: bigint, limit?: number): ReturnValueUse;
  /**
   * The caller-saved registers one function's code (`code` at `address`) writes itself, and where it
   * calls or tail-jumps. With the callees' answers it gives the registers a call may clobber, which
   * gcc's -fipa-ra lets callers of local functions rely on (a value kept in %rcx across the call).
   */
  registerWrites(code: Uint8Array, address: bigint): RegisterWrites;
}
