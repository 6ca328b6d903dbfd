import { describe, expect, test } from "vitest";
import { compile, hasTool, objdump, objdumpKind } from "../../../test/support/objdump-oracle.js";
import { decode } from "./decode.js";
import { MAX_NOP_FILL_LENGTH, nopFill, nopLength } from "./nop.js";

const haveGas = hasTool("gcc") && hasTool("objdump");
const haveClang = hasTool("clang") && hasTool("objdump");

/** Assemble `body` as x86-64 and return the bytes of each instruction objdump lists. */
function assemble(body: string, compiler = "gcc", flags: readonly string[] = []): Uint8Array[] {
  const obj = compile("nops.s", `.text\n${body}\n`, flags, compiler);
  return objdump(obj, { section: ".text" }).map((line) => line.bytes);
}

/** `.nops n` for each n, each closed by an int3 so every NOP run stays apart. */
function nopsSource(lengths: readonly number[], maxEach?: number): string {
  return lengths
    .map((n) => `.nops ${n}${maxEach === undefined ? "" : `, ${Math.min(n, maxEach)}`}\nint3`)
    .join("\n");
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.skipIf(!haveGas)("nopLength against gas", () => {
  test("every single NOP gas emits, 1 to 11 bytes, is a NOP of its full length", () => {
    const nops = assemble(nopsSource(range(1, 11), 11)).filter((b) => b[0] !== 0xcc);
    expect(nops.map((b) => b.length)).toEqual(range(1, 11));
    for (const bytes of nops) {
      expect(nopLength(bytes, 0)).toBe(bytes.length);
      expect(decode(bytes, 0n).map((i) => i.kind)).toEqual(["nop"]);
    }
  });

  test("the NOPs gcc pads and aligns functions with are NOPs of their full length", () => {
    const obj = compile(
      "pad.c",
      "int f(int x) { for (int i = 0; i < x; i++) x ^= i * 7; return x; }\nint g(int x) { return x + 1; }\n",
      ["-O2", "-falign-functions=64", "-falign-loops=32", "-fpatchable-function-entry=16,5"],
    );
    const nops = objdump(obj, { section: ".text" }).filter((line) => objdumpKind(line) === "nop");
    expect(nops.length).toBeGreaterThan(3);
    for (const line of nops) expect(nopLength(line.bytes, 0), line.text).toBe(line.bytes.length);
  });

  test("41 90 is xchg %eax,%r8d, not a NOP: REX.B makes 90 a real exchange", () => {
    const [xchg] = assemble("xchg %eax, %r8d");
    expect(Array.from(xchg!)).toEqual([0x41, 0x90]);
    expect(nopLength(xchg!, 0)).toBe(0);
    expect(decode(xchg!, 0n)[0]?.kind).toBe("other");
  });

  test("pause and endbr64 are not NOPs", () => {
    const [pause, endbr] = assemble("pause\nendbr64");
    expect(nopLength(pause!, 0)).toBe(0);
    expect(nopLength(endbr!, 0)).toBe(0);
    expect(decode(endbr!, 0n)[0]?.kind).toBe("endbr");
  });

  test("nopFill(n) is the same bytes as gas's .nops n for every n up to 64", () => {
    const ns = range(1, 64);
    const runs = splitAtInt3(assemble(nopsSource(ns)));
    expect(runs.map(concat)).toEqual(ns.map(nopFill));
  });
});

describe.skipIf(!haveClang)("nopLength against clang", () => {
  test("every single NOP clang emits for skylake, 1 to 15 bytes, is a NOP of its full length", () => {
    // LLVM uses up to five extra 66 prefixes on cores that decode them fast (FeatureFast15ByteNOP).
    const nops = assemble(nopsSource(range(1, 15)), "clang", [
      "-target",
      "x86_64-linux-gnu",
      "-march=skylake",
    ]);
    const single = nops.filter((b) => b[0] !== 0xcc);
    expect(single.map((b) => b.length)).toEqual(range(1, 15));
    for (const bytes of single) expect(nopLength(bytes, 0)).toBe(bytes.length);
  });
});

describe("nopLength", () => {
  test("looks at the instruction at the offset, and says 0 past the end", () => {
    const bytes = Uint8Array.of(0xcc, 0x66, 0x90, 0xc3);
    expect([0, 1, 2, 3, 4].map((off) => nopLength(bytes, off))).toEqual([0, 2, 1, 0, 0]);
  });

  test("a NOP cut short by the end of the bytes is not a NOP", () => {
    expect(nopLength(Uint8Array.of(0x0f, 0x1f, 0x44, 0x00), 0)).toBe(0);
  });
});

describe("nopFill", () => {
  test("nopFill(n) decodes to NOPs covering exactly n bytes in the fewest instructions, n in 0..64", () => {
    for (let n = 0; n <= 64; n++) {
      const fill = nopFill(n);
      const decoded = decode(fill, 0x1000n);
      expect(fill.length).toBe(n);
      expect(decoded.every((i) => i.kind === "nop")).toBe(true);
      expect(decoded.reduce((sum, i) => sum + i.length, 0)).toBe(n);
      expect(decoded.length).toBe(Math.ceil(n / MAX_NOP_FILL_LENGTH));
    }
  });

  test("five bytes are one 5-byte NOP, never five 1-byte NOPs", () => {
    expect(decode(nopFill(5), 0n)).toHaveLength(1);
  });

  test("refuses a negative or fractional length", () => {
    expect(() => nopFill(-1)).toThrow(RangeError);
    expect(() => nopFill(1.5)).toThrow(RangeError);
  });
});

/** Group instruction bytes into the runs between int3s. */
function splitAtInt3(instructions: Uint8Array[]): Uint8Array[][] {
  const runs: Uint8Array[][] = [[]];
  for (const bytes of instructions) {
    if (bytes.length === 1 && bytes[0] === 0xcc) runs.push([]);
    else runs.at(-1)!.push(bytes);
  }
  return runs.slice(0, -1);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
