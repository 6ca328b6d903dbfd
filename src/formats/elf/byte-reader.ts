import { FormatError } from "../../core/errors.js";

/**
 * Bounds-checked little-endian reads over one file's bytes. Every read names the offset and what
 * was expected there when it would run past the end, so a truncated file reports where it broke.
 */
export class ByteReader {
  readonly bytes: Uint8Array;
  readonly file: string | undefined;
  private readonly view: DataView;

  constructor(bytes: Uint8Array, file?: string) {
    this.bytes = bytes;
    this.file = file;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.length;
  }

  /** Throw ELF_TRUNCATED unless [offset, offset+size) lies inside the file. */
  check(offset: bigint | number, size: bigint | number, what: string): number {
    const start = BigInt(offset);
    const end = start + BigInt(size);
    if (start < 0n || end > BigInt(this.bytes.length) || end < start) {
      const where = this.file === undefined ? {} : { file: this.file };
      throw new FormatError(
        "ELF_TRUNCATED",
        `${what} (${BigInt(size)} bytes) runs past the end of the file (${this.bytes.length} bytes)`,
        { ...where, offset: start },
      );
    }
    return Number(start);
  }

  u8(offset: number, what: string): number {
    this.check(offset, 1, what);
    return this.view.getUint8(offset);
  }
  u16(offset: number, what: string): number {
    this.check(offset, 2, what);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number, what: string): number {
    this.check(offset, 4, what);
    return this.view.getUint32(offset, true);
  }
  i32(offset: number, what: string): number {
    this.check(offset, 4, what);
    return this.view.getInt32(offset, true);
  }
  u64(offset: number, what: string): bigint {
    this.check(offset, 8, what);
    return this.view.getBigUint64(offset, true);
  }
  i64(offset: number, what: string): bigint {
    this.check(offset, 8, what);
    return this.view.getBigInt64(offset, true);
  }
  /** A view (not a copy) of [offset, offset+size). */
  slice(offset: bigint | number, size: bigint | number, what: string): Uint8Array {
    const start = this.check(offset, size, what);
    return this.bytes.subarray(start, start + Number(size));
  }
  /** Unchecked fast reads for hot loops whose whole range was checked once. */
  rawU32(offset: number): number {
    return this.view.getUint32(offset, true);
  }
  rawU16(offset: number): number {
    return this.view.getUint16(offset, true);
  }
  rawU64(offset: number): bigint {
    return this.view.getBigUint64(offset, true);
  }
  rawI64(offset: number): bigint {
    return this.view.getBigInt64(offset, true);
  }
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** NUL-terminated string at `offset` in `table`; `undefined` when the offset is outside or unterminated. */
export function findCString(table: Uint8Array, offset: number): string | undefined {
  if (offset < 0 || offset >= table.length) return undefined;
  const end = table.indexOf(0, offset);
  if (end < 0) return undefined;
  return decoder.decode(table.subarray(offset, end));
}
