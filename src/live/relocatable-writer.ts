/**
 * Writes a small ELF64 little-endian relocatable object (ET_REL) [gABI 4]: a list of sections with
 * their bytes, a symbol table (locals first, as the gABI requires: sh_info = first global) and RELA
 * sections. Enough for graft's own patch objects; nothing here reads or validates input.
 */

export interface OutputSection {
  readonly name: string;
  readonly type: number;
  readonly flags: bigint;
  readonly align: bigint;
  /** File bytes; for SHT_NOBITS only `size` counts. */
  readonly bytes: Uint8Array;
  readonly size: bigint;
  readonly entsize: bigint;
}

export interface OutputSymbol {
  readonly name: string;
  readonly type: number;
  readonly bind: number;
  /** Index in the output section list (1-based, as in the file); 0 = SHN_UNDEF, 0xfff1 = SHN_ABS. */
  readonly section: number;
  readonly value: bigint;
  readonly size: bigint;
}

export interface OutputRelocation {
  readonly offset: bigint;
  readonly type: number;
  /** Index into the symbol list given to writeRelocatable (0-based, before the null symbol). */
  readonly symbol: number;
  readonly addend: bigint;
}

const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHT_RELA = 4;
const SHT_NOBITS = 8;
const SHF_INFO_LINK = 0x40n;
const STB_LOCAL = 0;

class StringTable {
  private readonly parts: Buffer[] = [Buffer.from([0])];
  private size = 1;
  private readonly seen = new Map<string, number>();
  add(s: string): number {
    if (s === "") return 0;
    const have = this.seen.get(s);
    if (have !== undefined) return have;
    const at = this.size;
    const b = Buffer.from(`${s}\0`, "utf8");
    this.parts.push(b);
    this.size += b.length;
    this.seen.set(s, at);
    return at;
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

/**
 * The object's bytes. `sections` become sections 1..n; `relocations` maps a section's 1-based index
 * to its entries (a `.rela<name>` section is written for each); symbols are sorted locals first and
 * relocation symbol indexes renumbered to match.
 */
export function writeRelocatable(
  machine: number,
  sections: readonly OutputSection[],
  symbols: readonly OutputSymbol[],
  relocations: ReadonlyMap<number, readonly OutputRelocation[]>,
): Uint8Array {
  const order = symbols.map((s, i) => ({ s, i }));
  order.sort((a, b) => (a.s.bind === STB_LOCAL ? 0 : 1) - (b.s.bind === STB_LOCAL ? 0 : 1) || a.i - b.i);
  const newIndex = new Map<number, number>();
  order.forEach(({ i }, k) => {
    newIndex.set(i, k + 1);
  });
  const firstGlobal = 1 + order.filter(({ s }) => s.bind === STB_LOCAL).length;

  const shstr = new StringTable();
  const str = new StringTable();
  type Header = {
    name: number;
    type: number;
    flags: bigint;
    link: number;
    info: number;
    align: bigint;
    entsize: bigint;
    bytes: Uint8Array;
    size: bigint;
  };
  const headers: Header[] = [];
  for (const s of sections)
    headers.push({
      name: shstr.add(s.name),
      type: s.type,
      flags: s.flags,
      link: 0,
      info: 0,
      align: s.align,
      entsize: s.entsize,
      bytes: s.type === SHT_NOBITS ? new Uint8Array(0) : s.bytes,
      size: s.size,
    });
  const symtabIndex = sections.length + relocations.size + 1;
  for (const [target, entries] of [...relocations.entries()].sort((a, b) => a[0] - b[0])) {
    const b = Buffer.alloc(entries.length * 24);
    entries.forEach((r, k) => {
      const sym = newIndex.get(r.symbol);
      if (sym === undefined) throw new Error(`relocation names symbol ${r.symbol}, which is not in the list`);
      b.writeBigUInt64LE(r.offset, k * 24);
      b.writeBigUInt64LE((BigInt(sym) << 32n) | BigInt(r.type), k * 24 + 8);
      b.writeBigInt64LE(r.addend, k * 24 + 16);
    });
    headers.push({
      name: shstr.add(`.rela${sections[target - 1]!.name}`),
      type: SHT_RELA,
      flags: SHF_INFO_LINK,
      link: symtabIndex,
      info: target,
      align: 8n,
      entsize: 24n,
      bytes: b,
      size: BigInt(b.length),
    });
  }
  const symtab = Buffer.alloc((order.length + 1) * 24);
  order.forEach(({ s }, k) => {
    const o = (k + 1) * 24;
    symtab.writeUInt32LE(str.add(s.name), o);
    symtab[o + 4] = (s.bind << 4) | (s.type & 0xf);
    symtab[o + 5] = 0;
    symtab.writeUInt16LE(s.section, o + 6);
    symtab.writeBigUInt64LE(s.value, o + 8);
    symtab.writeBigUInt64LE(s.size, o + 16);
  });
  const strtabBytes = str.bytes();
  headers.push({
    name: shstr.add(".symtab"),
    type: SHT_SYMTAB,
    flags: 0n,
    link: symtabIndex + 1,
    info: firstGlobal,
    align: 8n,
    entsize: 24n,
    bytes: symtab,
    size: BigInt(symtab.length),
  });
  headers.push({
    name: 0,
    type: SHT_STRTAB,
    flags: 0n,
    link: 0,
    info: 0,
    align: 1n,
    entsize: 0n,
    bytes: strtabBytes,
    size: BigInt(strtabBytes.length),
  });
  const strtabHeader = headers[headers.length - 1]!;
  strtabHeader.name = shstr.add(".strtab");
  const shstrHeader: Header = {
    name: shstr.add(".shstrtab"),
    type: SHT_STRTAB,
    flags: 0n,
    link: 0,
    info: 0,
    align: 1n,
    entsize: 0n,
    bytes: new Uint8Array(0),
    size: 0n,
  };
  headers.push(shstrHeader);
  shstrHeader.bytes = shstr.bytes();
  shstrHeader.size = BigInt(shstrHeader.bytes.length);

  // Layout: header, section contents (aligned), then the section header table.
  let offset = 64;
  const offsets: number[] = [];
  for (const h of headers) {
    const align = Number(h.align > 0n ? h.align : 1n);
    offset = Math.ceil(offset / align) * align;
    offsets.push(offset);
    offset += h.bytes.length;
  }
  const shoff = Math.ceil(offset / 8) * 8;
  const out = Buffer.alloc(shoff + (headers.length + 1) * 64);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV
  out.writeUInt16LE(1, 16); // ET_REL
  out.writeUInt16LE(machine, 18);
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt16LE(64, 52);
  out.writeUInt16LE(64, 58);
  out.writeUInt16LE(headers.length + 1, 60);
  out.writeUInt16LE(headers.length, 62); // .shstrtab is last
  headers.forEach((h, k) => {
    out.set(h.bytes, offsets[k]!);
    const o = shoff + (k + 1) * 64;
    out.writeUInt32LE(h.name, o);
    out.writeUInt32LE(h.type, o + 4);
    out.writeBigUInt64LE(h.flags, o + 8);
    out.writeBigUInt64LE(BigInt(offsets[k]!), o + 24);
    out.writeBigUInt64LE(h.size, o + 32);
    out.writeUInt32LE(h.link, o + 40);
    out.writeUInt32LE(h.info, o + 44);
    out.writeBigUInt64LE(h.align, o + 48);
    out.writeBigUInt64LE(h.entsize, o + 56);
  });
  return out;
}

export const SECTION_TYPES = { SHT_PROGBITS, SHT_NOBITS } as const;
