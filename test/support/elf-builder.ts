/**
 * A small ELF64 little-endian writer for tests of broken input: lay out sections (and optionally
 * program headers) the way a linker would, with every header field open to override, so a test can
 * build exactly the damage it names and know the offset the reader must report. [gABI 4.1, 4.2, 5.1]
 */

export interface SectionSpec {
  readonly name: string;
  readonly type: number;
  readonly flags?: bigint;
  /** sh_addr; an SHF_ALLOC section without one is placed at its file offset (a load bias of 0). */
  readonly addr?: bigint;
  /** Contents; none for SHT_NOBITS. */
  readonly data?: Uint8Array;
  /** sh_link as a section name (resolved to its index) or a raw number. */
  readonly link?: string | number;
  readonly info?: string | number;
  readonly addralign?: bigint;
  readonly entsize?: bigint;
  /** Overrides: the values written, whatever the layout. */
  readonly size?: bigint;
  readonly offset?: bigint;
  readonly nameIndex?: number;
}

export interface SegmentSpec {
  readonly type: number;
  readonly flags?: number;
  /** Cover this section's file range and address; the fields below override. */
  readonly section?: string;
  /** Cover every byte before the section header table, at address = offset (a PT_LOAD for the lot). */
  readonly wholeFile?: boolean;
  readonly offset?: bigint;
  readonly vaddr?: bigint;
  readonly filesz?: bigint;
  readonly memsz?: bigint;
  readonly align?: bigint;
}

export interface HeaderOverrides {
  readonly ei_class?: number;
  readonly ei_data?: number;
  readonly ei_version?: number;
  readonly e_type?: number;
  readonly e_machine?: number;
  readonly e_entry?: bigint;
  readonly e_phoff?: bigint;
  readonly e_shoff?: bigint;
  readonly e_phentsize?: number;
  readonly e_phnum?: number;
  readonly e_shentsize?: number;
  readonly e_shnum?: number;
  readonly e_shstrndx?: number;
  /** Written into section 0's sh_size / sh_link (extended numbering). */
  readonly section0Size?: bigint;
  readonly section0Link?: number;
}

export interface ElfSpec {
  /** ET_REL by default. */
  readonly type?: number;
  /** EM_X86_64 by default. */
  readonly machine?: number;
  readonly sections?: readonly SectionSpec[];
  readonly segments?: readonly SegmentSpec[];
  readonly header?: HeaderOverrides;
}

export interface BuiltElf {
  readonly bytes: Uint8Array;
  readonly phoff: number;
  readonly shoff: number;
  /** Index of a section by name (0 is the null section, .shstrtab is last). */
  index(name: string): number;
  /** File offset of a section's contents. */
  contentOffset(name: string): number;
  /** File offset of a section's header. */
  headerOffset(name: string): number;
}

export const ELF_HEADER_SIZE = 64;
export const PHDR_SIZE = 56;
export const SHDR_SIZE = 64;
export const SYM_SIZE = 24;

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Lay out and write the file. Sections get indexes 1..n in order; `.shstrtab` is appended last. */
export function buildElf(spec: ElfSpec): BuiltElf {
  const h = spec.header ?? {};
  const user = spec.sections ?? [];
  const names = stringTable(["", ...user.map((s) => s.name), ".shstrtab"]);
  const all: SectionSpec[] = [
    { name: "", type: 0 },
    ...user,
    { name: ".shstrtab", type: 3, data: names.bytes, addralign: 1n },
  ];
  const index = (name: string): number => {
    const i = all.findIndex((s) => s.name === name);
    if (i < 0) throw new Error(`no section ${name} in the spec`);
    return i;
  };
  const ref = (v: string | number | undefined): number =>
    v === undefined ? 0 : typeof v === "number" ? v : index(v);

  const segments = spec.segments ?? [];
  const phoff = segments.length > 0 ? ELF_HEADER_SIZE : 0;
  let cursor = ELF_HEADER_SIZE + segments.length * PHDR_SIZE;
  const offsets: number[] = all.map((s, i) => {
    if (i === 0) return 0;
    cursor = align(cursor, Math.max(1, Math.min(Number(s.addralign ?? 8n), 4096)));
    const at = cursor;
    if (s.type !== 8) cursor += s.data?.length ?? 0;
    return at;
  });
  const shoff = align(cursor, 8);
  const addrOf = (s: SectionSpec, i: number): bigint =>
    s.addr ?? ((s.flags ?? 0n) & 2n ? BigInt(offsets[i]!) : 0n);
  const bytes = new Uint8Array(shoff + all.length * SHDR_SIZE);
  const view = new DataView(bytes.buffer);

  // Contents.
  all.forEach((s, i) => {
    if (s.data !== undefined && s.type !== 8) bytes.set(s.data, offsets[i]!);
  });

  // Section headers.
  all.forEach((s, i) => {
    const o = shoff + i * SHDR_SIZE;
    view.setUint32(o, s.nameIndex ?? names.offsetOf(s.name), true);
    view.setUint32(o + 4, s.type, true);
    view.setBigUint64(o + 8, s.flags ?? 0n, true);
    view.setBigUint64(o + 16, addrOf(s, i), true);
    view.setBigUint64(o + 24, s.offset ?? BigInt(offsets[i]!), true);
    view.setBigUint64(o + 32, s.size ?? BigInt(s.data?.length ?? 0), true);
    view.setUint32(o + 40, ref(s.link), true);
    view.setUint32(o + 44, ref(s.info), true);
    view.setBigUint64(o + 48, s.addralign ?? (i === 0 ? 0n : 1n), true);
    view.setBigUint64(o + 56, s.entsize ?? 0n, true);
  });
  if (h.section0Size !== undefined) view.setBigUint64(shoff + 32, h.section0Size, true);
  if (h.section0Link !== undefined) view.setUint32(shoff + 40, h.section0Link, true);

  // Program headers.
  segments.forEach((p, i) => {
    const o = phoff + i * PHDR_SIZE;
    const si = p.section === undefined ? undefined : index(p.section);
    const s = si === undefined ? undefined : all[si]!;
    const sOffset = si === undefined ? 0n : BigInt(offsets[si]!);
    const sAddr = si === undefined ? 0n : addrOf(s!, si);
    const sSize = p.wholeFile ? BigInt(shoff) : BigInt(s?.data?.length ?? 0);
    view.setUint32(o, p.type, true);
    view.setUint32(o + 4, p.flags ?? 4, true);
    view.setBigUint64(o + 8, p.offset ?? sOffset, true);
    view.setBigUint64(o + 16, p.vaddr ?? sAddr, true);
    view.setBigUint64(o + 24, p.vaddr ?? sAddr, true);
    view.setBigUint64(o + 32, p.filesz ?? (s?.type === 8 ? 0n : sSize), true);
    view.setBigUint64(o + 40, p.memsz ?? sSize, true);
    view.setBigUint64(o + 48, p.align ?? 8n, true);
  });

  // File header.
  bytes.set([0x7f, 0x45, 0x4c, 0x46, h.ei_class ?? 2, h.ei_data ?? 1, h.ei_version ?? 1, 0]);
  view.setUint16(16, h.e_type ?? spec.type ?? 1, true);
  view.setUint16(18, h.e_machine ?? spec.machine ?? 62, true);
  view.setUint32(20, 1, true);
  view.setBigUint64(24, h.e_entry ?? 0n, true);
  view.setBigUint64(32, h.e_phoff ?? BigInt(phoff), true);
  view.setBigUint64(40, h.e_shoff ?? BigInt(shoff), true);
  view.setUint32(48, 0, true);
  view.setUint16(52, ELF_HEADER_SIZE, true);
  view.setUint16(54, h.e_phentsize ?? PHDR_SIZE, true);
  view.setUint16(56, h.e_phnum ?? segments.length, true);
  view.setUint16(58, h.e_shentsize ?? SHDR_SIZE, true);
  view.setUint16(60, h.e_shnum ?? all.length, true);
  view.setUint16(62, h.e_shstrndx ?? all.length - 1, true);

  return {
    bytes,
    phoff,
    shoff,
    index,
    contentOffset: (name) => offsets[index(name)]!,
    headerOffset: (name) => shoff + index(name) * SHDR_SIZE,
  };
}

/** A string table: NUL, then each distinct string NUL-terminated. */
export function stringTable(strings: readonly string[]): { bytes: Uint8Array; offsetOf(s: string): number } {
  const at = new Map<string, number>([["", 0]]);
  const parts: number[] = [0];
  for (const s of strings) {
    if (at.has(s)) continue;
    at.set(s, parts.length);
    parts.push(...new TextEncoder().encode(s), 0);
  }
  return {
    bytes: Uint8Array.from(parts),
    offsetOf: (s) => {
      const o = at.get(s);
      if (o === undefined) throw new Error(`"${s}" is not in the string table`);
      return o;
    },
  };
}

export interface SymbolSpec {
  readonly name: number;
  readonly value?: bigint;
  readonly size?: bigint;
  /** STT_* */
  readonly type?: number;
  /** STB_* */
  readonly bind?: number;
  readonly other?: number;
  readonly shndx?: number;
}

/** Elf64_Sym entries [gABI 4.5]; `name` is an offset into the linked string table. */
export function symbolEntries(symbols: readonly SymbolSpec[]): Uint8Array {
  const out = new Uint8Array(symbols.length * SYM_SIZE);
  const v = new DataView(out.buffer);
  symbols.forEach((s, i) => {
    const o = i * SYM_SIZE;
    v.setUint32(o, s.name, true);
    out[o + 4] = ((s.bind ?? 0) << 4) | (s.type ?? 0);
    out[o + 5] = s.other ?? 0;
    v.setUint16(o + 6, s.shndx ?? 0, true);
    v.setBigUint64(o + 8, s.value ?? 0n, true);
    v.setBigUint64(o + 16, s.size ?? 0n, true);
  });
  return out;
}

/** One note [gABI 5.6]: namesz, descsz, type, then name and desc each padded to 4 bytes. Sizes may be overridden. */
export function noteEntry(
  name: string,
  type: number,
  desc: Uint8Array,
  override: { namesz?: number; descsz?: number } = {},
): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const nameLen = align(nameBytes.length, 4);
  const out = new Uint8Array(12 + nameLen + align(desc.length, 4));
  const v = new DataView(out.buffer);
  v.setUint32(0, override.namesz ?? nameBytes.length, true);
  v.setUint32(4, override.descsz ?? desc.length, true);
  v.setUint32(8, type, true);
  out.set(nameBytes, 12);
  out.set(desc, 12 + nameLen);
  return out;
}

/** Elf64_Rela entries [gABI 4.6]. */
export function relaEntries(
  entries: readonly { offset: bigint; type: number; symbol?: number; addend?: bigint }[],
): Uint8Array {
  const out = new Uint8Array(entries.length * 24);
  const v = new DataView(out.buffer);
  entries.forEach((e, i) => {
    v.setBigUint64(i * 24, e.offset, true);
    v.setBigUint64(i * 24 + 8, (BigInt(e.symbol ?? 0) << 32n) | BigInt(e.type), true);
    v.setBigInt64(i * 24 + 16, e.addend ?? 0n, true);
  });
  return out;
}

/** 64-bit words, e.g. SHT_RELR contents or Elf64_Dyn pairs. */
export function words(values: readonly bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    v.setBigUint64(i * 8, BigInt.asUintN(64, x), true);
  });
  return out;
}

/** Concatenate byte arrays. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
