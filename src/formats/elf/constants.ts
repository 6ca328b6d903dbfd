/**
 * ELF constants with the spellings of the gABI and the x86-64/AArch64 psABIs, and one helper
 * that names a value or prints it as `PREFIX+0x…` when unknown (never a crash on a new value).
 */

export const ET = { ET_NONE: 0, ET_REL: 1, ET_EXEC: 2, ET_DYN: 3, ET_CORE: 4 } as const;
export const EM = { EM_386: 3, EM_X86_64: 62, EM_AARCH64: 183, EM_RISCV: 243 } as const;

export const PT = {
  PT_NULL: 0,
  PT_LOAD: 1,
  PT_DYNAMIC: 2,
  PT_INTERP: 3,
  PT_NOTE: 4,
  PT_SHLIB: 5,
  PT_PHDR: 6,
  PT_TLS: 7,
  PT_GNU_EH_FRAME: 0x6474e550,
  PT_GNU_STACK: 0x6474e551,
  PT_GNU_RELRO: 0x6474e552,
  PT_GNU_PROPERTY: 0x6474e553,
} as const;
export const PF = { PF_X: 1, PF_W: 2, PF_R: 4 } as const;

export const SHT = {
  SHT_NULL: 0,
  SHT_PROGBITS: 1,
  SHT_SYMTAB: 2,
  SHT_STRTAB: 3,
  SHT_RELA: 4,
  SHT_HASH: 5,
  SHT_DYNAMIC: 6,
  SHT_NOTE: 7,
  SHT_NOBITS: 8,
  SHT_REL: 9,
  SHT_SHLIB: 10,
  SHT_DYNSYM: 11,
  SHT_INIT_ARRAY: 14,
  SHT_FINI_ARRAY: 15,
  SHT_PREINIT_ARRAY: 16,
  SHT_GROUP: 17,
  SHT_SYMTAB_SHNDX: 18,
  SHT_RELR: 19,
  SHT_GNU_HASH: 0x6ffffff6,
  SHT_GNU_verdef: 0x6ffffffd,
  SHT_GNU_verneed: 0x6ffffffe,
  SHT_GNU_versym: 0x6fffffff,
  SHT_X86_64_UNWIND: 0x70000001,
  SHT_LLVM_ADDRSIG: 0x6fff4c03,
} as const;

export const SHF = {
  SHF_WRITE: 0x1,
  SHF_ALLOC: 0x2,
  SHF_EXECINSTR: 0x4,
  SHF_MERGE: 0x10,
  SHF_STRINGS: 0x20,
  SHF_INFO_LINK: 0x40,
  SHF_LINK_ORDER: 0x80,
  SHF_GROUP: 0x200,
  SHF_TLS: 0x400,
  SHF_COMPRESSED: 0x800,
} as const;

export const SHN = {
  SHN_UNDEF: 0,
  SHN_LORESERVE: 0xff00,
  SHN_ABS: 0xfff1,
  SHN_COMMON: 0xfff2,
  SHN_XINDEX: 0xffff,
} as const;

export const STT = {
  STT_NOTYPE: 0,
  STT_OBJECT: 1,
  STT_FUNC: 2,
  STT_SECTION: 3,
  STT_FILE: 4,
  STT_COMMON: 5,
  STT_TLS: 6,
  STT_GNU_IFUNC: 10,
} as const;
export const STB = { STB_LOCAL: 0, STB_GLOBAL: 1, STB_WEAK: 2, STB_GNU_UNIQUE: 10 } as const;
export const STV = { STV_DEFAULT: 0, STV_INTERNAL: 1, STV_HIDDEN: 2, STV_PROTECTED: 3 } as const;

export const DT = {
  DT_NULL: 0,
  DT_NEEDED: 1,
  DT_PLTRELSZ: 2,
  DT_PLTGOT: 3,
  DT_HASH: 4,
  DT_STRTAB: 5,
  DT_SYMTAB: 6,
  DT_RELA: 7,
  DT_RELASZ: 8,
  DT_RELAENT: 9,
  DT_STRSZ: 10,
  DT_SYMENT: 11,
  DT_INIT: 12,
  DT_FINI: 13,
  DT_SONAME: 14,
  DT_RPATH: 15,
  DT_SYMBOLIC: 16,
  DT_REL: 17,
  DT_RELSZ: 18,
  DT_RELENT: 19,
  DT_PLTREL: 20,
  DT_DEBUG: 21,
  DT_TEXTREL: 22,
  DT_JMPREL: 23,
  DT_BIND_NOW: 24,
  DT_INIT_ARRAY: 25,
  DT_FINI_ARRAY: 26,
  DT_INIT_ARRAYSZ: 27,
  DT_FINI_ARRAYSZ: 28,
  DT_RUNPATH: 29,
  DT_FLAGS: 30,
  DT_RELRSZ: 35,
  DT_RELR: 36,
  DT_RELRENT: 37,
  DT_GNU_HASH: 0x6ffffef5,
  DT_VERSYM: 0x6ffffff0,
  DT_RELACOUNT: 0x6ffffff9,
  DT_RELCOUNT: 0x6ffffffa,
  DT_FLAGS_1: 0x6ffffffb,
  DT_VERDEF: 0x6ffffffc,
  DT_VERDEFNUM: 0x6ffffffd,
  DT_VERNEED: 0x6ffffffe,
  DT_VERNEEDNUM: 0x6fffffff,
} as const;

/** x86-64 psABI relocation types [x86-64 psABI 4.4.1]. */
export const R_X86_64 = {
  R_X86_64_NONE: 0,
  R_X86_64_64: 1,
  R_X86_64_PC32: 2,
  R_X86_64_GOT32: 3,
  R_X86_64_PLT32: 4,
  R_X86_64_COPY: 5,
  R_X86_64_GLOB_DAT: 6,
  R_X86_64_JUMP_SLOT: 7,
  R_X86_64_RELATIVE: 8,
  R_X86_64_GOTPCREL: 9,
  R_X86_64_32: 10,
  R_X86_64_32S: 11,
  R_X86_64_16: 12,
  R_X86_64_PC16: 13,
  R_X86_64_8: 14,
  R_X86_64_PC8: 15,
  R_X86_64_DTPMOD64: 16,
  R_X86_64_DTPOFF64: 17,
  R_X86_64_TPOFF64: 18,
  R_X86_64_TLSGD: 19,
  R_X86_64_TLSLD: 20,
  R_X86_64_DTPOFF32: 21,
  R_X86_64_GOTTPOFF: 22,
  R_X86_64_TPOFF32: 23,
  R_X86_64_PC64: 24,
  R_X86_64_GOTOFF64: 25,
  R_X86_64_GOTPC32: 26,
  R_X86_64_SIZE32: 32,
  R_X86_64_SIZE64: 33,
  R_X86_64_GOTPC32_TLSDESC: 34,
  R_X86_64_TLSDESC_CALL: 35,
  R_X86_64_TLSDESC: 36,
  R_X86_64_IRELATIVE: 37,
  R_X86_64_RELATIVE64: 38,
  R_X86_64_GOTPCRELX: 41,
  R_X86_64_REX_GOTPCRELX: 42,
} as const;

/** AArch64 relocation types used by analysis [ELF for the Arm 64-bit Architecture, 5.7]. */
export const R_AARCH64 = {
  R_AARCH64_NONE: 0,
  R_AARCH64_ABS64: 257,
  R_AARCH64_PREL32: 261,
  R_AARCH64_ADR_PREL_PG_HI21: 275,
  R_AARCH64_ADD_ABS_LO12_NC: 277,
  R_AARCH64_JUMP26: 282,
  R_AARCH64_CALL26: 283,
  R_AARCH64_GLOB_DAT: 1025,
  R_AARCH64_JUMP_SLOT: 1026,
  R_AARCH64_RELATIVE: 1027,
} as const;

export const NT_GNU_BUILD_ID = 3;
export const NT_STAPSDT = 3;

/** Name a constant from one of the tables above, or `PREFIX+0x…` when the value is not in it. */
export function constantName(table: Readonly<Record<string, number>>, value: number, prefix: string): string {
  for (const [name, v] of Object.entries(table)) if (v === value) return name;
  return `${prefix}+0x${value.toString(16)}`;
}
