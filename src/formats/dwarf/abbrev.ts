import { DW_FORM } from "./constants.js";
import { DwarfCursor, type DwarfSection } from "./dwarf-cursor.js";

/** One abbreviation declaration [DWARF5 7.5.3]: the shape every DIE using its code has. */
export interface Abbreviation {
  readonly code: number;
  readonly tag: number;
  readonly hasChildren: boolean;
  /** DW_AT_* of each attribute, in order. */
  readonly attributes: readonly number[];
  /** DW_FORM_* of each attribute. */
  readonly forms: readonly number[];
  /** The value of each DW_FORM_implicit_const attribute (0n for the others). */
  readonly implicitConsts: readonly bigint[];
}

/** The abbreviation table of one or more units: code → declaration. */
export type AbbreviationTable = ReadonlyMap<number, Abbreviation>;

/** Parse the table at `offset` of `.debug_abbrev`, up to its terminating 0 code. */
export function parseAbbreviations(section: DwarfSection, offset: number): AbbreviationTable {
  const c = new DwarfCursor(section, offset);
  if (offset < 0 || offset >= section.bytes.length)
    throw c.corrupt(
      `abbreviation table offset 0x${offset.toString(16)} is outside the section (${section.bytes.length} bytes)`,
      offset,
    );
  const table = new Map<number, Abbreviation>();
  for (;;) {
    const at = c.pos;
    const code = c.uleb("abbreviation code");
    if (code === 0) return table;
    const tag = c.uleb("abbreviation tag");
    const children = c.u8("DW_CHILDREN flag");
    if (children > 1) throw c.corrupt(`DW_CHILDREN value ${children} of abbreviation ${code}`, c.pos - 1);
    const attributes: number[] = [];
    const forms: number[] = [];
    const implicitConsts: bigint[] = [];
    for (;;) {
      const name = c.uleb("attribute name");
      const form = c.uleb("attribute form");
      if (name === 0 && form === 0) break;
      attributes.push(name);
      forms.push(form);
      implicitConsts.push(form === DW_FORM.DW_FORM_implicit_const ? c.sleb("implicit constant") : 0n);
    }
    if (table.has(code)) throw c.corrupt(`abbreviation code ${code} is declared twice`, at);
    table.set(code, { code, tag, hasChildren: children === 1, attributes, forms, implicitConsts });
  }
}
