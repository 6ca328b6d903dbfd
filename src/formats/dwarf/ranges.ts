import { DW_RLE } from "./constants.js";
import { DwarfCursor, type DwarfSection, dwarfError } from "./dwarf-cursor.js";

/** [low, high): the code a DIE covers. */
export interface AddressRange {
  readonly low: bigint;
  readonly high: bigint;
}

/** A range list longer than this is damage, not code (and must not run away on a corrupt file). */
const MAX_ENTRIES = 1 << 20;

function start(section: DwarfSection, offset: bigint): DwarfCursor {
  if (offset < 0n || offset >= BigInt(section.bytes.length))
    throw dwarfError(
      section,
      "DWARF_CORRUPT",
      `range list offset 0x${offset.toString(16)} is outside the section (${section.bytes.length} bytes)`,
      offset,
    );
  return new DwarfCursor(section, Number(offset));
}

/**
 * A DWARF 2–4 range list in `.debug_ranges` [DWARF4 2.17.3]: address pairs relative to the base
 * address, a (max, addr) pair selecting a new base, (0, 0) ending the list.
 */
export function readRangeList(
  section: DwarfSection,
  offset: bigint,
  addressSize: number,
  unitBase: bigint,
): AddressRange[] {
  const c = start(section, offset);
  const max = addressSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;
  let base = unitBase;
  const out: AddressRange[] = [];
  for (let n = 0; n < MAX_ENTRIES; n++) {
    const a = c.sized(addressSize, "range list start");
    const b = c.sized(addressSize, "range list end");
    if (a === 0n && b === 0n) return out;
    if (a === max) {
      base = b;
      continue;
    }
    if (b > a) out.push({ low: base + a, high: base + b });
  }
  throw c.corrupt("range list has no end");
}

/** A DWARF 5 range list in `.debug_rnglists` [DWARF5 2.17.3, 7.25]. */
export function readRnglist(
  section: DwarfSection,
  offset: bigint,
  addressSize: number,
  unitBase: bigint,
  address: (index: bigint) => bigint,
): AddressRange[] {
  const c = start(section, offset);
  let base = unitBase;
  const out: AddressRange[] = [];
  const push = (low: bigint, high: bigint): void => {
    if (high > low) out.push({ low, high });
  };
  for (let n = 0; n < MAX_ENTRIES; n++) {
    const at = c.pos;
    const kind = c.u8("range list entry kind");
    switch (kind) {
      case DW_RLE.DW_RLE_end_of_list:
        return out;
      case DW_RLE.DW_RLE_base_addressx:
        base = address(c.ulebBig("DW_RLE_base_addressx index"));
        break;
      case DW_RLE.DW_RLE_startx_endx: {
        const a = address(c.ulebBig("DW_RLE_startx_endx start"));
        push(a, address(c.ulebBig("DW_RLE_startx_endx end")));
        break;
      }
      case DW_RLE.DW_RLE_startx_length: {
        const a = address(c.ulebBig("DW_RLE_startx_length start"));
        push(a, a + c.ulebBig("DW_RLE_startx_length length"));
        break;
      }
      case DW_RLE.DW_RLE_offset_pair: {
        const a = c.ulebBig("DW_RLE_offset_pair start");
        push(base + a, base + c.ulebBig("DW_RLE_offset_pair end"));
        break;
      }
      case DW_RLE.DW_RLE_base_address:
        base = c.sized(addressSize, "DW_RLE_base_address");
        break;
      case DW_RLE.DW_RLE_start_end: {
        const a = c.sized(addressSize, "DW_RLE_start_end start");
        push(a, c.sized(addressSize, "DW_RLE_start_end end"));
        break;
      }
      case DW_RLE.DW_RLE_start_length: {
        const a = c.sized(addressSize, "DW_RLE_start_length start");
        push(a, a + c.ulebBig("DW_RLE_start_length length"));
        break;
      }
      default:
        throw c.corrupt(`unknown range list entry kind 0x${kind.toString(16)}`, at);
    }
  }
  throw c.corrupt("range list has no end");
}
