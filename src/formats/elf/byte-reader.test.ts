import { describe, expect, test } from "vitest";
import { FormatError } from "../../core/errors.js";
import { ByteReader, findCString } from "./byte-reader.js";

describe("ByteReader.check", () => {
  const r = new ByteReader(new Uint8Array(16), "f");

  test("accepts a range that ends exactly at the end of the file", () => {
    expect(r.check(8, 8, "tail")).toBe(8);
    expect(r.check(16n, 0n, "empty tail")).toBe(16);
  });

  test("throws ELF_TRUNCATED naming the start for a range one byte too long", () => {
    expect(() => r.check(9, 8, "tail")).toThrow(FormatError);
    try {
      r.check(9, 8, "tail");
    } catch (e) {
      expect([(e as FormatError).code, (e as FormatError).offset, (e as FormatError).file]).toEqual([
        "ELF_TRUNCATED",
        9n,
        "f",
      ]);
    }
  });

  test("throws ELF_TRUNCATED, not a RangeError, for offsets and sizes near 2^64", () => {
    for (const [offset, size] of [
      [(1n << 64n) - 1n, 2n],
      [1n, (1n << 64n) - 1n],
      [1n << 63n, 1n << 63n],
    ] as const) {
      expect(() => r.check(offset, size, "huge")).toThrow(expect.objectContaining({ code: "ELF_TRUNCATED" }));
    }
  });
});

describe("findCString", () => {
  const table = new TextEncoder().encode("\0main\0helper");

  test("reads the string up to its NUL", () => {
    expect(findCString(table, 1)).toBe("main");
    expect(findCString(table, 0)).toBe("");
  });

  test("returns undefined for an unterminated string or an offset outside the table", () => {
    expect(findCString(table, 6)).toBeUndefined();
    expect(findCString(table, table.length)).toBeUndefined();
    expect(findCString(table, -1)).toBeUndefined();
  });
});
