import type { Elf } from "../elf/elf.js";
import type { Attribute } from "./attribute.js";
import { DW_AT, DW_TAG } from "./constants.js";
import { debugSection } from "./debug-sections.js";
import { DwarfCursor, type DwarfSection, dwarfError } from "./dwarf-cursor.js";
import { type LineTable, parseLineTable } from "./line-table.js";
import type { AddressRange } from "./ranges.js";
import { type UnitFunctions, unitFunctions } from "./subprograms.js";
import { type DwarfSections, Unit } from "./unit.js";
import { parseUnitHeader } from "./unit-header.js";

export interface ReadDwarfOptions {
  /** Sink for non-fatal damage; reading goes on past it. */
  readonly onWarning?: (message: string) => void;
}

/** A compile, partial or skeleton unit, as the unit DIE describes it [DWARF5 3.1]. */
export interface CompileUnit {
  readonly offset: number;
  readonly version: number;
  /** DW_UT_* (DWARF 2–4 compile units say DW_UT_compile). */
  readonly unitType: number;
  readonly tag: number;
  readonly name: string | undefined;
  readonly compDir: string | undefined;
  /** The compiler and, for gcc (`-grecord-gcc-switches`, the default) and clang `-grecord-command-line`, its flags. */
  readonly producer: string | undefined;
  /** DW_LANG_* */
  readonly language: number | undefined;
  readonly ranges: readonly AddressRange[];
  /** Split DWARF: the .dwo file holding this unit's DIEs. */
  readonly dwoName: string | undefined;
  readonly stmtList: bigint | undefined;
}

/**
 * The DWARF of one ELF file. Unit headers are read on first use (one jump per unit); each unit's
 * DIEs, line table and function model are parsed when first asked for, and memoized — so asking
 * about one function of a large binary parses only the units it needs.
 */
export class Dwarf {
  readonly sections: DwarfSections;
  readonly file: string | undefined;
  private readonly warn: (message: string) => void;
  private unitList: Unit[] | undefined;
  private readonly lineTables = new Map<Unit, LineTable | undefined>();
  private readonly functions = new Map<Unit, UnitFunctions>();
  private readonly cuModels = new Map<Unit, CompileUnit>();

  constructor(sections: DwarfSections, file: string | undefined, warn: (message: string) => void) {
    this.sections = sections;
    this.file = file;
    this.warn = warn;
  }

  /** Every unit of `.debug_info`, in order. */
  units(): readonly Unit[] {
    if (this.unitList !== undefined) return this.unitList;
    const out: Unit[] = [];
    const c = new DwarfCursor(this.sections.info);
    while (c.pos < c.bytes.length) {
      const header = parseUnitHeader(c.at(c.pos, c.bytes.length));
      out.push(new Unit(header, this.sections, this.warn));
      c.pos = header.end;
    }
    this.unitList = out;
    return out;
  }

  /** The unit whose bytes hold `.debug_info` offset `offset`. */
  findUnit(offset: number): Unit | undefined {
    const units = this.units();
    let lo = 0;
    let hi = units.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = units[mid]!;
      if (offset < u.header.offset) hi = mid - 1;
      else if (offset >= u.header.end) lo = mid + 1;
      else return u;
    }
    return undefined;
  }

  /** The DIE at `.debug_info` offset `offset` (a reference's target), or undefined. */
  findDie(offset: bigint | number): { unit: Unit; index: number } | undefined {
    const at = Number(offset);
    const unit = this.findUnit(at);
    const index = unit?.findDieIndex(at);
    return unit === undefined || index === undefined ? undefined : { unit, index };
  }

  /** One attribute of the DIE at `offset`. */
  attributeAt(offset: bigint | number, at: number): Attribute | undefined {
    const die = this.findDie(offset);
    return die === undefined ? undefined : die.unit.attribute(die.index, at);
  }

  /** The unit DIE of `unit` as a compile-unit record. */
  compileUnit(unit: Unit): CompileUnit {
    let cu = this.cuModels.get(unit);
    if (cu !== undefined) return cu;
    const t = unit.dies();
    const attrs = t.count > 0 ? unit.attributes(0) : [];
    const str = (at: number): string | undefined => {
      const a = attrs.find((x) => x.at === at);
      return a?.class === "string" ? a.value : undefined;
    };
    const num = (at: number): bigint | undefined => {
      const a = attrs.find((x) => x.at === at);
      return a?.class === "constant" || a?.class === "offset" ? a.value : undefined;
    };
    const language = num(DW_AT.DW_AT_language);
    cu = {
      offset: unit.offset,
      version: unit.header.version,
      unitType: unit.header.unitType,
      tag: t.count > 0 ? unit.tag(0) : 0,
      name: str(DW_AT.DW_AT_name),
      compDir: str(DW_AT.DW_AT_comp_dir),
      producer: str(DW_AT.DW_AT_producer),
      language: language === undefined ? undefined : Number(language),
      ranges: t.count > 0 ? unit.rangesOf(attrs) : [],
      dwoName: str(DW_AT.DW_AT_dwo_name) ?? str(DW_AT.DW_AT_GNU_dwo_name),
      stmtList: num(DW_AT.DW_AT_stmt_list),
    };
    this.cuModels.set(unit, cu);
    return cu;
  }

  /** Compile, partial and skeleton units (type units left out). */
  compileUnits(): CompileUnit[] {
    return this.units()
      .filter((u) => !u.isTypeUnit)
      .map((u) => this.compileUnit(u));
  }

  /** The unit's line table (DW_AT_stmt_list), or undefined when it has none. */
  lineTable(unit: Unit): LineTable | undefined {
    if (this.lineTables.has(unit)) return this.lineTables.get(unit);
    const cu = this.compileUnit(unit);
    let table: LineTable | undefined;
    if (cu.stmtList !== undefined) {
      if (this.sections.line === undefined)
        throw dwarfError(
          this.sections.info,
          "DWARF_CORRUPT",
          "unit has DW_AT_stmt_list but no .debug_line",
          unit.offset,
        );
      table = parseLineTable(this.sections.line, cu.stmtList, {
        name: cu.name ?? "",
        compDir: cu.compDir ?? "",
        addressSize: unit.header.addressSize,
        context: unit.context,
      });
    }
    this.lineTables.set(unit, table);
    return table;
  }

  /** The subprograms of `unit` with their inlined-subroutine trees and call sites. */
  unitFunctions(unit: Unit): UnitFunctions {
    let f = this.functions.get(unit);
    if (f === undefined) {
      f = unitFunctions(unit);
      this.functions.set(unit, f);
    }
    return f;
  }

  /**
   * The name of the function a DIE stands for: its DW_AT_name, else that of its
   * DW_AT_abstract_origin or DW_AT_specification, followed as far as needed (a concrete out-of-line
   * copy names its abstract instance, which may name its declaration) [DWARF5 3.3.8, 2.13.2].
   */
  functionName(offset: number): { name: string | undefined; linkageName: string | undefined } {
    let name: string | undefined;
    let linkageName: string | undefined;
    let at: number | undefined = offset;
    for (
      let hops = 0;
      at !== undefined && hops < 16 && (name === undefined || linkageName === undefined);
      hops++
    ) {
      const die = this.findDie(at);
      if (die === undefined) break;
      at = undefined;
      for (const a of die.unit.attributes(die.index)) {
        if (a.class === "string" && a.at === DW_AT.DW_AT_name) name ??= a.value;
        else if (
          a.class === "string" &&
          (a.at === DW_AT.DW_AT_linkage_name || a.at === DW_AT.DW_AT_MIPS_linkage_name)
        )
          linkageName ??= a.value;
        else if (
          a.class === "reference" &&
          (a.at === DW_AT.DW_AT_abstract_origin || a.at === DW_AT.DW_AT_specification)
        )
          at = Number(a.value);
      }
    }
    return { name, linkageName };
  }

  /**
   * The DIE a function's identity rests on: follow DW_AT_abstract_origin, then DW_AT_specification,
   * to the end. Every inlined copy, out-of-line instance and clone of one source function leads to
   * the same DIE (within one unit; the same inline function in several units has one per unit).
   */
  originOf(offset: number): number {
    let at = offset;
    for (let hops = 0; hops < 16; hops++) {
      const die = this.findDie(at);
      if (die === undefined) return at;
      const next =
        die.unit.attribute(die.index, DW_AT.DW_AT_abstract_origin) ??
        die.unit.attribute(die.index, DW_AT.DW_AT_specification);
      if (next?.class !== "reference" || Number(next.value) === at) return at;
      at = Number(next.value);
    }
    return at;
  }

  /** True when the DIE at `offset` is a subprogram (the target of an origin chain should be). */
  isSubprogram(offset: number): boolean {
    const die = this.findDie(offset);
    return die !== undefined && die.unit.tag(die.index) === DW_TAG.DW_TAG_subprogram;
  }
}

/**
 * The DWARF of `elf`, or undefined when it has no `.debug_info` (stripped, or never built with -g).
 * `.debug_info` is loaded (inflated, relocated) here; every other section on first use. Throws
 * FormatError (DWARF_*) only when a section it needs is broken.
 */
export function readDwarf(elf: Elf, options: ReadDwarfOptions = {}): Dwarf | undefined {
  const warn = options.onWarning ?? (() => {});
  const info = debugSection(elf, ".debug_info", warn);
  if (info === undefined) return undefined;
  const loaded = new Map<string, DwarfSection | undefined>();
  const get = (name: string): DwarfSection | undefined => {
    if (!loaded.has(name)) loaded.set(name, debugSection(elf, name, warn));
    return loaded.get(name);
  };
  const sections: DwarfSections = {
    info,
    get abbrev() {
      return get(".debug_abbrev");
    },
    get str() {
      return get(".debug_str");
    },
    get lineStr() {
      return get(".debug_line_str");
    },
    get strOffsets() {
      return get(".debug_str_offsets");
    },
    get addr() {
      return get(".debug_addr");
    },
    get ranges() {
      return get(".debug_ranges");
    },
    get rnglists() {
      return get(".debug_rnglists");
    },
    get line() {
      return get(".debug_line");
    },
  };
  return new Dwarf(sections, elf.file, warn);
}
