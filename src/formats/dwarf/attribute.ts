import { DW_FORM } from "./constants.js";
import type { DwarfCursor } from "./dwarf-cursor.js";

/**
 * An attribute value by its class [DWARF5 7.5.5]. References are absolute `.debug_info` offsets
 * (unit-relative forms are rebased), strings and indexed addresses are resolved; what needs another
 * section to mean something (a range list, a line table) stays an offset or an index.
 */
export type AttributeValue =
  | { readonly class: "address"; readonly value: bigint }
  /** data1/2/4/8/udata are unsigned, sdata/implicit_const signed; the consumer knows which it wants. */
  | { readonly class: "constant"; readonly value: bigint }
  | { readonly class: "flag"; readonly value: boolean }
  | { readonly class: "string"; readonly value: string }
  | { readonly class: "reference"; readonly value: bigint }
  /** DW_FORM_ref_sig8: a type unit's signature. */
  | { readonly class: "signature"; readonly value: bigint }
  /** DW_FORM_sec_offset: into .debug_line, .debug_ranges/.debug_rnglists, .debug_loc/.debug_loclists… */
  | { readonly class: "offset"; readonly value: bigint }
  | { readonly class: "rnglistx"; readonly value: bigint }
  | { readonly class: "loclistx"; readonly value: bigint }
  /** block1/2/4/block, exprloc, data16: the bytes, a view into the section. */
  | { readonly class: "block"; readonly value: Uint8Array }
  /** DW_FORM_ref_sup*, strp_sup, GNU_ref_alt, GNU_strp_alt: an offset into the supplementary (dwz) file. */
  | { readonly class: "supplementary"; readonly value: bigint }
  /** strx/addrx before the unit's bases are applied (only inside the reader). */
  | { readonly class: "strx"; readonly value: bigint }
  | { readonly class: "addrx"; readonly value: bigint };

export type Attribute = AttributeValue & {
  /** DW_AT_* */
  readonly at: number;
  /** DW_FORM_* (the actual one when the abbreviation said DW_FORM_indirect). */
  readonly form: number;
};

/** What decoding a form needs to know about its unit. */
export interface FormContext {
  readonly version: number;
  readonly addressSize: number;
  readonly offsetSize: 4 | 8;
  /** Offset of the unit header in .debug_info (unit-relative references are from here). */
  readonly unitOffset: number;
  /** `.debug_str` / `.debug_line_str` lookups; undefined when the section is missing. */
  readonly strp: (offset: bigint) => string;
  readonly lineStrp: (offset: bigint) => string;
}

/**
 * Decode one attribute (DW_AT `at`, DW_FORM `form`) at the cursor. strx/addrx forms come back as
 * `strx`/`addrx` indexes: the bases that give them meaning are attributes of the unit DIE itself,
 * possibly after them. One object per attribute: DIE walks decode hundreds of thousands.
 */
export function readAttribute(
  c: DwarfCursor,
  at: number,
  form: number,
  implicitConst: bigint,
  ctx: FormContext,
): Attribute {
  const F = DW_FORM;
  switch (form) {
    case F.DW_FORM_addr:
      return { at, form, class: "address", value: c.sized(ctx.addressSize, "DW_FORM_addr") };
    case F.DW_FORM_data1:
      return { at, form, class: "constant", value: BigInt(c.u8("DW_FORM_data1")) };
    case F.DW_FORM_data2:
      return { at, form, class: "constant", value: BigInt(c.u16("DW_FORM_data2")) };
    case F.DW_FORM_data4:
      return { at, form, class: "constant", value: BigInt(c.u32("DW_FORM_data4")) };
    case F.DW_FORM_data8:
      return { at, form, class: "constant", value: c.u64("DW_FORM_data8") };
    case F.DW_FORM_data16:
      return { at, form, class: "block", value: c.block(16, "DW_FORM_data16") };
    case F.DW_FORM_udata:
      return { at, form, class: "constant", value: c.ulebBig("DW_FORM_udata") };
    case F.DW_FORM_sdata:
      return { at, form, class: "constant", value: c.sleb("DW_FORM_sdata") };
    case F.DW_FORM_implicit_const:
      return { at, form, class: "constant", value: implicitConst };
    case F.DW_FORM_flag:
      return { at, form, class: "flag", value: c.u8("DW_FORM_flag") !== 0 };
    case F.DW_FORM_flag_present:
      return { at, form, class: "flag", value: true };
    case F.DW_FORM_string:
      return { at, form, class: "string", value: c.cstring("DW_FORM_string") };
    case F.DW_FORM_strp:
      return { at, form, class: "string", value: ctx.strp(c.sized(ctx.offsetSize, "DW_FORM_strp")) };
    case F.DW_FORM_line_strp:
      return { at, form, class: "string", value: ctx.lineStrp(c.sized(ctx.offsetSize, "DW_FORM_line_strp")) };
    case F.DW_FORM_strx:
    case F.DW_FORM_GNU_str_index:
      return { at, form, class: "strx", value: c.ulebBig("DW_FORM_strx") };
    case F.DW_FORM_strx1:
      return { at, form, class: "strx", value: BigInt(c.u8("DW_FORM_strx1")) };
    case F.DW_FORM_strx2:
      return { at, form, class: "strx", value: BigInt(c.u16("DW_FORM_strx2")) };
    case F.DW_FORM_strx3:
      return { at, form, class: "strx", value: BigInt(c.u24("DW_FORM_strx3")) };
    case F.DW_FORM_strx4:
      return { at, form, class: "strx", value: BigInt(c.u32("DW_FORM_strx4")) };
    case F.DW_FORM_addrx:
    case F.DW_FORM_GNU_addr_index:
      return { at, form, class: "addrx", value: c.ulebBig("DW_FORM_addrx") };
    case F.DW_FORM_addrx1:
      return { at, form, class: "addrx", value: BigInt(c.u8("DW_FORM_addrx1")) };
    case F.DW_FORM_addrx2:
      return { at, form, class: "addrx", value: BigInt(c.u16("DW_FORM_addrx2")) };
    case F.DW_FORM_addrx3:
      return { at, form, class: "addrx", value: BigInt(c.u24("DW_FORM_addrx3")) };
    case F.DW_FORM_addrx4:
      return { at, form, class: "addrx", value: BigInt(c.u32("DW_FORM_addrx4")) };
    case F.DW_FORM_ref1:
      return { at, form, class: "reference", value: BigInt(ctx.unitOffset + c.u8("DW_FORM_ref1")) };
    case F.DW_FORM_ref2:
      return { at, form, class: "reference", value: BigInt(ctx.unitOffset + c.u16("DW_FORM_ref2")) };
    case F.DW_FORM_ref4:
      return { at, form, class: "reference", value: BigInt(ctx.unitOffset + c.u32("DW_FORM_ref4")) };
    case F.DW_FORM_ref8:
      return { at, form, class: "reference", value: BigInt(ctx.unitOffset) + c.u64("DW_FORM_ref8") };
    case F.DW_FORM_ref_udata:
      return { at, form, class: "reference", value: BigInt(ctx.unitOffset) + c.ulebBig("DW_FORM_ref_udata") };
    case F.DW_FORM_ref_addr:
      // DWARF 2 sized it like an address; from DWARF 3 on it is an offset [DWARF5 7.5.5 "reference"].
      return {
        at,
        form,
        class: "reference",
        value: c.sized(ctx.version <= 2 ? ctx.addressSize : ctx.offsetSize, "DW_FORM_ref_addr"),
      };
    case F.DW_FORM_ref_sig8:
      return { at, form, class: "signature", value: c.u64("DW_FORM_ref_sig8") };
    case F.DW_FORM_sec_offset:
      return { at, form, class: "offset", value: c.sized(ctx.offsetSize, "DW_FORM_sec_offset") };
    case F.DW_FORM_rnglistx:
      return { at, form, class: "rnglistx", value: c.ulebBig("DW_FORM_rnglistx") };
    case F.DW_FORM_loclistx:
      return { at, form, class: "loclistx", value: c.ulebBig("DW_FORM_loclistx") };
    case F.DW_FORM_exprloc:
    case F.DW_FORM_block:
      return { at, form, class: "block", value: c.block(c.ulebBig("block length"), "DW_FORM_block/exprloc") };
    case F.DW_FORM_block1:
      return { at, form, class: "block", value: c.block(c.u8("DW_FORM_block1 length"), "DW_FORM_block1") };
    case F.DW_FORM_block2:
      return { at, form, class: "block", value: c.block(c.u16("DW_FORM_block2 length"), "DW_FORM_block2") };
    case F.DW_FORM_block4:
      return { at, form, class: "block", value: c.block(c.u32("DW_FORM_block4 length"), "DW_FORM_block4") };
    case F.DW_FORM_ref_sup4:
      return { at, form, class: "supplementary", value: BigInt(c.u32("DW_FORM_ref_sup4")) };
    case F.DW_FORM_ref_sup8:
      return { at, form, class: "supplementary", value: c.u64("DW_FORM_ref_sup8") };
    case F.DW_FORM_strp_sup:
    case F.DW_FORM_GNU_ref_alt:
    case F.DW_FORM_GNU_strp_alt:
      return { at, form, class: "supplementary", value: c.sized(ctx.offsetSize, "supplementary offset") };
    case F.DW_FORM_indirect: {
      const start = c.pos;
      const actual = c.uleb("DW_FORM_indirect form");
      if (actual === F.DW_FORM_indirect || actual === F.DW_FORM_implicit_const)
        throw c.corrupt(`DW_FORM_indirect names form 0x${actual.toString(16)}`, start);
      return readAttribute(c, at, actual, 0n, ctx);
    }
    default:
      throw c.corrupt(`unknown attribute form 0x${form.toString(16)}`);
  }
}

/**
 * Bytes a form takes regardless of its value, or -1 when it has a length of its own (LEB128,
 * strings, blocks, indirect). Lets a DIE whose forms are all fixed be skipped with one addition.
 */
export function fixedFormSize(
  form: number,
  addressSize: number,
  offsetSize: number,
  version: number,
): number {
  const F = DW_FORM;
  switch (form) {
    case F.DW_FORM_flag_present:
    case F.DW_FORM_implicit_const:
      return 0;
    case F.DW_FORM_data1:
    case F.DW_FORM_ref1:
    case F.DW_FORM_flag:
    case F.DW_FORM_strx1:
    case F.DW_FORM_addrx1:
      return 1;
    case F.DW_FORM_data2:
    case F.DW_FORM_ref2:
    case F.DW_FORM_strx2:
    case F.DW_FORM_addrx2:
      return 2;
    case F.DW_FORM_strx3:
    case F.DW_FORM_addrx3:
      return 3;
    case F.DW_FORM_data4:
    case F.DW_FORM_ref4:
    case F.DW_FORM_strx4:
    case F.DW_FORM_addrx4:
    case F.DW_FORM_ref_sup4:
      return 4;
    case F.DW_FORM_data8:
    case F.DW_FORM_ref8:
    case F.DW_FORM_ref_sig8:
    case F.DW_FORM_ref_sup8:
      return 8;
    case F.DW_FORM_data16:
      return 16;
    case F.DW_FORM_addr:
      return addressSize;
    case F.DW_FORM_ref_addr:
      return version <= 2 ? addressSize : offsetSize;
    case F.DW_FORM_strp:
    case F.DW_FORM_line_strp:
    case F.DW_FORM_sec_offset:
    case F.DW_FORM_strp_sup:
    case F.DW_FORM_GNU_ref_alt:
    case F.DW_FORM_GNU_strp_alt:
      return offsetSize;
    default:
      return -1;
  }
}

/** Move the cursor past one attribute of `form` without building its value. */
export function skipAttributeValue(c: DwarfCursor, form: number, ctx: FormContext): void {
  const F = DW_FORM;
  const fixed = fixedFormSize(form, ctx.addressSize, ctx.offsetSize, ctx.version);
  if (fixed >= 0) {
    c.skip(fixed, "attribute value");
    return;
  }
  switch (form) {
    case F.DW_FORM_udata:
    case F.DW_FORM_sdata:
    case F.DW_FORM_strx:
    case F.DW_FORM_addrx:
    case F.DW_FORM_ref_udata:
    case F.DW_FORM_rnglistx:
    case F.DW_FORM_loclistx:
    case F.DW_FORM_GNU_addr_index:
    case F.DW_FORM_GNU_str_index:
      c.skipLeb("attribute value");
      return;
    case F.DW_FORM_string: {
      const nul = c.bytes.indexOf(0, c.pos);
      if (nul < 0 || nul >= c.end) throw c.truncated("DW_FORM_string (NUL-terminated string)", "1+");
      c.pos = nul + 1;
      return;
    }
    case F.DW_FORM_exprloc:
    case F.DW_FORM_block:
      c.skip(c.uleb("block length"), "DW_FORM_block/exprloc");
      return;
    case F.DW_FORM_block1:
      c.skip(c.u8("DW_FORM_block1 length"), "DW_FORM_block1");
      return;
    case F.DW_FORM_block2:
      c.skip(c.u16("DW_FORM_block2 length"), "DW_FORM_block2");
      return;
    case F.DW_FORM_block4:
      c.skip(c.u32("DW_FORM_block4 length"), "DW_FORM_block4");
      return;
    case F.DW_FORM_indirect: {
      const start = c.pos;
      const actual = c.uleb("DW_FORM_indirect form");
      if (actual === F.DW_FORM_indirect || actual === F.DW_FORM_implicit_const)
        throw c.corrupt(`DW_FORM_indirect names form 0x${actual.toString(16)}`, start);
      skipAttributeValue(c, actual, ctx);
      return;
    }
    default:
      throw c.corrupt(`unknown attribute form 0x${form.toString(16)}`);
  }
}
