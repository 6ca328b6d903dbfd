import { RefusedError } from "../core/errors.js";
import { SHN, STB, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";

/** A defined symbol of a file, with the source file its local symbols belong to. */
export interface IndexedSymbol {
  readonly name: string;
  /** Link-time address. */
  readonly address: bigint;
  readonly size: bigint;
  readonly type: number;
  readonly local: boolean;
  /** Basename of the source file (from the STT_FILE symbol before it), for locals only. */
  readonly file: string | undefined;
}

/**
 * Looks up the defined symbols of a linked file by name, the way a live patch needs them: globals
 * first, then a local of that name when it is the only one, and `name@file.c` to pick one of several
 * locals (static functions and variables of the same name in different translation units).
 */
export class SymbolIndex {
  private readonly globals = new Map<string, IndexedSymbol>();
  private readonly locals = new Map<string, IndexedSymbol[]>();

  constructor(elf: Elf) {
    let file: string | undefined;
    const add = (tableLocal: boolean, s: IndexedSymbol): void => {
      if (tableLocal) {
        const list = this.locals.get(s.name);
        if (list === undefined) this.locals.set(s.name, [s]);
        else if (!list.some((x) => x.address === s.address)) list.push(s);
      } else if (!this.globals.has(s.name)) this.globals.set(s.name, s);
    };
    for (const table of [elf.symbols(), elf.dynamicSymbols()]) {
      file = undefined;
      for (const sym of table) {
        if (sym.type === STT.STT_FILE) {
          file = sym.name.replace(/^.*\//, "");
          continue;
        }
        if (sym.name === "" || sym.st_shndx === SHN.SHN_UNDEF || sym.type === STT.STT_SECTION) continue;
        if (
          sym.type !== STT.STT_FUNC &&
          sym.type !== STT.STT_OBJECT &&
          sym.type !== STT.STT_GNU_IFUNC &&
          sym.type !== STT.STT_NOTYPE
        )
          continue;
        const local = sym.bind === STB.STB_LOCAL;
        // Version suffixes (`memcpy@@GLIBC_2.14`) only appear in .symtab of linked files; strip them.
        const name = sym.name.includes("@@") ? sym.name.slice(0, sym.name.indexOf("@@")) : sym.name;
        add(local, {
          name,
          address: sym.st_value,
          size: sym.st_size,
          type: sym.type,
          local,
          file: local ? file : undefined,
        });
      }
    }
  }

  /**
   * The symbol `name` (or `name@file.c`), undefined when the file has none. Throws AMBIGUOUS_SYMBOL
   * when only locals match and there are several, listing how to qualify each.
   */
  find(name: string): IndexedSymbol | undefined {
    const at = name.lastIndexOf("@");
    if (at > 0) {
      const base = name.slice(0, at);
      const file = name.slice(at + 1);
      return (
        this.locals.get(base)?.find((s) => s.file === file) ??
        (this.globals.get(name) as IndexedSymbol | undefined)
      );
    }
    const global = this.globals.get(name);
    if (global !== undefined) return global;
    const locals = this.locals.get(name);
    if (locals === undefined || locals.length === 0) return undefined;
    if (locals.length > 1) {
      throw new RefusedError(
        "AMBIGUOUS_SYMBOL",
        [
          `${name} is a static symbol in ${locals.length} files: ${locals.map((s) => `${name}@${s.file ?? "?"}`).join(", ")}`,
        ],
        {
          subject: name,
          hint: `qualify it: GRAFT_LOCAL(type, ${name}, "file.c") or __asm__("${name}@file.c")`,
        },
      );
    }
    return locals[0];
  }

  /** Every local named `name` (for messages). */
  localsNamed(name: string): readonly IndexedSymbol[] {
    return this.locals.get(name) ?? [];
  }
}
