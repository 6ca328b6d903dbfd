import { DW_UT } from "./constants.js";
import { type DwarfCursor, dwarfError } from "./dwarf-cursor.js";

/** A unit header of `.debug_info` [DWARF5 7.5.1.1–7.5.1.3; DWARF4 7.5.1.1]. */
export interface UnitHeader {
  /** Offset of the header in `.debug_info`. */
  readonly offset: number;
  /** Offset just past the unit. */
  readonly end: number;
  readonly offsetSize: 4 | 8;
  readonly version: number;
  /** DW_UT_*; DWARF 2–4 compile units say DW_UT_compile. */
  readonly unitType: number;
  readonly addressSize: number;
  readonly abbrevOffset: number;
  /** Offset of the first DIE. */
  readonly dieOffset: number;
  /** Skeleton and split units: the id that pairs them with their .dwo. */
  readonly dwoId: bigint | undefined;
  /** Type units: the signature and the offset of the type's DIE (unit-relative). */
  readonly typeSignature: bigint | undefined;
  readonly typeOffset: bigint | undefined;
}

/** Parse the unit header at the cursor and leave the cursor after it. */
export function parseUnitHeader(c: DwarfCursor): UnitHeader {
  const offset = c.pos;
  const { length, offsetSize } = c.initialLength("unit");
  const end = c.pos + length;
  if (end > c.bytes.length)
    throw dwarfError(
      c.section,
      "DWARF_TRUNCATED",
      `unit of ${length} bytes runs past the end (${c.bytes.length} bytes)`,
      offset,
    );
  c.end = end;
  const version = c.u16("unit version");
  if (version < 2 || version > 5)
    throw dwarfError(c.section, "DWARF_UNSUPPORTED", `unit version ${version} (graft reads 2-5)`, offset + 4);
  let unitType: number = DW_UT.DW_UT_compile;
  let addressSize: number;
  let abbrevOffset: bigint;
  let dwoId: bigint | undefined;
  let typeSignature: bigint | undefined;
  let typeOffset: bigint | undefined;
  if (version >= 5) {
    unitType = c.u8("unit type");
    addressSize = c.u8("unit address size");
    abbrevOffset = c.sized(offsetSize, "unit abbreviation offset");
    if (unitType === DW_UT.DW_UT_skeleton || unitType === DW_UT.DW_UT_split_compile)
      dwoId = c.u64("unit dwo_id");
    else if (unitType === DW_UT.DW_UT_type || unitType === DW_UT.DW_UT_split_type) {
      typeSignature = c.u64("type unit signature");
      typeOffset = c.sized(offsetSize, "type unit type offset");
    } else if (unitType !== DW_UT.DW_UT_compile && unitType !== DW_UT.DW_UT_partial)
      throw dwarfError(
        c.section,
        "DWARF_CORRUPT",
        `unknown unit type 0x${unitType.toString(16)}`,
        offset + 6,
      );
  } else {
    abbrevOffset = c.sized(offsetSize, "unit abbreviation offset");
    addressSize = c.u8("unit address size");
  }
  if (addressSize !== 4 && addressSize !== 8)
    throw dwarfError(c.section, "DWARF_CORRUPT", `unit address size ${addressSize}, expected 4 or 8`, offset);
  if (abbrevOffset > BigInt(Number.MAX_SAFE_INTEGER))
    throw dwarfError(
      c.section,
      "DWARF_CORRUPT",
      `abbreviation offset 0x${abbrevOffset.toString(16)}`,
      offset,
    );
  return {
    offset,
    end,
    offsetSize,
    version,
    unitType,
    addressSize,
    abbrevOffset: Number(abbrevOffset),
    dieOffset: c.pos,
    dwoId,
    typeSignature,
    typeOffset,
  };
}
