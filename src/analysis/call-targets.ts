import type { Arch, Instruction } from "../arch/arch.js";
import { R_AARCH64, R_X86_64, SHF } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { FunctionInfo } from "./functions.js";

const GOT_SLOT_TYPES: ReadonlySet<number> = new Set([
  R_X86_64.R_X86_64_GLOB_DAT,
  R_X86_64.R_X86_64_JUMP_SLOT,
  R_AARCH64.R_AARCH64_GLOB_DAT,
  R_AARCH64.R_AARCH64_JUMP_SLOT,
]);

/**
 * Names the destination of a call the way objdump does: a function symbol, `name@plt` through the
 * PLT, `*name@got` through a GOT slot (gcc's `call *__fentry__@GOTPCREL(%rip)` in PIE), or in a `.o`
 * the symbol of the relocation on the call's displacement (unresolved until link time).
 */
export class CallTargets {
  private readonly functionsByAddress = new Map<bigint, string>();
  private readonly pltEntries = new Map<bigint, string>();
  private readonly gotSlots = new Map<bigint, string>();
  private readonly objectRelocations = new Map<bigint, string>();

  constructor(
    private readonly elf: Elf,
    arch: Arch,
    functions: readonly FunctionInfo[],
  ) {
    for (const f of functions) this.functionsByAddress.set(f.address, f.name);
    if (elf.isRelocatable) this.indexObjectRelocations();
    else {
      this.indexGotSlots();
      this.indexPlt(arch);
    }
  }

  /** Name of what `insn` (a call or jump) transfers to, or undefined when unknown. */
  nameOf(insn: Instruction): string | undefined {
    if (this.elf.isRelocatable) {
      // The relocated field is the last 4 bytes of a rel32 call/jmp or of a RIP-relative `call
      // *disp(%rip)`, and the whole word of an A64 `bl` (R_AARCH64_CALL26 at the instruction).
      return this.objectRelocations.get(insn.address + BigInt(insn.length) - 4n);
    }
    if (insn.target !== undefined)
      return this.functionsByAddress.get(insn.target) ?? this.pltEntries.get(insn.target);
    if (insn.memoryAddress !== undefined) return this.gotSlots.get(insn.memoryAddress);
    return undefined;
  }

  private indexObjectRelocations(): void {
    const symbols = this.elf.symbols();
    for (const rs of this.elf.relocationSections()) {
      const target = rs.target;
      if (target === undefined || (target.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n) continue;
      const base = this.elf.sectionAddress(target);
      for (const r of rs.entries) {
        const sym = symbols[r.symbolIndex];
        if (sym !== undefined && sym.name !== "") this.objectRelocations.set(base + r.r_offset, sym.name);
      }
    }
  }

  private indexGotSlots(): void {
    const dynsym = this.elf.dynamicSymbols();
    for (const rs of this.elf.relocationSections()) {
      for (const r of rs.entries) {
        if (!GOT_SLOT_TYPES.has(r.type)) continue;
        const sym = dynsym[r.symbolIndex];
        if (sym !== undefined && sym.name !== "") this.gotSlots.set(r.r_offset, sym.name);
      }
    }
  }

  /**
   * Each PLT entry ends in a jump; the next entry starts at the first non-NOP after it. On AArch64
   * the slot comes from the entry's `adrp x16; ldr x17, [x16, #lo12]` pair, which the arch's decode
   * attaches to the `br x17`.
   */
  private indexPlt(arch: Arch): void {
    for (const s of this.elf.sections) {
      if (s.name !== ".plt" && s.name !== ".plt.sec" && s.name !== ".plt.got") continue;
      let entryStart: bigint | undefined = s.sh_addr;
      for (const insn of arch.decode(this.elf.sectionBytes(s), s.sh_addr)) {
        if (entryStart === undefined && insn.kind !== "nop" && insn.kind !== "trap")
          entryStart = insn.address;
        if (insn.kind === "indirect-jump" && insn.memoryAddress !== undefined) {
          const name = this.gotSlots.get(insn.memoryAddress);
          if (name !== undefined && entryStart !== undefined) this.pltEntries.set(entryStart, `${name}@plt`);
        }
        if (insn.kind === "jump" || insn.kind === "indirect-jump") entryStart = undefined;
      }
    }
  }
}
