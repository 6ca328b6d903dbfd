import { type Abbreviation, type AbbreviationTable, parseAbbreviations } from "./abbrev.js";
import {
  type Attribute,
  type AttributeValue,
  type FormContext,
  fixedFormSize,
  readAttribute,
  skipAttributeValue,
} from "./attribute.js";
import { DW_AT, DW_UT } from "./constants.js";
import { DwarfCursor, type DwarfSection, dwarfError, stringAt } from "./dwarf-cursor.js";
import { type AddressRange, readRangeList, readRnglist } from "./ranges.js";
import type { UnitHeader } from "./unit-header.js";

/** The DWARF sections a unit may refer to; absent ones are undefined. */
export interface DwarfSections {
  readonly info: DwarfSection;
  readonly abbrev: DwarfSection | undefined;
  readonly str: DwarfSection | undefined;
  readonly lineStr: DwarfSection | undefined;
  readonly strOffsets: DwarfSection | undefined;
  readonly addr: DwarfSection | undefined;
  readonly ranges: DwarfSection | undefined;
  readonly rnglists: DwarfSection | undefined;
  readonly line: DwarfSection | undefined;
}

/**
 * Every DIE of a unit in flat arrays (index order = file order): its offset, abbreviation and
 * parent, and `end[i]`, the index just past its last descendant — so children are `i+1`, then
 * `end[i+1]`, … while below `end[i]`. Attribute values are decoded on demand from the offsets.
 */
export interface DieTable {
  readonly count: number;
  readonly offsets: readonly number[];
  readonly abbrevs: readonly Abbreviation[];
  readonly parents: readonly number[];
  readonly ends: readonly number[];
}

/** The bases DWARF 5 indexed forms are relative to, from the unit DIE [DWARF5 3.1.1]. */
interface UnitBases {
  readonly strOffsetsBase: number;
  readonly addrBase: number;
  readonly rnglistsBase: number;
  /** The unit's base address for range lists: DW_AT_low_pc of the unit DIE, else 0. */
  readonly baseAddress: bigint;
}

/**
 * One unit of `.debug_info`: the header eagerly, the DIEs on first use (one pass that skips every
 * attribute, fixed-size DIEs in one step), attribute values per DIE on demand.
 */
export class Unit {
  readonly header: UnitHeader;
  private readonly sections: DwarfSections;
  private readonly warn: (message: string) => void;
  private table: DieTable | undefined;
  private abbreviations: AbbreviationTable | undefined;
  private bases: UnitBases | undefined;
  private readonly fixedSizes = new Map<Abbreviation, number>();
  readonly context: FormContext;

  constructor(header: UnitHeader, sections: DwarfSections, warn: (message: string) => void) {
    this.header = header;
    this.sections = sections;
    this.warn = warn;
    this.context = {
      version: header.version,
      addressSize: header.addressSize,
      offsetSize: header.offsetSize,
      unitOffset: header.offset,
      strp: (o) => stringAt(this.need(sections.str, ".debug_str"), o, "DW_FORM_strp"),
      lineStrp: (o) => stringAt(this.need(sections.lineStr, ".debug_line_str"), o, "DW_FORM_line_strp"),
    };
  }

  get offset(): number {
    return this.header.offset;
  }
  /** A split-DWARF skeleton: the unit's DIEs live in a .dwo file graft does not read. */
  get isSkeleton(): boolean {
    return this.header.unitType === DW_UT.DW_UT_skeleton;
  }
  get isTypeUnit(): boolean {
    return this.header.unitType === DW_UT.DW_UT_type || this.header.unitType === DW_UT.DW_UT_split_type;
  }

  private need(s: DwarfSection | undefined, name: string): DwarfSection {
    if (s === undefined)
      throw dwarfError(
        this.sections.info,
        "DWARF_CORRUPT",
        `unit refers to ${name}, which is missing`,
        this.offset,
      );
    return s;
  }

  private abbrevTable(): AbbreviationTable {
    this.abbreviations ??= parseAbbreviations(
      this.need(this.sections.abbrev, ".debug_abbrev"),
      this.header.abbrevOffset,
    );
    return this.abbreviations;
  }

  /** Bytes every DIE of this abbreviation takes after its code, or -1 when some form has its own length. */
  private fixedSize(a: Abbreviation): number {
    let size = this.fixedSizes.get(a);
    if (size === undefined) {
      size = 0;
      for (const form of a.forms) {
        const s = fixedFormSize(form, this.header.addressSize, this.header.offsetSize, this.header.version);
        if (s < 0) {
          size = -1;
          break;
        }
        size += s;
      }
      this.fixedSizes.set(a, size);
    }
    return size;
  }

  /** The unit's DIEs (parsed once). */
  dies(): DieTable {
    if (this.table !== undefined) return this.table;
    const abbrevs = this.abbrevTable();
    const c = new DwarfCursor(this.sections.info, this.header.dieOffset, this.header.end);
    const offsets: number[] = [];
    const list: Abbreviation[] = [];
    const parents: number[] = [];
    const ends: number[] = [];
    const stack: number[] = [];
    while (c.pos < c.end) {
      const at = c.pos;
      const code = c.uleb("abbreviation code");
      if (code === 0) {
        // A null entry closes the innermost open DIE's children; trailing padding is allowed.
        const closed = stack.pop();
        if (closed !== undefined) ends[closed] = offsets.length;
        continue;
      }
      const abbrev = abbrevs.get(code);
      if (abbrev === undefined)
        throw c.corrupt(`DIE uses abbreviation code ${code}, which the unit's table does not declare`, at);
      const index = offsets.length;
      offsets.push(at);
      list.push(abbrev);
      parents.push(stack.length === 0 ? -1 : stack[stack.length - 1]!);
      ends.push(index + 1);
      const fixed = this.fixedSize(abbrev);
      if (fixed >= 0) c.skip(fixed, "DIE attributes");
      else for (const form of abbrev.forms) skipAttributeValue(c, form, this.context);
      if (abbrev.hasChildren) stack.push(index);
    }
    for (const open of stack) ends[open] = offsets.length;
    if (stack.length > 0)
      this.warn(`unit at 0x${this.offset.toString(16)}: ${stack.length} DIE(s) not closed`);
    this.table = { count: offsets.length, offsets, abbrevs: list, parents, ends };
    return this.table;
  }

  /** Index of the DIE at `.debug_info` offset `offset`, or undefined. */
  findDieIndex(offset: number): number | undefined {
    const { offsets } = this.dies();
    let lo = 0;
    let hi = offsets.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = offsets[mid]!;
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  tag(index: number): number {
    return this.dies().abbrevs[index]!.tag;
  }

  /** The direct children of DIE `index`, in order. */
  children(index: number): number[] {
    const { ends } = this.dies();
    const out: number[] = [];
    for (let child = index + 1; child < ends[index]!; child = ends[child]!) out.push(child);
    return out;
  }

  /** Decode the attributes of DIE `index` (only those in `wanted`, when given) without resolving strx/addrx. */
  private rawAttributes(index: number, wanted?: ReadonlySet<number>): Attribute[] {
    const t = this.dies();
    const abbrev = t.abbrevs[index]!;
    const c = new DwarfCursor(this.sections.info, t.offsets[index]!, this.header.end);
    c.uleb("abbreviation code");
    const out: Attribute[] = [];
    const { attributes, forms, implicitConsts } = abbrev;
    for (let i = 0; i < forms.length; i++) {
      if (wanted !== undefined && !wanted.has(attributes[i]!)) skipAttributeValue(c, forms[i]!, this.context);
      else out.push(readAttribute(c, attributes[i]!, forms[i]!, implicitConsts[i]!, this.context));
    }
    return out;
  }

  /**
   * The attributes of DIE `index`, strx and addrx resolved; with `wanted`, only those (the others
   * are skipped, not decoded — a walk over every DIE of a large binary needs a few of each).
   */
  attributes(index: number, wanted?: ReadonlySet<number>): Attribute[] {
    const raw = this.rawAttributes(index, wanted);
    for (let i = 0; i < raw.length; i++) {
      const a = raw[i]!;
      if (a.class === "strx" || a.class === "addrx") raw[i] = this.resolve(a);
    }
    return raw;
  }

  /** One attribute of DIE `index` (the first with that DW_AT), decoding only up to it. */
  attribute(index: number, at: number): Attribute | undefined {
    const t = this.dies();
    const abbrev = t.abbrevs[index]!;
    const i = abbrev.attributes.indexOf(at);
    if (i < 0) return undefined;
    const c = new DwarfCursor(this.sections.info, t.offsets[index]!, this.header.end);
    c.uleb("abbreviation code");
    for (let k = 0; k < i; k++) skipAttributeValue(c, abbrev.forms[k]!, this.context);
    return this.resolve(readAttribute(c, at, abbrev.forms[i]!, abbrev.implicitConsts[i]!, this.context));
  }

  private unitBases(): UnitBases {
    if (this.bases !== undefined) return this.bases;
    const root = this.dies().count > 0 ? this.rawAttributes(0) : [];
    const num = (at: number, fallback: number): number => {
      const a = root.find((x) => x.at === at);
      return a !== undefined && (a.class === "offset" || a.class === "constant") ? Number(a.value) : fallback;
    };
    // Without the attribute, a lone contribution starts right after its 8-byte (32-bit DWARF) header.
    const header = this.header.offsetSize === 8 ? 16 : 8;
    this.bases = {
      strOffsetsBase: num(DW_AT.DW_AT_str_offsets_base, header),
      addrBase: num(DW_AT.DW_AT_addr_base, num(DW_AT.DW_AT_GNU_addr_base, header)),
      rnglistsBase: num(DW_AT.DW_AT_rnglists_base, this.header.offsetSize === 8 ? 20 : 12),
      baseAddress: 0n,
    };
    const low = root.find((x) => x.at === DW_AT.DW_AT_low_pc);
    if (low !== undefined) {
      const v = this.resolve(low);
      if (v.class === "address") this.bases = { ...this.bases, baseAddress: v.value };
    }
    return this.bases;
  }

  /** Apply the unit's bases to an indexed string or address. */
  private resolve(a: Attribute): Attribute {
    if (a.class === "strx") {
      const table = this.need(this.sections.strOffsets, ".debug_str_offsets");
      const size = this.header.offsetSize;
      const c = new DwarfCursor(table, 0);
      const at = BigInt(this.unitBases().strOffsetsBase) + a.value * BigInt(size);
      if (at + BigInt(size) > BigInt(table.bytes.length))
        throw dwarfError(table, "DWARF_CORRUPT", `string index ${a.value} is past the table`, at);
      c.pos = Number(at);
      return {
        at: a.at,
        form: a.form,
        class: "string",
        value: this.context.strp(c.sized(size, "string offset")),
      };
    }
    if (a.class === "addrx")
      return { at: a.at, form: a.form, class: "address", value: this.address(a.value) };
    return a;
  }

  /** Entry `index` of this unit's `.debug_addr` contribution. */
  address(index: bigint): bigint {
    const table = this.need(this.sections.addr, ".debug_addr");
    const size = this.header.addressSize;
    const at = BigInt(this.unitBases().addrBase) + index * BigInt(size);
    if (at + BigInt(size) > BigInt(table.bytes.length))
      throw dwarfError(table, "DWARF_CORRUPT", `address index ${index} is past the table`, at);
    const c = new DwarfCursor(table, Number(at));
    return c.sized(size, "address");
  }

  /**
   * The code ranges of DIE `index`: DW_AT_low_pc/high_pc (high as an address or, from DWARF 4, as
   * a length), or DW_AT_ranges (.debug_ranges before DWARF 5, .debug_rnglists from it)
   * [DWARF5 2.17]. Empty ranges are dropped; [] when the DIE has no code.
   */
  ranges(index: number): AddressRange[] {
    return this.rangesOf(this.attributes(index));
  }

  /** `ranges` from a DIE's already decoded attributes. */
  rangesOf(attrs: readonly Attribute[]): AddressRange[] {
    const get = (at: number): AttributeValue | undefined => attrs.find((a) => a.at === at);
    const ranges = get(DW_AT.DW_AT_ranges);
    if (ranges !== undefined) return this.rangeList(ranges);
    const low = get(DW_AT.DW_AT_low_pc);
    const high = get(DW_AT.DW_AT_high_pc);
    if (low?.class !== "address" || high === undefined) return [];
    const end =
      high.class === "address" ? high.value : high.class === "constant" ? low.value + high.value : undefined;
    if (end === undefined || end <= low.value) return [];
    return [{ low: low.value, high: end }];
  }

  /** Resolve a DW_AT_ranges value to its list. */
  rangeList(value: AttributeValue): AddressRange[] {
    const bases = this.unitBases();
    if (this.header.version >= 5) {
      const section = this.need(this.sections.rnglists, ".debug_rnglists");
      let offset: bigint;
      if (value.class === "rnglistx") {
        const size = this.header.offsetSize;
        const at = BigInt(bases.rnglistsBase) + value.value * BigInt(size);
        if (at + BigInt(size) > BigInt(section.bytes.length))
          throw dwarfError(section, "DWARF_CORRUPT", `range list index ${value.value} is past the table`, at);
        offset =
          BigInt(bases.rnglistsBase) + new DwarfCursor(section, Number(at)).sized(size, "range list offset");
      } else if (value.class === "offset" || value.class === "constant") offset = value.value;
      else
        throw dwarfError(
          this.sections.info,
          "DWARF_CORRUPT",
          `DW_AT_ranges of class ${value.class}`,
          this.offset,
        );
      return readRnglist(section, offset, this.header.addressSize, bases.baseAddress, (i) => this.address(i));
    }
    if (value.class !== "offset" && value.class !== "constant")
      throw dwarfError(
        this.sections.info,
        "DWARF_CORRUPT",
        `DW_AT_ranges of class ${value.class}`,
        this.offset,
      );
    const section = this.need(this.sections.ranges, ".debug_ranges");
    return readRangeList(section, value.value, this.header.addressSize, bases.baseAddress);
  }
}
