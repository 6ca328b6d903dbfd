import { describe, expect, it } from "vitest";
import { decodeUsdtLocation } from "../formats/elf/usdt-location.js";
import { decodeRegisters, USER_REGS_FIELDS } from "../process/registers.js";
import { usdtArgumentValue } from "./usdt-argument-value.js";

const regs = decodeRegisters(
  BigUint64Array.from(
    USER_REGS_FIELDS.map((f) =>
      f === "rdi"
        ? 0xffff_ffff_ffff_fffen
        : f === "rax"
          ? 0x1234n
          : f === "rbp"
            ? 0x1000n
            : f === "rdx"
              ? 2n
              : 0n,
    ),
  ),
);
const memory = new Map<bigint, number>([
  [0x0ff0n, 0xfb],
  [0x0ff1n, 0xff],
  [0x0ff2n, 0xff],
  [0x0ff3n, 0xff],
]);
const read = (a: bigint, n: number) =>
  Uint8Array.from({ length: n }, (_, i) => memory.get(a + BigInt(i)) ?? 0);
const value = (spec: string, size: number, signed: boolean) =>
  usdtArgumentValue(decodeUsdtLocation(spec), size, signed, regs, 0x5000n, read, (s) =>
    s === "counter" ? 0x0ff0n : undefined,
  );

describe("usdtArgumentValue", () => {
  it("reads part of a register, sign-extended when signed", () => {
    expect(value("%edi", 4, true)).toBe(-2n);
    expect(value("%edi", 4, false)).toBe(0xfffffffen);
    expect(value("%ah", 1, false)).toBe(0x12n);
    expect(value("%ax", 2, false)).toBe(0x1234n);
  });
  it("reads memory relative to a register, with an index", () => {
    expect(value("-16(%rbp)", 4, true)).toBe(-5n);
    expect(value("-20(%rbp,%rdx,2)", 4, true)).toBe(-5n);
  });
  it("reads a RIP-relative symbol at its runtime address", () => {
    expect(value("counter(%rip)", 4, false)).toBe(0xfffffffbn);
  });
  it("gives constants, and undefined for what it cannot read", () => {
    expect(value("$7", 4, true)).toBe(7n);
    expect(value("%xmm0", 8, false)).toBeUndefined();
    expect(value("other(%rip)", 4, false)).toBeUndefined();
  });
});
