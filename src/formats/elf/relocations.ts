import { FormatError } from "../../core/errors.js";
import type { ByteReader } from "./byte-reader.js";
import { SHT } from "./constants.js";
import { ELF64_SHDR_SIZE } from "./header.js";
import type { Section } from "./sections.js";

/** One relocation [gABI 4.6 "Relocation"]; `addend` is 0n for SHT_REL (implicit addend in place). */
export interface Relocation {
  readonly r_offset: bigint;
  readonly type: number;
  /** Index into the symbol table named by the relocation section's sh_link. */
  readonly symbolIndex: number;
  readonly addend: bigint;
}

/** A relocation section and what it applies to. */
export interface RelocationSection {
  readonly section: Section;
  /** Section whose bytes are relocated (sh_info when SHF_INFO_LINK or in ET_REL), or undefined for dynamic relocations. */
  readonly target: Section | undefined;
  /** Symbol table the entries index (sh_link). */
  readonly symbolTable: Section | undefined;
  readonly entries: readonly Relocation[];
}

/** Parse a SHT_REL/SHT_RELA section. `shoff` (e_shoff) lets a bad sh_entsize name its offset. */
export function parseRelocations(r: ByteReader, s: Section, shoff?: bigint): Relocation[] {
  const where = r.file === undefined ? {} : { file: r.file };
  const isRela = s.sh_type === SHT.SHT_RELA;
  const entSize = isRela ? 24 : 16;
  if (s.sh_entsize !== 0n && s.sh_entsize !== BigInt(entSize)) {
    const at = shoff === undefined ? {} : { offset: shoff + BigInt(s.index * ELF64_SHDR_SIZE + 56) };
    throw new FormatError("ELF_CORRUPT", `${s.name} sh_entsize is ${s.sh_entsize}, expected ${entSize}`, {
      ...where,
      ...at,
    });
  }
  const count = Number(s.sh_size / BigInt(entSize));
  const base = r.check(
    s.sh_offset,
    BigInt(count * entSize),
    `relocation section ${s.name} (${count} entries)`,
  );
  const out: Relocation[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const o = base + i * entSize;
    const info = r.rawU64(o + 8);
    out[i] = {
      r_offset: r.rawU64(o),
      type: Number(info & 0xffffffffn),
      symbolIndex: Number(info >> 32n),
      addend: isRela ? r.rawI64(o + 16) : 0n,
    };
  }
  return out;
}

/**
 * Decode SHT_RELR packed relative relocations [gABI proposal "RELR", adopted by glibc 2.36]: an
 * even word is an address; an odd word is a bitmap of the next 63 words after the last address.
 * Returns the addresses that get `+= load bias`.
 */
export function parseRelr(r: ByteReader, s: Section): bigint[] {
  const count = Number(s.sh_size / 8n);
  const base = r.check(s.sh_offset, BigInt(count * 8), `RELR section ${s.name}`);
  const out: bigint[] = [];
  let where = 0n;
  for (let i = 0; i < count; i++) {
    const entry = r.rawU64(base + i * 8);
    if ((entry & 1n) === 0n) {
      out.push(entry);
      where = entry + 8n;
    } else {
      let bits = entry >> 1n;
      for (let j = 0n; bits !== 0n; j++, bits >>= 1n) if (bits & 1n) out.push(where + j * 8n);
      where += 63n * 8n;
    }
  }
  return out;
}
