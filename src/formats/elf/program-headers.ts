import type { ByteReader } from "./byte-reader.js";
import type { ElfHeader } from "./header.js";
import { ELF64_PHDR_SIZE } from "./header.js";

/** One program header [gABI 5.1 "Program Header"]. */
export interface ProgramHeader {
  readonly index: number;
  readonly p_type: number;
  readonly p_flags: number;
  readonly p_offset: bigint;
  readonly p_vaddr: bigint;
  readonly p_paddr: bigint;
  readonly p_filesz: bigint;
  readonly p_memsz: bigint;
  readonly p_align: bigint;
}

export function parseProgramHeaders(r: ByteReader, h: ElfHeader): ProgramHeader[] {
  if (h.e_phnum === 0) return [];
  const base = r.check(
    h.e_phoff,
    BigInt(h.e_phnum) * BigInt(ELF64_PHDR_SIZE),
    `program header table (${h.e_phnum} entries)`,
  );
  const out: ProgramHeader[] = [];
  for (let i = 0; i < h.e_phnum; i++) {
    const o = base + i * ELF64_PHDR_SIZE;
    out.push({
      index: i,
      p_type: r.rawU32(o),
      p_flags: r.rawU32(o + 4),
      p_offset: r.rawU64(o + 8),
      p_vaddr: r.rawU64(o + 16),
      p_paddr: r.rawU64(o + 24),
      p_filesz: r.rawU64(o + 32),
      p_memsz: r.rawU64(o + 40),
      p_align: r.rawU64(o + 48),
    });
  }
  return out;
}
