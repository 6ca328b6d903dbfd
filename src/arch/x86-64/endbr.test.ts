import { describe, expect, test } from "vitest";
import { compile, hasTool, objdump, readBytes, section } from "../../../test/support/objdump-oracle.js";
import { endbrLength } from "./endbr.js";

const haveTools = hasTool("gcc") && hasTool("objdump") && hasTool("readelf");

describe.skipIf(!haveTools)("endbrLength against gcc", () => {
  test("finds the endbr64 that -fcf-protection puts at every function entry, and nothing else", () => {
    const obj = compile("cet.c", "int f(int x) { return x * 5; }\nint g(int x) { return x ? f(x) : 7; }\n", [
      "-O2",
      "-fcf-protection=full",
    ]);
    const text = section(obj, ".text");
    const bytes = readBytes(obj, text.offset, text.size);
    const lines = objdump(obj, { section: ".text" });
    const endbrs = lines.filter((line) => line.text === "endbr64");
    expect(endbrs.length).toBe(2);
    for (const line of lines) {
      const expected = line.text === "endbr64" ? 4 : 0;
      expect(endbrLength(bytes, Number(line.address - text.address)), line.text).toBe(expected);
    }
  });
});

describe("endbrLength", () => {
  test("endbr32 is no 64-bit landing pad", () => {
    expect(endbrLength(Uint8Array.of(0xf3, 0x0f, 0x1e, 0xfb), 0)).toBe(0);
  });

  test("an endbr64 cut short by the end of the bytes is not one", () => {
    expect(endbrLength(Uint8Array.of(0x90, 0xf3, 0x0f, 0x1e), 1)).toBe(0);
    expect(endbrLength(Uint8Array.of(0x90, 0xf3, 0x0f, 0x1e, 0xfa), 1)).toBe(4);
  });
});
