import { SHF, SHN, SHT, STB, STT } from "../../formats/elf/constants.js";
import type { Elf } from "../../formats/elf/elf.js";
import type { Section } from "../../formats/elf/sections.js";
import { canonicalName, isAnonymousLabel } from "./normalize-name.js";

/** A named function or data object of one build, the thing a diff correlates and compares. */
export interface Unit {
  readonly kind: "function" | "data";
  /** The symbol name (the global one when several name the same address). */
  readonly name: string;
  /** Other symbols at the same address and of the same kind. */
  readonly aliases: readonly string[];
  /** `name` with compiler counters and ThinLTO hashes stripped (normalize-name.ts). */
  readonly canonical: string;
  readonly local: boolean;
  /** Basename of the source file (the STT_FILE symbol before a local), when known. */
  readonly file: string | undefined;
  /** Address (in a .o, the address Elf.sectionAddress lays its section out at). */
  readonly address: bigint;
  readonly size: bigint;
  readonly section: Section;
  /** Offset of the unit inside its section. */
  readonly offset: bigint;
  /** Writable (.data, .bss), thread-local, or without file bytes (.bss). */
  readonly writable: boolean;
  readonly tls: boolean;
  readonly nobits: boolean;
}

const ALLOC = BigInt(SHF.SHF_ALLOC);

/**
 * The units of a build: every FUNC, IFUNC and OBJECT symbol with a size in an allocated section,
 * aliases folded into one unit (global name first). Anonymous labels (`.LC0`, `.L.str`) are not
 * units: what they label is compared by content where it is referenced.
 */
export function buildUnits(elf: Elf): Unit[] {
  const symbols = elf.symbols().length > 0 ? elf.symbols() : elf.dynamicSymbols();
  const byKey = new Map<string, { unit: Unit; names: string[]; globalFirst: boolean }>();
  let file: string | undefined;
  for (const s of symbols) {
    if (s.type === STT.STT_FILE) {
      file = s.name.replace(/^.*\//, "");
      continue;
    }
    if (
      s.type !== STT.STT_FUNC &&
      s.type !== STT.STT_OBJECT &&
      s.type !== STT.STT_GNU_IFUNC &&
      s.type !== STT.STT_TLS
    )
      continue;
    if (s.st_shndx === SHN.SHN_UNDEF || s.st_shndx >= SHN.SHN_LORESERVE || isAnonymousLabel(s.name)) continue;
    const section = elf.sections[s.st_shndx];
    if (section === undefined || (section.sh_flags & ALLOC) === 0n) continue;
    if (s.st_size === 0n) continue;
    const kind = s.type === STT.STT_OBJECT || s.type === STT.STT_TLS ? "data" : "function";
    const tls = (section.sh_flags & BigInt(SHF.SHF_TLS)) !== 0n;
    // In a linked file st_value is the address; in a .o, the offset in its section.
    const base = elf.isRelocatable ? elf.sectionAddress(section) : 0n;
    // A TLS symbol's st_value in a linked file is its offset in the TLS block, not an address.
    const address = tls && !elf.isRelocatable ? tlsBase(elf) + s.st_value : base + s.st_value;
    const offset = elf.isRelocatable ? s.st_value : s.st_value - section.sh_addr;
    const local = s.bind === STB.STB_LOCAL;
    const name = s.name.includes("@") ? s.name.slice(0, s.name.indexOf("@")) : s.name;
    const key = `${kind}:${address}`;
    const have = byKey.get(key);
    if (have !== undefined) {
      if (!have.names.includes(name)) {
        if (!local && have.unit.local) {
          have.names.unshift(name);
          have.unit = { ...have.unit, name, local: false, file: undefined, canonical: canonicalName(name) };
        } else have.names.push(name);
      }
      continue;
    }
    byKey.set(key, {
      names: [name],
      globalFirst: !local,
      unit: {
        kind,
        name,
        aliases: [],
        canonical: canonicalName(name),
        local,
        file: local ? file : undefined,
        address,
        size: s.st_size,
        section,
        offset,
        writable: (section.sh_flags & BigInt(SHF.SHF_WRITE)) !== 0n,
        tls,
        nobits: section.sh_type === SHT.SHT_NOBITS,
      },
    });
  }
  return [...byKey.values()]
    .map(({ unit, names }) => ({ ...unit, aliases: names.filter((n) => n !== unit.name) }))
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/** Address of the first thread-local section of a linked file (where its TLS block image starts). */
function tlsBase(elf: Elf): bigint {
  let base: bigint | undefined;
  for (const s of elf.sections)
    if ((s.sh_flags & BigInt(SHF.SHF_TLS)) !== 0n && (base === undefined || s.sh_addr < base))
      base = s.sh_addr;
  return base ?? 0n;
}
