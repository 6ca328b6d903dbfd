import type { Arch } from "../../arch/arch.js";
import { SHF, SHN, SHT, STT } from "../../formats/elf/constants.js";
import type { Elf } from "../../formats/elf/elf.js";
import type { Section } from "../../formats/elf/sections.js";
import { CallTargets } from "../call-targets.js";
import { listFunctions } from "../functions.js";
import { buildUnits, type Unit } from "./build-units.js";
import { canonicalName } from "./normalize-name.js";
import { relocationShape } from "./relocation-shape.js";

/** One relocation of a .o, at an address of graft's layout, with what it refers to. */
export interface PlacedRelocation {
  readonly type: number;
  /** Bytes it patches. */
  readonly size: number;
  /** Where S + A points in graft's layout, for a defined symbol (undefined for an external one). */
  readonly target: bigint | undefined;
  /** The external symbol's name (undefined symbols only). */
  readonly external: string | undefined;
  readonly addend: bigint;
  /** True when the value is PC-relative (the CPU adds the end of the instruction, not the field). */
  readonly pcRelative: boolean;
  /** The bits of the little-endian word it fills, when not all (A64: the rest is opcode and registers). */
  readonly mask?: number;
}

/**
 * One build (a .o or a linked file) seen the way a diff needs it: its units sorted by address, its
 * relocations by the address they patch, and how to name any address it contains: a unit and an
 * offset, a PLT entry or GOT slot of a linked file, or anonymous data.
 */
export class BuildView {
  readonly units: readonly Unit[];
  readonly relocations = new Map<bigint, PlacedRelocation>();
  /** Source files named by STT_FILE symbols. */
  readonly files: readonly string[];
  private readonly allocated: { section: Section; start: bigint; end: bigint }[] = [];
  private callTargets: CallTargets | undefined;

  constructor(
    readonly elf: Elf,
    readonly arch: Arch,
    readonly label: string,
  ) {
    this.units = buildUnits(elf);
    this.absoluteAddresses = elf.kind === "executable";
    this.files = [
      ...new Set(
        elf
          .symbols()
          .filter((s) => s.type === STT.STT_FILE)
          .map((s) => s.name.replace(/^.*\//, "")),
      ),
    ];
    for (const s of elf.sections) {
      if ((s.sh_flags & BigInt(SHF.SHF_ALLOC)) === 0n || s.sh_size === 0n) continue;
      if ((s.sh_flags & BigInt(SHF.SHF_TLS)) !== 0n && !elf.isRelocatable) continue;
      const start = elf.sectionAddress(s);
      this.allocated.push({ section: s, start, end: start + s.sh_size });
    }
    this.allocated.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    if (elf.isRelocatable) this.placeRelocations();
  }

  private placeRelocations(): void {
    const symbols = this.elf.symbols();
    for (const rs of this.elf.relocationSections()) {
      const target = rs.target;
      if (target === undefined || (target.sh_flags & BigInt(SHF.SHF_ALLOC)) === 0n) continue;
      const base = this.elf.sectionAddress(target);
      for (const r of rs.entries) {
        const sym = symbols[r.symbolIndex];
        let at: bigint | undefined;
        let external: string | undefined;
        if (sym === undefined || sym.st_shndx === SHN.SHN_UNDEF) external = sym?.name ?? "";
        else if (sym.st_shndx === SHN.SHN_ABS) external = `abs:${sym.st_value}`;
        else if (sym.st_shndx < SHN.SHN_LORESERVE) {
          const sec = this.elf.sections[sym.st_shndx];
          at =
            sec === undefined
              ? undefined
              : this.elf.sectionAddress(sec) + (sym.type === STT.STT_SECTION ? 0n : sym.st_value) + r.addend;
        } else external = `special:${sym.name}`;
        const shape = relocationShape(this.elf.header.e_machine, r.type);
        this.relocations.set(base + r.r_offset, {
          type: r.type,
          size: shape.size,
          target: at,
          external,
          addend: r.addend,
          pcRelative: shape.pcRelative,
          ...(shape.mask === undefined ? {} : { mask: shape.mask }),
        });
      }
    }
  }

  /** The unit whose bytes hold `address`, if any. */
  unitAt(address: bigint): Unit | undefined {
    const u = this.units;
    let lo = 0;
    let hi = u.length - 1;
    let found: Unit | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (u[mid]!.address <= address) {
        found = u[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Units may nest (a data object inside a bigger one): look back a few for one that covers.
    for (let i = lo - 1; i >= 0 && i >= lo - 4; i--) {
      const c = u[i]!;
      if (c.address <= address && address < c.address + c.size) return c;
    }
    return found !== undefined && address < found.address + found.size ? found : undefined;
  }

  /** The first unit that starts after `address`. */
  nextUnitAfter(address: bigint): Unit | undefined {
    const u = this.units;
    let lo = 0;
    let hi = u.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (u[mid]!.address <= address) lo = mid + 1;
      else hi = mid;
    }
    return u[lo];
  }

  /** The allocated section holding `address`. */
  sectionAt(address: bigint): { section: Section; start: bigint; end: bigint } | undefined {
    const a = this.allocated;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = a[mid]!;
      if (address < s.start) hi = mid - 1;
      else if (address >= s.end) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  /** The bytes of a unit (zeros for .bss). */
  unitBytes(u: Unit): Uint8Array {
    if (u.nobits) return new Uint8Array(Number(u.size));
    const all = this.elf.sectionBytes(u.section);
    return all.subarray(Number(u.offset), Number(u.offset + u.size));
  }

  /** `length` bytes at `address` (fewer at the end of its section; zeros in .bss). */
  bytesAt(address: bigint, length: number): Uint8Array {
    const s = this.sectionAt(address);
    if (s === undefined) return new Uint8Array(0);
    const n = Math.min(length, Number(s.end - address));
    if (s.section.sh_type === SHT.SHT_NOBITS) return new Uint8Array(n);
    const off = Number(address - s.start);
    return this.elf.sectionBytes(s.section).subarray(off, off + n);
  }

  /** In a linked file: `name@plt` or `*name@got` for a PLT entry or GOT slot address. */
  linkedName(address: bigint): string | undefined {
    if (this.elf.isRelocatable) return undefined;
    this.callTargets ??= new CallTargets(this.elf, this.arch, listFunctions(this.elf, this.arch));
    const asBranch = this.callTargets.nameOf({
      address: 0n,
      length: 5,
      kind: "call",
      target: address,
      pcRelative: false,
      text: "",
    });
    if (asBranch !== undefined) return asBranch;
    const asSlot = this.callTargets.nameOf({
      address: 0n,
      length: 6,
      kind: "indirect-call",
      pcRelative: true,
      memoryAddress: address,
      text: "",
    });
    return asSlot === undefined ? undefined : canonicalName(asSlot);
  }

  /** True for a non-PIE executable, whose code holds absolute addresses in immediates. */
  readonly absoluteAddresses: boolean;
}
