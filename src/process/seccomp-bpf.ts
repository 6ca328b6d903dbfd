/**
 * A classic-BPF interpreter for seccomp filters, so graft can ask a process's own filter, before
 * injecting anything, what it would do with exactly the system calls graft is about to make.
 * Instruction set and semantics: linux/filter.h, kernel/bpf/core.c (`__bpf_prog_run` of converted
 * cBPF) and the seccomp checker (kernel/seccomp.c `seccomp_check_filter`), which only admits loads
 * from `struct seccomp_data`, ALU, jumps, scratch memory and returns.
 */

/** `struct seccomp_data` [linux/seccomp.h]: what a filter sees of one system call. */
export interface SeccompData {
  readonly nr: number;
  /** AUDIT_ARCH_* of the calling convention (AUDIT_ARCH_X86_64 = 0xc000003e). */
  readonly arch: number;
  readonly instructionPointer: bigint;
  readonly args: readonly bigint[];
}

/** SECCOMP_RET_* actions (the high 16 bits of a filter's return value) [linux/seccomp.h]. */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

export const AUDIT_ARCH_X86_64 = 0xc000003e;

/** The outcome of running one filter on one system call. */
export interface FilterOutcome {
  /** The full 32-bit return value (action | data). */
  readonly value: number;
  /** The filter loaded `instruction_pointer`: its answer depends on where the call is made from. */
  readonly readInstructionPointer: boolean;
}

const SECCOMP_DATA_SIZE = 64;
const MAX_STEPS = 4096; // BPF_MAXINSNS: cBPF jumps forward only, so a program runs at most its length

/** Encode `data` as the 64 bytes a filter reads (little-endian x86-64). */
function encodeData(data: SeccompData): DataView {
  const view = new DataView(new ArrayBuffer(SECCOMP_DATA_SIZE));
  view.setInt32(0, data.nr, true);
  view.setUint32(4, data.arch, true);
  view.setBigUint64(8, BigInt.asUintN(64, data.instructionPointer), true);
  for (let i = 0; i < 6; i++) view.setBigUint64(16 + 8 * i, BigInt.asUintN(64, data.args[i] ?? 0n), true);
  return view;
}

/** Thrown for a program the kernel would not have accepted; callers treat the filter as unknown. */
export class BadFilterError extends Error {}

/**
 * Run one filter (`struct sock_filter[]`, 8 bytes each: u16 code, u8 jt, u8 jf, u32 k) on `data`.
 */
export function runSeccompFilter(program: Uint8Array, data: SeccompData): FilterOutcome {
  const insns = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const count = Math.floor(program.byteLength / 8);
  const input = encodeData(data);
  const mem = new Uint32Array(16);
  let a = 0;
  let x = 0;
  let readIp = false;
  let pc = 0;
  for (let steps = 0; steps < MAX_STEPS; steps++) {
    if (pc < 0 || pc >= count) throw new BadFilterError(`jump out of the program at ${pc}`);
    const code = insns.getUint16(pc * 8, true);
    const jt = insns.getUint8(pc * 8 + 2);
    const jf = insns.getUint8(pc * 8 + 3);
    const k = insns.getUint32(pc * 8 + 4, true);
    pc++;
    const cls = code & 0x07;
    switch (cls) {
      case 0x00: // BPF_LD
      case 0x01: {
        // BPF_LDX
        const mode = code & 0xe0;
        let v: number;
        if (mode === 0x00)
          v = k; // BPF_IMM
        else if (mode === 0x20 && cls === 0x00) {
          // BPF_ABS, 32-bit words only (seccomp_check_filter rejects other sizes and misaligned k).
          if ((code & 0x18) !== 0x00 || k % 4 !== 0 || k + 4 > SECCOMP_DATA_SIZE)
            throw new BadFilterError(`load of seccomp_data+${k}`);
          if (k >= 8 && k < 16) readIp = true;
          v = input.getUint32(k, true);
        } else if (mode === 0x60) {
          // BPF_MEM
          if (k >= 16) throw new BadFilterError(`scratch word ${k}`);
          v = mem[k]!;
        } else if (mode === 0x80)
          v = SECCOMP_DATA_SIZE; // BPF_LEN
        else throw new BadFilterError(`load mode 0x${mode.toString(16)}`);
        if (cls === 0x00) a = v >>> 0;
        else x = v >>> 0;
        break;
      }
      case 0x02: // BPF_ST
      case 0x03: // BPF_STX
        if (k >= 16) throw new BadFilterError(`scratch word ${k}`);
        mem[k] = cls === 0x02 ? a : x;
        break;
      case 0x04: {
        // BPF_ALU
        const src = (code & 0x08) !== 0 ? x : k;
        switch (code & 0xf0) {
          case 0x00:
            a = (a + src) >>> 0;
            break;
          case 0x10:
            a = (a - src) >>> 0;
            break;
          case 0x20:
            a = Math.imul(a, src) >>> 0;
            break;
          case 0x30:
            // Division by zero ends the program with 0 (KILL_THREAD), as the kernel's cBPF does.
            if (src === 0) return { value: 0, readInstructionPointer: readIp };
            a = Math.floor(a / src) >>> 0;
            break;
          case 0x40:
            a = (a | src) >>> 0;
            break;
          case 0x50:
            a = (a & src) >>> 0;
            break;
          case 0x60:
            a = src >= 32 ? 0 : (a << src) >>> 0;
            break;
          case 0x70:
            a = src >= 32 ? 0 : a >>> src;
            break;
          case 0x80:
            a = -a >>> 0;
            break;
          case 0x90:
            if (src === 0) return { value: 0, readInstructionPointer: readIp };
            a = (a % src) >>> 0;
            break;
          case 0xa0:
            a = (a ^ src) >>> 0;
            break;
          default:
            throw new BadFilterError(`ALU op 0x${code.toString(16)}`);
        }
        break;
      }
      case 0x05: {
        // BPF_JMP
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k; // BPF_JA
          break;
        }
        const src = (code & 0x08) !== 0 ? x : k;
        let taken: boolean;
        if (op === 0x10) taken = a === src;
        else if (op === 0x20) taken = a > src;
        else if (op === 0x30) taken = a >= src;
        else if (op === 0x40) taken = (a & src) !== 0;
        else throw new BadFilterError(`jump op 0x${code.toString(16)}`);
        pc += taken ? jt : jf;
        break;
      }
      case 0x06: // BPF_RET
        return { value: ((code & 0x18) === 0x10 ? a : k) >>> 0, readInstructionPointer: readIp };
      case 0x07: // BPF_MISC
        if ((code & 0xf8) === 0x00)
          x = a; // TAX
        else a = x; // TXA
        break;
    }
  }
  throw new BadFilterError("program does not end");
}

/**
 * The action that wins among one thread's filters, given their answers oldest filter first (the order
 * of PTRACE_SECCOMP_GET_FILTER's indexes: kernel/seccomp.c get_nth_filter counts index 0 from the
 * oldest). The kernel runs the newest first and keeps an answer only if its action is strictly more
 * severe — the lowest as a signed 32-bit number (KILL_PROCESS is 0x80000000) — so among equal actions
 * the newest filter's data (its errno) wins [kernel/seccomp.c seccomp_run_filters].
 */
export function strictestAction(oldestFirst: readonly number[]): number {
  let best: number = SECCOMP_RET.ALLOW;
  for (const v of [...oldestFirst].reverse()) {
    if (((v & 0xffff0000) | 0) < ((best & 0xffff0000) | 0)) best = v;
  }
  return best >>> 0;
}

/** Whether a filter's answer lets the call run normally. */
export function allowsCall(value: number): boolean {
  const action = (value & 0xffff0000) >>> 0;
  return action === SECCOMP_RET.ALLOW || action === SECCOMP_RET.LOG;
}

/** What an action does, for people: `KILL_PROCESS`, `ERRNO(1)`… */
export function describeAction(value: number): string {
  const action = (value & 0xffff0000) >>> 0;
  const data = value & 0xffff;
  for (const [name, v] of Object.entries(SECCOMP_RET)) {
    if (v >>> 0 !== action) continue;
    return name === "ERRNO" || name === "TRACE" || name === "TRAP" ? `${name}(${data})` : name;
  }
  return `action 0x${action.toString(16)}`;
}
