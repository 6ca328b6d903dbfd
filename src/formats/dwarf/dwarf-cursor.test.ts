import { describe, expect, test } from "vitest";
import { GraftError } from "../../core/errors.js";
import { DwarfCursor } from "./dwarf-cursor.js";

const cursor = (...bytes: number[]) =>
  new DwarfCursor({ name: ".debug_test", bytes: new Uint8Array(bytes), file: "t" });

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof GraftError ? e.code : `not a GraftError: ${String(e)}`;
  }
  return undefined;
}

describe("LEB128 [DWARF5 7.6, figures 7.11 and 7.12]", () => {
  test.each([
    [[0x02], 2n],
    [[0x7f], 127n],
    [[0x80, 0x01], 128n],
    [[0x81, 0x01], 129n],
    [[0x82, 0x01], 130n],
    [[0xb9, 0x64], 12857n],
    [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 0xffffffffffffffffn],
  ])("unsigned %j is %s", (bytes, value) => {
    const c = cursor(...bytes);
    expect(c.ulebBig("x")).toBe(value);
    expect(c.pos).toBe(bytes.length);
  });

  test.each([
    [[0x02], 2n],
    [[0x7e], -2n],
    [[0xff, 0x00], 127n],
    [[0x81, 0x7f], -127n],
    [[0x80, 0x01], 128n],
    [[0x80, 0x7f], -128n],
    [[0x81, 0x01], 129n],
    [[0xff, 0x7e], -129n],
  ])("signed %j is %s", (bytes, value) => {
    expect(cursor(...bytes).sleb("x")).toBe(value);
  });

  test("a LEB128 cut short is DWARF_TRUNCATED at its first byte", () => {
    const c = cursor(0x00, 0x80, 0x80);
    c.pos = 1;
    let error: unknown;
    try {
      c.ulebBig("count");
    } catch (e) {
      error = e;
    }
    expect((error as GraftError).code).toBe("DWARF_TRUNCATED");
    expect(String((error as Error).message)).toMatch(/count.*in \.debug_test at offset 0x1/);
  });

  test("an unsigned LEB128 wider than 64 bits is DWARF_CORRUPT; a count past 2^53 too", () => {
    expect(codeOf(() => cursor(...Array(10).fill(0xff), 0x7f).ulebBig("x"))).toBe("DWARF_CORRUPT");
    expect(codeOf(() => cursor(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).uleb("count"))).toBe(
      "DWARF_CORRUPT",
    );
  });
});

describe("fixed-size reads and initial lengths [DWARF5 7.4]", () => {
  test("reads stop at the cursor's end, not the buffer's", () => {
    const c = new DwarfCursor({ name: ".debug_test", bytes: new Uint8Array(8), file: undefined }, 0, 3);
    expect(c.u16("a")).toBe(0);
    expect(codeOf(() => c.u16("b"))).toBe("DWARF_TRUNCATED");
  });

  test("0xffffffff introduces a 64-bit length; 0xfffffff0-0xfffffffe are reserved", () => {
    const long = cursor(0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4);
    expect(long.initialLength("unit")).toEqual({ length: 4, offsetSize: 8 });
    expect(codeOf(() => cursor(0xf0, 0xff, 0xff, 0xff).initialLength("unit"))).toBe("DWARF_CORRUPT");
  });

  test("a string without its NUL is DWARF_TRUNCATED", () => {
    expect(cursor(0x61, 0x62, 0).cstring("s")).toBe("ab");
    expect(codeOf(() => cursor(0x61, 0x62).cstring("s"))).toBe("DWARF_TRUNCATED");
  });
});
