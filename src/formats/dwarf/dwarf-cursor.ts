import type { ErrorCode } from "../../core/error-codes.js";
import { FormatError } from "../../core/errors.js";

/** One DWARF section's bytes and where errors should say they are. */
export interface DwarfSection {
  /** `.debug_info`, `.debug_line`, … */
  readonly name: string;
  /** The section's contents (decompressed and, in a `.o`, relocated). */
  readonly bytes: Uint8Array;
  /** The ELF file, for error messages. */
  readonly file: string | undefined;
}

/** A DWARF error: the offset is inside the named section (decompressed), not in the file. */
export function dwarfError(
  section: DwarfSection,
  code: ErrorCode,
  detail: string,
  offset: number | bigint,
): FormatError {
  return new FormatError(code, `${detail} in ${section.name}`, {
    ...(section.file === undefined ? {} : { file: section.file }),
    offset: BigInt(offset),
  });
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * A bounds-checked position in one DWARF section: little-endian fixed-size reads, LEB128 and
 * NUL-terminated strings [DWARF5 7.6]. Every read that would pass `end` throws DWARF_TRUNCATED
 * naming the offset and what was expected there; `end` is the section end or a unit's end.
 */
export class DwarfCursor {
  readonly section: DwarfSection;
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  pos: number;
  end: number;

  constructor(section: DwarfSection, pos = 0, end = section.bytes.length) {
    this.section = section;
    this.bytes = section.bytes;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.pos = pos;
    this.end = Math.min(end, this.bytes.length);
  }

  /** A cursor over [pos, end) of the same section. */
  at(pos: number, end = this.end): DwarfCursor {
    return new DwarfCursor(this.section, pos, end);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  truncated(what: string, size: number | string): FormatError {
    return dwarfError(this.section, "DWARF_TRUNCATED", `${what} (${size} bytes) runs past the end`, this.pos);
  }
  corrupt(detail: string, offset = this.pos): FormatError {
    return dwarfError(this.section, "DWARF_CORRUPT", detail, offset);
  }

  need(size: number, what: string): void {
    if (this.pos + size > this.end || this.pos < 0) throw this.truncated(what, size);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u24(what: string): number {
    this.need(3, what);
    const v = this.bytes[this.pos]! | (this.bytes[this.pos + 1]! << 8) | (this.bytes[this.pos + 2]! << 16);
    this.pos += 3;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** An unsigned value of `size` bytes (1, 2, 4 or 8), e.g. an address or a section offset. */
  sized(size: number, what: string): bigint {
    switch (size) {
      case 1:
        return BigInt(this.u8(what));
      case 2:
        return BigInt(this.u16(what));
      case 4:
        return BigInt(this.u32(what));
      case 8:
        return this.u64(what);
      default:
        throw this.corrupt(`${what} has size ${size}, expected 1, 2, 4 or 8`);
    }
  }

  /** Unsigned LEB128 as a bigint (any width up to 64 bits is kept; longer encodings are corrupt). */
  ulebBig(what: string): bigint {
    const start = this.pos;
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) {
        this.pos = start;
        throw this.truncated(`${what} (ULEB128)`, "1+");
      }
      const b = this.bytes[this.pos++]!;
      if (shift < 64n) result |= BigInt(b & 0x7f) << shift;
      else if ((b & 0x7f) !== 0) throw this.corrupt(`${what} (ULEB128) does not fit in 64 bits`, start);
      shift += 7n;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
    }
  }

  /** Unsigned LEB128 that must be a safe JS integer (a count, an index, a code). Fast path for small values. */
  uleb(what: string): number {
    const b = this.pos < this.end ? this.bytes[this.pos]! : 0x80;
    if (b < 0x80 && this.pos < this.end) {
      this.pos++;
      return b;
    }
    const start = this.pos;
    const v = this.ulebBig(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt(`${what} ${v} is implausibly large`, start);
    return Number(v);
  }

  /** Signed LEB128. */
  sleb(what: string): bigint {
    const start = this.pos;
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) {
        this.pos = start;
        throw this.truncated(`${what} (SLEB128)`, "1+");
      }
      const b = this.bytes[this.pos++]!;
      if (shift < 64n) result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if (shift < 64n && (b & 0x40) !== 0) result -= 1n << shift;
        return BigInt.asIntN(64, result);
      }
    }
  }

  /** Skip one LEB128 without decoding it. */
  skipLeb(what: string): void {
    while (this.pos < this.end) if ((this.bytes[this.pos++]! & 0x80) === 0) return;
    throw this.truncated(`${what} (LEB128)`, "1+");
  }

  /** A NUL-terminated UTF-8 string inside [pos, end). */
  cstring(what: string): string {
    const nul = this.bytes.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw this.truncated(`${what} (NUL-terminated string)`, "1+");
    const s = decoder.decode(this.bytes.subarray(this.pos, nul));
    this.pos = nul + 1;
    return s;
  }

  /** A view of the next `size` bytes. */
  block(size: number | bigint, what: string): Uint8Array {
    const n = Number(size);
    if (!Number.isSafeInteger(n) || n < 0) throw this.truncated(what, String(size));
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(size: number, what: string): void {
    this.need(size, what);
    this.pos += size;
  }

  /**
   * An initial length [DWARF5 7.4]: 32-bit, or 0xffffffff then 64-bit (the 64-bit DWARF format).
   * Returns the length and the offset size (4 or 8) the unit's section offsets use.
   */
  initialLength(what: string): { length: number; offsetSize: 4 | 8 } {
    const start = this.pos;
    const l32 = this.u32(`${what} length`);
    if (l32 < 0xfffffff0) return { length: l32, offsetSize: 4 };
    if (l32 !== 0xffffffff) throw this.corrupt(`${what} length 0x${l32.toString(16)} is reserved`, start);
    const l64 = this.u64(`${what} 64-bit length`);
    if (l64 > BigInt(this.end)) throw this.truncated(`${what}`, String(l64));
    return { length: Number(l64), offsetSize: 8 };
  }
}

/** A NUL-terminated string at `offset` of a string section (`.debug_str`, `.debug_line_str`). */
export function stringAt(section: DwarfSection, offset: bigint, what: string): string {
  if (offset < 0n || offset >= BigInt(section.bytes.length)) {
    throw dwarfError(
      section,
      "DWARF_CORRUPT",
      `${what} offset 0x${offset.toString(16)} is outside the section (${section.bytes.length} bytes)`,
      offset,
    );
  }
  const at = Number(offset);
  const nul = section.bytes.indexOf(0, at);
  if (nul < 0) throw dwarfError(section, "DWARF_TRUNCATED", `${what} is not NUL-terminated`, offset);
  return decoder.decode(section.bytes.subarray(at, nul));
}
