/**
 * Walk the call stack of a stopped thread: which functions it is in and will return into. Used by
 * `--consistency quiescent` (no thread may have a replaced function on its stack) and meant for
 * backtraces too. Each frame is unwound with the `.eh_frame` CFI of the module its PC is in (exact
 * at every instruction, with or without frame pointers, libc included); code without CFI (a JIT, a
 * module built with -fno-asynchronous-unwind-tables) falls back to the frame-pointer chain. The walk
 * ends cleanly at the outermost frame (the return address is marked undefined by glibc's `_start`
 * and `clone3`) and stops, saying why, on anything that does not look like a frame: a PC outside
 * executable memory, a stack pointer that does not grow, unreadable memory, a CFI expression.
 */
import { readFileSync } from "node:fs";
import { type CfaRow, cfaRowAt, EhFrame, type Fde } from "../formats/elf/eh-frame.js";
import { type Elf, parseElf } from "../formats/elf/elf.js";
import { loadBias } from "../formats/elf/load-bias.js";
import { findMapping, type Mapping } from "./maps.js";
import { openMemory, type ProcessMemory } from "./memory.js";
import { listModules, type Module } from "./modules.js";
import type { Registers } from "./registers.js";

/** One frame of a stack, innermost first. */
export interface StackFrame {
  /** The PC: where the thread is (frame 0) or will return to (the others). */
  readonly pc: bigint;
  /** The stack pointer in that frame. */
  readonly sp: bigint;
  /** How this frame was found from the one below it. */
  readonly method: "registers" | "cfi" | "frame-pointer";
  /** The file the PC is in (`[vdso]` included), if any. */
  readonly module: string | undefined;
  /** The PC as a link-time address of that file (for symbolizing). */
  readonly fileAddress: bigint | undefined;
}

/** Why the walk ended. Only `outermost` means every frame was found. */
export type UnwindEnd =
  | "outermost"
  | "no-unwind-info"
  | "unsupported-cfi"
  | "bad-frame"
  | "unreadable-stack"
  | "frame-limit";

export interface Backtrace {
  readonly frames: readonly StackFrame[];
  readonly end: UnwindEnd;
}

/** A module's ELF and load bias, as the caller has it (live/ passes its shared, cached modules). */
export type ModuleLoader = (m: Module) => { readonly elf: Elf; readonly bias: bigint } | undefined;

const RIP = 16;
const RSP = 7;
const RBP = 6;
/** DWARF register number → user_regs_struct field [psABI x86-64 figure 3.36]. */
const DWARF_REGS = [
  "rax",
  "rdx",
  "rcx",
  "rbx",
  "rsi",
  "rdi",
  "rbp",
  "rsp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
] as const;

interface CodeSource {
  readonly name: string;
  readonly start: bigint;
  readonly end: bigint;
  readonly bias: bigint;
  readonly eh: EhFrame | undefined;
}

const ehFrames = new WeakMap<Elf, EhFrame | null>();

function ehFrameOf(elf: Elf): EhFrame | undefined {
  let eh = ehFrames.get(elf);
  if (eh === undefined) {
    const s = elf.findSection(".eh_frame");
    const h = elf.findSection(".eh_frame_hdr");
    eh =
      s === undefined || s.sh_type === 8 /* SHT_NOBITS */
        ? null
        : new EhFrame(
            elf.sectionBytes(s),
            s.sh_addr,
            h === undefined ? undefined : { bytes: elf.sectionBytes(h), address: h.sh_addr },
          );
    ehFrames.set(elf, eh);
  }
  return eh ?? undefined;
}

/** Default loader: the very file mapped, through /proc/PID/map_files. */
function mapFilesLoader(pid: number): ModuleLoader {
  return (m) => {
    const base = m.base;
    if (base === undefined) return undefined;
    try {
      const elf = parseElf(
        readFileSync(`/proc/${pid}/map_files/${base.start.toString(16)}-${base.end.toString(16)}`),
        {
          file: m.path,
        },
      );
      const bias = loadBias(elf, base.start, base.offset);
      return bias === undefined ? undefined : { elf, bias };
    } catch {
      return undefined;
    }
  };
}

/**
 * Unwinds the threads of one stopped process. Build it once per stop (it reads the maps and loads
 * modules on first use); unwind each thread's registers with `unwind`.
 */
export class Unwinder {
  private readonly sources: CodeSource[] = [];
  private readonly mem: ProcessMemory;
  private readonly modules: Module[];
  private readonly loaded = new Map<Module, CodeSource | null>();

  constructor(
    readonly pid: number,
    private readonly maps: readonly Mapping[],
    private readonly loader: ModuleLoader = mapFilesLoader(pid),
  ) {
    this.mem = openMemory(pid);
    this.modules = listModules(maps);
    const vdso = maps.find((m) => m.path === "[vdso]");
    if (vdso !== undefined) {
      // The vDSO is an ELF image in memory only, linked at 0 (bias = its address).
      try {
        const elf = parseElf(this.mem.read(vdso.start, Number(vdso.end - vdso.start)), { file: "[vdso]" });
        this.sources.push({
          name: "[vdso]",
          start: vdso.start,
          end: vdso.end,
          bias: vdso.start,
          eh: ehFrameOf(elf),
        });
      } catch {}
    }
  }

  /** Release the memory file descriptor. */
  close(): void {
    this.mem.close();
  }

  /** The frames of a thread stopped with registers `regs`, innermost first (at most `maxFrames`). */
  unwind(regs: Registers, maxFrames = 256): Backtrace {
    const frames: StackFrame[] = [];
    const r = new Map<number, bigint | undefined>();
    for (const [i, name] of DWARF_REGS.entries()) r.set(i, regs[name]);
    let method: StackFrame["method"] = "registers";
    let returnAddress = false; // frame 0's PC is where it stands; the others' are after a call
    for (;;) {
      const pc = r.get(RIP);
      const sp = r.get(RSP);
      if (pc === undefined || pc === 0n) return { frames, end: "outermost" };
      if (sp === undefined) return { frames, end: "bad-frame" };
      const mapping = findMapping(this.maps, pc);
      if (mapping === undefined || !mapping.perms.x) return { frames, end: "bad-frame" };
      const source = this.sourceAt(pc);
      frames.push({
        pc,
        sp,
        method,
        module: source?.name ?? (mapping.path === "" ? undefined : mapping.path),
        fileAddress: source === undefined ? undefined : pc - source.bias,
      });
      if (frames.length >= maxFrames) return { frames, end: "frame-limit" };
      const lookup: bigint = (returnAddress ? pc - 1n : pc) - (source?.bias ?? 0n);
      const fde: Fde | undefined = source?.eh?.findFde(lookup);
      let next: Map<number, bigint | undefined> | "outermost" | UnwindEnd;
      if (fde !== undefined) {
        let row: CfaRow;
        try {
          row = cfaRowAt(fde, lookup);
        } catch {
          return { frames, end: "unsupported-cfi" };
        }
        next = this.applyCfi(row, r);
        method = "cfi";
        // After a signal trampoline's frame the PC is the interrupted instruction, not a return address.
        returnAddress = !fde.cie.signalFrame;
      } else {
        next = this.followFramePointer(r);
        method = "frame-pointer";
        returnAddress = true;
      }
      if (next === "outermost") return { frames, end: "outermost" };
      if (typeof next === "string") return { frames, end: next };
      const nextSp = next.get(RSP);
      if (nextSp === undefined || nextSp <= sp) return { frames, end: "bad-frame" };
      for (const [k, v] of next) r.set(k, v);
    }
  }

  private applyCfi(
    row: CfaRow,
    r: Map<number, bigint | undefined>,
  ): Map<number, bigint | undefined> | "outermost" | UnwindEnd {
    if (row.cfa.kind !== "register") return "unsupported-cfi";
    const base = r.get(row.cfa.register);
    if (base === undefined) return "bad-frame";
    const cfa = BigInt.asUintN(64, base + row.cfa.offset);
    const out = new Map<number, bigint | undefined>();
    const ra = row.registers.get(RIP);
    if (ra === undefined || ra.kind === "undefined") return "outermost";
    for (const [reg, rule] of row.registers) {
      switch (rule.kind) {
        case "offset": {
          const v = this.word(cfa + rule.offset);
          if (v === undefined) return "unreadable-stack";
          out.set(reg, v);
          break;
        }
        case "val-offset":
          out.set(reg, cfa + rule.offset);
          break;
        case "register":
          out.set(reg, r.get(rule.register));
          break;
        case "undefined":
          out.set(reg, undefined);
          break;
        case "same":
          break;
        case "expression":
          if (reg === RIP || reg === RSP) return "unsupported-cfi";
          out.set(reg, undefined);
          break;
      }
    }
    out.set(RSP, cfa);
    return out;
  }

  /** push %rbp; mov %rsp,%rbp: the caller's rbp at [rbp], its return address at [rbp+8]. */
  private followFramePointer(
    r: Map<number, bigint | undefined>,
  ): Map<number, bigint | undefined> | UnwindEnd {
    const rbp = r.get(RBP);
    const sp = r.get(RSP);
    if (rbp === undefined || rbp === 0n) return "no-unwind-info";
    if (sp === undefined || rbp < sp || (rbp & 7n) !== 0n) return "no-unwind-info";
    const stack = findMapping(this.maps, sp);
    if (stack === undefined || rbp + 16n > stack.end) return "no-unwind-info";
    const savedRbp = this.word(rbp);
    const ra = this.word(rbp + 8n);
    if (savedRbp === undefined || ra === undefined) return "unreadable-stack";
    return new Map([
      [RBP, savedRbp],
      [RIP, ra],
      [RSP, rbp + 16n],
    ]);
  }

  private word(addr: bigint): bigint | undefined {
    try {
      const b = this.mem.read(addr, 8);
      return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    } catch {
      return undefined;
    }
  }

  private sourceAt(pc: bigint): CodeSource | undefined {
    const known = this.sources.find((s) => s.start <= pc && pc < s.end);
    if (known !== undefined) return known;
    const m = this.modules.find((x) => x.mappings.some((y) => y.start <= pc && pc < y.end));
    if (m === undefined) return undefined;
    if (!this.loaded.has(m)) {
      const l = this.loader(m);
      const source =
        l === undefined
          ? null
          : { name: m.path, start: m.start, end: m.end, bias: l.bias, eh: ehFrameOf(l.elf) };
      this.loaded.set(m, source);
      if (source !== null) this.sources.push(source);
    }
    return this.loaded.get(m) ?? undefined;
  }
}
