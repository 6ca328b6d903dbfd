import { RefusedError } from "../core/errors.js";
import { constantName, R_X86_64, SHF, SHN, SHT, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { Section } from "../formats/elf/sections.js";

const PAGE = 0x1000n;
const alignUp = (v: bigint, a: bigint): bigint => (a > 1n ? ((v + a - 1n) / a) * a : v);

/** Memory protection of one segment of the loaded patch: code, read-only data, or writable data. */
export type SegmentKind = "text" | "rodata" | "data";

/** One page-aligned segment of the patch as it will sit in the target. */
export interface ImageSegment {
  readonly kind: SegmentKind;
  /** Offset from the image base. */
  readonly offset: bigint;
  readonly size: bigint;
}

/** Where each allocated section of the patch object goes, and the extra slots graft adds. */
export interface PatchLayout {
  readonly size: bigint;
  readonly segments: readonly ImageSegment[];
  /** Section index → offset from the image base. */
  readonly sectionOffsets: ReadonlyMap<number, bigint>;
  /** Undefined-symbol name → offset of its GOT slot (8 bytes, holds the absolute address). */
  readonly gotSlots: ReadonlyMap<string, bigint>;
  /** External function name → offset of its stub (`jmp *slot(%rip)`) for calls beyond rel32 reach. */
  readonly stubs: ReadonlyMap<string, bigint>;
  /** Offset of the GOT (for GOTPC32/GOTOFF relocations). */
  readonly gotOffset: bigint;
  /**
   * Symbols reached without a GOT slot: each of their GOT loads is rewritten by the linker into a
   * PC-relative `lea` (findRelaxableGotNames).
   */
  readonly relaxed?: ReadonlySet<string>;
}

const GOT_RELOCS: ReadonlySet<number> = new Set([
  R_X86_64.R_X86_64_GOTPCREL,
  R_X86_64.R_X86_64_GOTPCRELX,
  R_X86_64.R_X86_64_REX_GOTPCRELX,
  R_X86_64.R_X86_64_GOT32,
]);
const TLS_RELOCS: ReadonlySet<number> = new Set([
  R_X86_64.R_X86_64_DTPMOD64,
  R_X86_64.R_X86_64_DTPOFF64,
  R_X86_64.R_X86_64_TPOFF64,
  R_X86_64.R_X86_64_TLSGD,
  R_X86_64.R_X86_64_TLSLD,
  R_X86_64.R_X86_64_DTPOFF32,
  R_X86_64.R_X86_64_GOTTPOFF,
  R_X86_64.R_X86_64_TPOFF32,
  R_X86_64.R_X86_64_GOTPC32_TLSDESC,
  R_X86_64.R_X86_64_TLSDESC_CALL,
]);

const STUB_SIZE = 8n; // ff 25 rel32 (6 bytes) + 2 bytes of int3 padding

function segmentOf(s: Section): SegmentKind {
  if ((s.sh_flags & BigInt(SHF.SHF_EXECINSTR)) !== 0n) return "text";
  if ((s.sh_flags & BigInt(SHF.SHF_WRITE)) !== 0n) return "data";
  return "rodata";
}

/**
 * Offset of the first segment after the code when the fix has constants or data of its own (string
 * literals, tables, variables), which outlive a revert; undefined when it has none (graft's GOT only).
 */
export function ownDataOffset(elf: Elf, layout: PatchLayout): bigint | undefined {
  if (!loadedSections(elf).some((s) => segmentOf(s) !== "text")) return undefined;
  return layout.segments.find((s) => s.kind !== "text")?.offset;
}

/** The allocated sections of a patch object that are loaded (the manifest and notes are not). */
export function loadedSections(elf: Elf): Section[] {
  return elf.sections.filter(
    (s) =>
      (s.sh_flags & BigInt(SHF.SHF_ALLOC)) !== 0n &&
      s.sh_type !== SHT.SHT_NOTE &&
      s.sh_size > 0n &&
      s.name !== ".graft",
  );
}

/**
 * Whether the 4 bytes at `offset` of `bytes` are the displacement of `mov disp32(%rip), %r64`
 * (REX.W, 8b, ModRM mod=00 rm=101): the one GOT load the x86-64 psABI lets a linker turn into
 * `lea disp32(%rip), %r64` (opcode 8d) when the symbol is within rel32 reach [psABI B.2].
 */
export function isRelaxableGotLoad(bytes: Uint8Array, offset: number): boolean {
  if (offset < 3 || offset + 4 > bytes.length) return false;
  const rex = bytes[offset - 3]!;
  return (rex & 0xf8) === 0x48 && bytes[offset - 2] === 0x8b && (bytes[offset - 1]! & 0xc7) === 0x05;
}

/**
 * Names of the fix's symbols whose every GOT reference is a relaxable load (R_X86_64_REX_GOTPCRELX
 * on `mov disp32(%rip), %r64`): when the code will reach them with rel32, they need no GOT slot.
 */
function findRelaxableGotNames(elf: Elf, sections: readonly Section[]): Set<string> {
  const symbols = elf.symbols();
  const relaxable = new Set<string>();
  const not = new Set<string>();
  for (const rs of elf.relocationSections()) {
    if (rs.target === undefined || !sections.includes(rs.target)) continue;
    const bytes = rs.target.sh_type === SHT.SHT_NOBITS ? new Uint8Array() : elf.sectionBytes(rs.target);
    for (const r of rs.entries) {
      const sym = symbols[r.symbolIndex];
      if (sym === undefined || sym.name === "" || sym.type === STT.STT_SECTION || !GOT_RELOCS.has(r.type))
        continue;
      if (r.type === R_X86_64.R_X86_64_REX_GOTPCRELX && isRelaxableGotLoad(bytes, Number(r.r_offset)))
        relaxable.add(sym.name);
      else not.add(sym.name);
    }
  }
  return new Set([...relaxable].filter((name) => !not.has(name)));
}

/**
 * `isNear(name)`: the symbol will be within rel32 reach of the code (the caller knows where it puts
 * it), so a call to it needs no stub and its relaxable GOT loads no slot.
 *
 * Lay out a patch object (ET_REL) as three page-aligned segments — text (+ call stubs), rodata
 * (+ GOT, written once by graft and then read-only), data/bss — so nothing is ever writable and
 * executable. Refuses TLS, which would need the target's loader to allocate a TLS block.
 */
export function layoutPatch(
  elf: Elf,
  isDefinedInPatch: (name: string) => boolean,
  isNear: (name: string) => boolean = () => false,
): PatchLayout {
  const sections = loadedSections(elf);
  const relaxable = findRelaxableGotNames(elf, sections);
  const relaxed = new Set<string>();
  const tls = sections.find((s) => (s.sh_flags & BigInt(SHF.SHF_TLS)) !== 0n);
  if (tls !== undefined) {
    throw new RefusedError("UNSUPPORTED_RELOCATION", [`the fix defines thread-local data (${tls.name})`], {
      hint: "move the data to a global, or patch code only",
    });
  }
  const symbols = elf.symbols();
  const gotNames = new Set<string>();
  const stubNames = new Set<string>();
  for (const rs of elf.relocationSections()) {
    if (rs.target === undefined || !sections.includes(rs.target)) continue;
    for (const r of rs.entries) {
      const sym = symbols[r.symbolIndex];
      if (TLS_RELOCS.has(r.type)) {
        throw new RefusedError(
          "UNSUPPORTED_RELOCATION",
          [
            `the fix uses thread-local storage (${constantName(R_X86_64, r.type, "R_X86_64")} against ${sym?.name ?? "?"})`,
          ],
          {
            hint: "thread-local variables cannot be reached from a live patch yet; pass the value in instead",
          },
        );
      }
      if (sym === undefined) continue;
      const external = sym.st_shndx === SHN.SHN_UNDEF && sym.name !== "";
      if (GOT_RELOCS.has(r.type)) {
        if (sym.type !== STT.STT_SECTION && relaxable.has(sym.name) && isNear(sym.name))
          relaxed.add(sym.name);
        else gotNames.add(sym.type === STT.STT_SECTION ? `#section${sym.st_shndx}` : sym.name);
      }
      if (
        external &&
        !isDefinedInPatch(sym.name) &&
        !isNear(sym.name) &&
        (r.type === R_X86_64.R_X86_64_PLT32 || r.type === R_X86_64.R_X86_64_PC32)
      ) {
        stubNames.add(sym.name);
        gotNames.add(sym.name);
      }
    }
  }
  const sectionOffsets = new Map<number, bigint>();
  const segments: ImageSegment[] = [];
  let cursor = 0n;
  const stubs = new Map<string, bigint>();
  const gotSlots = new Map<string, bigint>();
  let gotOffset = 0n;
  for (const kind of ["text", "rodata", "data"] as const) {
    const start = alignUp(cursor, PAGE);
    cursor = start;
    for (const s of sections.filter((x) => segmentOf(x) === kind)) {
      cursor = alignUp(cursor, s.sh_addralign);
      sectionOffsets.set(s.index, cursor);
      cursor += s.sh_size;
    }
    if (kind === "text") {
      cursor = alignUp(cursor, 16n);
      for (const name of stubNames) {
        stubs.set(name, cursor);
        cursor += STUB_SIZE;
      }
    }
    if (kind === "rodata") {
      cursor = alignUp(cursor, 8n);
      gotOffset = cursor;
      for (const name of gotNames) {
        gotSlots.set(name, cursor);
        cursor += 8n;
      }
    }
    if (cursor > start) segments.push({ kind, offset: start, size: alignUp(cursor - start, PAGE) });
    cursor = alignUp(cursor, PAGE);
  }
  return { size: cursor, segments, sectionOffsets, gotSlots, stubs, gotOffset, relaxed };
}
