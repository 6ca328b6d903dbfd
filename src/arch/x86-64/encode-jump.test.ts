import { describe, expect, test } from "vitest";
import { compile, hasTool, objdump, objdumpKind } from "../../../test/support/objdump-oracle.js";
import { decodeOne } from "./decode.js";
import {
  ABSOLUTE_JUMP_LENGTH,
  encodeAbsoluteJump,
  encodeNearCall,
  encodeNearJump,
  encodeShortJump,
  NEAR_JUMP_LENGTH,
  SHORT_JUMP_LENGTH,
} from "./encode-jump.js";

const base = 0x7f00_0000_1000n;
const I32 = 2n ** 31n;

describe("encodeShortJump", () => {
  test.each([0n, 2n, -126n, 129n, 100n])("jmp rel8 to from%+d round-trips through the decoder", (delta) => {
    const bytes = encodeShortJump(base, base + delta)!;
    expect(bytes).toHaveLength(SHORT_JUMP_LENGTH);
    expect(decodeOne(bytes, base)).toMatchObject({ kind: "jump", target: base + delta, length: 2 });
  });

  test("reaches exactly -128..127 from the end of the jump, and refuses one byte further", () => {
    const end = base + 2n;
    expect(encodeShortJump(base, end - 128n)).toEqual(Uint8Array.of(0xeb, 0x80));
    expect(encodeShortJump(base, end + 127n)).toEqual(Uint8Array.of(0xeb, 0x7f));
    expect(encodeShortJump(base, end - 129n)).toBeUndefined();
    expect(encodeShortJump(base, end + 128n)).toBeUndefined();
  });
});

describe.each([
  ["jmp", encodeNearJump, "jump", 0xe9],
  ["call", encodeNearCall, "call", 0xe8],
] as const)("%s rel32", (_name, encode, kind, opcode) => {
  test.each([0n, 5n, -1n, 0x1234_5678n, -0x1234_5678n])(
    "to from%+d round-trips through the decoder",
    (delta) => {
      const bytes = encode(base, base + delta)!;
      expect(bytes).toHaveLength(NEAR_JUMP_LENGTH);
      expect(bytes[0]).toBe(opcode);
      expect(decodeOne(bytes, base)).toMatchObject({ kind, target: base + delta, length: 5 });
    },
  );

  test("reaches exactly ±2 GiB from the end of the instruction, and refuses one byte further", () => {
    const end = base + 5n;
    expect(decodeOne(encode(base, end - I32)!, base)?.target).toBe(end - I32);
    expect(decodeOne(encode(base, end + I32 - 1n)!, base)?.target).toBe(end + I32 - 1n);
    expect(encode(base, end - I32 - 1n)).toBeUndefined();
    expect(encode(base, end + I32)).toBeUndefined();
  });
});

describe("encodeAbsoluteJump", () => {
  test("is jmp *0x0(%rip) followed by the 8-byte target, 14 bytes", () => {
    const to = 0xffff_8000_dead_beefn;
    const bytes = encodeAbsoluteJump(to);
    expect(bytes).toHaveLength(ABSOLUTE_JUMP_LENGTH);
    expect(decodeOne(bytes, base)).toMatchObject({ kind: "indirect-jump", length: 6, pcRelative: true });
    expect(new DataView(bytes.buffer).getBigUint64(6, true)).toBe(to);
  });

  test("refuses what is not a 64-bit address", () => {
    expect(() => encodeAbsoluteJump(-1n)).toThrow(RangeError);
    expect(() => encodeAbsoluteJump(2n ** 64n)).toThrow(RangeError);
  });
});

describe.skipIf(!(hasTool("gcc") && hasTool("objdump")))("jump encodings against gas", () => {
  test("gas assembles the same bytes for jmp rel8, jmp rel32, call rel32 and jmp *0x0(%rip)", () => {
    const obj = compile(
      "jumps.s",
      [".text", "a: jmp b", "b: jmp.d32 c", ".fill 300, 1, 0x90", "c: call a", "jmp *0(%rip)", ""].join("\n"),
      [],
    );
    const [short, near, call, absolute] = objdump(obj, { section: ".text" }).filter(
      (line) => objdumpKind(line) !== "nop",
    );
    expect(encodeShortJump(short!.address, near!.address)).toEqual(short!.bytes);
    expect(encodeNearJump(near!.address, call!.address)).toEqual(near!.bytes);
    expect(encodeNearCall(call!.address, 0n)).toEqual(call!.bytes);
    expect(encodeAbsoluteJump(0x123456789abcdef0n).subarray(0, 6)).toEqual(absolute!.bytes);
  });
});
