/**
 * Oracles for `graft check`: what binutils (readelf, objdump) say about a file, parsed into plain
 * records. Tests compare graft's report against these, never against hand-typed tables.
 *
 * Addresses in a `.o` are section offsets for binutils; `at(sectionName, offset)` turns them into
 * graft's address space (its own layout of the sections, `Elf.sectionAddress`).
 */
import { closeSync, openSync, readSync } from "node:fs";
import { run } from "../support/fixtures.js";

/**
 * The binutils program for `file`'s machine: the host's for x86-64, Debian's cross binutils
 * (`aarch64-linux-gnu-objdump`) for AArch64 (e_machine 183), which the host's do not disassemble.
 */
export function binutil(tool: "objdump" | "readelf", file: string): string {
  const fd = openSync(file, "r");
  const head = Buffer.alloc(20);
  try {
    readSync(fd, head, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return head.readUInt16LE(18) === 183 ? `aarch64-linux-gnu-${tool}` : tool;
}

export interface SymbolRow {
  readonly table: string;
  readonly name: string;
  readonly value: bigint;
  readonly size: bigint;
  readonly type: string;
  readonly bind: string;
  /** Section index, or -1 for UND/ABS/COMMON. */
  readonly ndx: number;
}

export interface SectionRow {
  readonly index: number;
  readonly name: string;
  readonly type: string;
  readonly address: bigint;
  readonly size: bigint;
  readonly flags: string;
}

export interface RelocRow {
  /** The relocation section (`.rela.dyn`, `.rela__patchable_function_entries`). */
  readonly section: string;
  /** Index of that section among sections of the same name (a `.o` can have many). */
  readonly sectionOccurrence: number;
  readonly offset: bigint;
  readonly type: string;
  readonly symbolValue: bigint | undefined;
  readonly symbolName: string | undefined;
  readonly addend: bigint;
}

/** One line of `objdump -d --insn-width=16`. */
export interface DisasmLine {
  readonly address: bigint;
  readonly length: number;
  readonly text: string;
}

export interface UsdtNote {
  readonly provider: string;
  readonly name: string;
  readonly location: bigint;
  readonly semaphore: bigint;
  readonly arguments: string;
}

const NOP_RE = /^(?:(?:data16|cs|ds|ss|es|rex(?:\.\w+)?)\s+)*(?:nop[wlq]?\b|xchg\s+%ax,%ax$)/;

/** Whether objdump's text for an instruction is one of the x86 NOP forms compilers and linkers emit. */
export function isNopText(text: string): boolean {
  return NOP_RE.test(text);
}

export function parseHex(s: string): bigint {
  return BigInt(s.startsWith("0x") ? s : `0x${s}`);
}

/** `readelf -sW`: every symbol of every table. */
export function readSymbols(file: string): SymbolRow[] {
  const out: SymbolRow[] = [];
  let table = "";
  for (const line of run(binutil("readelf", file), ["-sW", file]).split("\n")) {
    const head = /^Symbol table '([^']+)'/.exec(line);
    if (head) {
      table = head[1]!;
      continue;
    }
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const ndx = /^\d+$/.test(m[6]!) ? Number(m[6]) : -1;
    out.push({
      table,
      value: parseHex(m[1]!),
      size: BigInt(m[2]!),
      type: m[3]!,
      bind: m[4]!,
      ndx,
      name: m[7]!.replace(/\s+\(\d+\)$/, ""),
    });
  }
  return out;
}

/** `readelf -SW`: the section headers. */
export function readSections(file: string): SectionRow[] {
  const out: SectionRow[] = [];
  for (const line of run(binutil("readelf", file), ["-SW", file]).split("\n")) {
    const m =
      /^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]{16})\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)$/.exec(
        line,
      );
    if (!m) continue;
    out.push({
      index: Number(m[1]),
      name: m[2]!,
      type: m[3]!,
      address: parseHex(m[4]!),
      size: parseHex(m[6]!),
      flags: m[8]!,
    });
  }
  return out;
}

/** `readelf -rW`: every RELA entry, per relocation section. */
export function readRelocations(file: string): RelocRow[] {
  const out: RelocRow[] = [];
  let section = "";
  let occurrence = 0;
  const seen = new Map<string, number>();
  for (const line of run(binutil("readelf", file), ["-rW", file]).split("\n")) {
    const head = /^Relocation section '([^']+)'/.exec(line);
    if (head) {
      section = head[1]!;
      occurrence = seen.get(section) ?? 0;
      seen.set(section, occurrence + 1);
      if (section.startsWith(".relr"))
        throw new Error(`${file}: RELR relocations are not parsed by this oracle`);
      continue;
    }
    const t = line.trim().split(/\s+/);
    if (t.length < 4 || !/^[0-9a-f]{8,16}$/.test(t[0]!) || !/^R_/.test(t[2]!)) continue;
    if (t.length === 4) {
      out.push({
        section,
        sectionOccurrence: occurrence,
        offset: parseHex(t[0]!),
        type: t[2]!,
        symbolValue: undefined,
        symbolName: undefined,
        addend: parseHex(t[3]!),
      });
    } else {
      const sign = t[5] === "-" ? -1n : 1n;
      out.push({
        section,
        sectionOccurrence: occurrence,
        offset: parseHex(t[0]!),
        type: t[2]!,
        symbolValue: parseHex(t[3]!),
        symbolName: t[4]!,
        addend: t[6] === undefined ? 0n : sign * parseHex(t[6]),
      });
    }
  }
  return out;
}

/** `objdump -s -j NAME`: the raw bytes of every section called NAME, in file order. */
export function dumpSections(file: string, name: string): { address: bigint; bytes: Uint8Array }[] {
  const out: { address: bigint; bytes: number[] }[] = [];
  let current: { address: bigint; bytes: number[] } | undefined;
  for (const line of run(binutil("objdump", file), ["-s", "-j", name, file]).split("\n")) {
    if (line.startsWith("Contents of section ")) {
      current = undefined;
      continue;
    }
    const m = /^ ([0-9a-f]+) ((?:[0-9a-f]{2,8} ?){1,4}) /.exec(line);
    if (!m) continue;
    if (current === undefined) {
      current = { address: parseHex(m[1]!), bytes: [] };
      out.push(current);
    }
    for (const word of m[2]!.trim().split(/\s+/))
      for (let i = 0; i < word.length; i += 2) current.bytes.push(parseInt(word.slice(i, i + 2), 16));
  }
  return out.map((s) => ({ address: s.address, bytes: Uint8Array.from(s.bytes) }));
}

/** Every 8-byte little-endian word of a dumped section, with its address. */
export function words(section: { address: bigint; bytes: Uint8Array }): { at: bigint; value: bigint }[] {
  const view = new DataView(section.bytes.buffer, section.bytes.byteOffset, section.bytes.byteLength);
  const out: { at: bigint; value: bigint }[] = [];
  for (let o = 0; o + 8 <= section.bytes.length; o += 8)
    out.push({ at: section.address + BigInt(o), value: view.getBigUint64(o, true) });
  return out;
}

/** `objdump -d --insn-width=16`: instructions per section (name#occurrence), in address order. */
export function disassemble(file: string): Map<string, DisasmLine[]> {
  const out = new Map<string, DisasmLine[]>();
  const seen = new Map<string, number>();
  let lines: DisasmLine[] = [];
  for (const line of run(binutil("objdump", file), ["-d", "-w", "--insn-width=16", file]).split("\n")) {
    const head = /^Disassembly of section (.+):$/.exec(line);
    if (head) {
      const n = seen.get(head[1]!) ?? 0;
      seen.set(head[1]!, n + 1);
      lines = [];
      out.set(`${head[1]}#${n}`, lines);
      continue;
    }
    const m = /^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$/.exec(line);
    if (m) {
      lines.push({ address: parseHex(m[1]!), length: m[2]!.trim().split(" ").length, text: m[3]!.trim() });
      continue;
    }
    // AArch64: one 32-bit word per line, printed as a number (`d503201f \tnop`).
    const w = /^\s*([0-9a-f]+):\t([0-9a-f]{8})\s+\t(.*)$/.exec(line);
    if (w) lines.push({ address: parseHex(w[1]!), length: 4, text: w[3]!.replace(/\s+\/\/.*$/, "").trim() });
  }
  return out;
}

/** `readelf -n`: the stapsdt notes. */
export function readUsdtNotes(file: string): UsdtNote[] {
  const out: UsdtNote[] = [];
  const text = run(binutil("readelf", file), ["-nW", file]);
  const re =
    /Provider: (\S+)\s*\n\s*Name: (\S+)\s*\n\s*Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, Semaphore: (0x[0-9a-f]+)\s*\n\s*Arguments:([^\n]*)/g;
  for (const m of text.matchAll(re)) {
    out.push({
      provider: m[1]!,
      name: m[2]!,
      location: parseHex(m[3]!),
      semaphore: parseHex(m[4]!),
      arguments: m[5]!.trim(),
    });
  }
  return out;
}

/**
 * A file seen through binutils, with address translation into graft's space: identity for linked
 * files; section layout from `sectionAddress` for `.o` (binutils shows offsets there).
 */
export class Oracle {
  readonly symbols: SymbolRow[];
  readonly sections: SectionRow[];
  private relocs: RelocRow[] | undefined;
  private disasm: Map<string, DisasmLine[]> | undefined;
  private flat: DisasmLine[] | undefined;
  private byAddress: Map<bigint, number> | undefined;
  private funcs: { name: string; address: bigint; size: bigint; section: string }[] | undefined;

  constructor(
    readonly file: string,
    /** Address of section index i in graft's space (only used for `.o`). */
    readonly sectionAddress: (index: number) => bigint,
    readonly relocatable: boolean,
  ) {
    this.symbols = readSymbols(file);
    this.sections = readSections(file);
  }

  relocations(): RelocRow[] {
    this.relocs ??= readRelocations(this.file);
    return this.relocs;
  }

  /** graft address of `offset` in the `occurrence`-th section called `name`. */
  at(name: string, offset: bigint, occurrence = 0): bigint {
    if (!this.relocatable) return offset;
    const s = this.sections.filter((x) => x.name === name)[occurrence];
    if (s === undefined) throw new Error(`${this.file}: no section ${name}#${occurrence}`);
    return this.sectionAddress(s.index) + offset;
  }

  /** Every instruction objdump shows, in graft's address space, sorted. */
  instructions(): DisasmLine[] {
    if (this.flat === undefined) {
      this.disasm = disassemble(this.file);
      const all: DisasmLine[] = [];
      for (const [key, lines] of this.disasm) {
        const [name, n] = key.split("#") as [string, string];
        for (const l of lines) all.push({ ...l, address: this.at(name, l.address, Number(n)) });
      }
      all.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
      this.flat = all;
      this.byAddress = new Map(all.map((l, i) => [l.address, i]));
    }
    return this.flat;
  }

  /** Index of the instruction objdump starts at `address`, or undefined when none starts there. */
  indexAt(address: bigint): number | undefined {
    this.instructions();
    return this.byAddress!.get(address);
  }

  /** Defined FUNC/IFUNC symbols of the table graft reads (.symtab, else .dynsym) in executable sections. */
  functionSymbols(): { name: string; address: bigint; size: bigint; section: string }[] {
    this.funcs ??= this.readFunctionSymbols();
    return this.funcs;
  }

  private readFunctionSymbols(): { name: string; address: bigint; size: bigint; section: string }[] {
    const hasSymtab = this.symbols.some((s) => s.table === ".symtab");
    const table = hasSymtab ? ".symtab" : ".dynsym";
    return this.symbols
      .filter((s) => s.table === table && (s.type === "FUNC" || s.type === "IFUNC") && s.ndx > 0)
      .flatMap((s) => {
        const sec = this.sections.find((x) => x.index === s.ndx);
        if (sec === undefined || !sec.flags.includes("X")) return [];
        const address = this.relocatable ? this.sectionAddress(sec.index) + s.value : s.value;
        return [{ name: s.name.replace(/@.*$/, ""), address, size: s.size, section: sec.name }];
      });
  }

  /**
   * The addresses recorded in a code-address table (`__patchable_function_entries`, `__mcount_loc`):
   * the words objdump dumps, with R_X86_64_RELATIVE addends in PIE/DSOs and R_X86_64_64
   * (symbol + addend) in `.o` files taking the place of the stored word, as the loader/linker would.
   */
  addressTable(name: string): bigint[] {
    if (!this.sections.some((s) => s.name === name)) return [];
    if (this.relocatable) {
      const out: bigint[] = [];
      for (const r of this.relocations()) {
        if (r.section !== `.rela${name}`) continue;
        if (r.type !== "R_X86_64_64" && r.type !== "R_AARCH64_ABS64")
          throw new Error(`${this.file}: unexpected ${r.type} in .rela${name}`);
        out.push(this.resolveSymbol(r.symbolName!) + r.addend);
      }
      return out;
    }
    const relative = new Map<bigint, bigint>();
    for (const r of this.relocations())
      if (r.type === "R_X86_64_RELATIVE" || r.type === "R_AARCH64_RELATIVE") relative.set(r.offset, r.addend);
    const out: bigint[] = [];
    for (const s of dumpSections(this.file, name)) {
      for (const w of words(s)) {
        const v = relative.get(w.at) ?? w.value;
        if (v !== 0n) out.push(v);
      }
    }
    return out;
  }

  /** graft address of a symbol named in a `.o` relocation (a section symbol shows as the section name). */
  private resolveSymbol(name: string): bigint {
    const secs = this.sections.filter((s) => s.name === name);
    if (secs.length === 1) return this.sectionAddress(secs[0]!.index);
    const sym = this.symbols.find((s) => s.table === ".symtab" && s.name === name && s.ndx > 0);
    if (sym === undefined) throw new Error(`${this.file}: cannot resolve ${name}`);
    return this.sectionAddress(sym.ndx) + sym.value;
  }
}
