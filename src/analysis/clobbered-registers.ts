import type { Arch, RegisterWrites } from "../arch/arch.js";
import type { Elf } from "../formats/elf/elf.js";
import type { FunctionInfo } from "./functions.js";

/** Functions followed through calls before giving up and answering "every caller-saved register". */
const MAX_FUNCTIONS = 512;

/**
 * Which caller-saved registers a call to a function of a linked file may change: what its own code
 * writes and what every function it calls or tail-jumps to writes, through the whole call graph below
 * it. Every caller-saved register when that graph leaves the file's known functions (a PLT entry, an
 * indirect call or jump) or is too big to follow. This is the fact gcc's -fipa-ra computes to let a
 * caller keep values in caller-saved registers across a call; a call may only be pointed at a new
 * callee that clobbers no more than the old one.
 */
export class ClobberedRegisters {
  private readonly byAddress = new Map<bigint, FunctionInfo>();
  private readonly writes = new Map<bigint, RegisterWrites>();
  private readonly answers = new Map<bigint, readonly string[]>();

  constructor(
    private readonly elf: Elf,
    private readonly arch: Arch,
    functions: readonly FunctionInfo[],
  ) {
    for (const f of functions) this.byAddress.set(f.address, f);
  }

  /** The caller-saved registers a call to link-time `address` may change, in the arch's order. */
  of(address: bigint): readonly string[] {
    const known = this.answers.get(address);
    if (known !== undefined) return known;
    const all = this.arch.callerSavedRegisters;
    let answer: readonly string[] = all;
    if (!this.elf.isRelocatable) {
      const clobbered = new Set<string>();
      const seen = new Set<bigint>([address]);
      const todo = [address];
      let complete = true;
      while (todo.length > 0 && complete) {
        const at = todo.pop()!;
        const w = this.own(at);
        if (w === undefined || w.opaque || seen.size > MAX_FUNCTIONS) complete = false;
        else {
          for (const r of w.clobbered) clobbered.add(r);
          for (const c of w.callees) {
            if (seen.has(c)) continue;
            seen.add(c);
            todo.push(c);
          }
        }
      }
      if (complete) answer = all.filter((r) => clobbered.has(r));
    }
    this.answers.set(address, answer);
    return answer;
  }

  /** One function's own writes, or undefined when `address` is no function entry of the file. */
  private own(address: bigint): RegisterWrites | undefined {
    const cached = this.writes.get(address);
    if (cached !== undefined) return cached;
    const fn = this.byAddress.get(address);
    if (fn === undefined) return undefined;
    const bytes = this.elf.sectionBytes(fn.section);
    const offset = Number(fn.address - this.elf.sectionAddress(fn.section));
    if (offset < 0 || offset >= bytes.length) return undefined;
    const w = this.arch.registerWrites(
      bytes.subarray(offset, Math.min(bytes.length, offset + Number(fn.size))),
      fn.address,
    );
    this.writes.set(address, w);
    return w;
  }
}
