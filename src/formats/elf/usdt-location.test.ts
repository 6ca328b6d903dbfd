import { describe, expect, it } from "vitest";
import { decodeUsdtLocation } from "./usdt-location.js";

describe("decodeUsdtLocation", () => {
  it("reads a register operand", () => {
    expect(decodeUsdtLocation("%edi")).toEqual({ kind: "register", register: "edi" });
  });
  it("reads a frame-relative memory operand", () => {
    expect(decodeUsdtLocation("-16(%rbp)")).toEqual({
      kind: "memory",
      base: "rbp",
      index: undefined,
      scale: 1,
      offset: -16n,
      symbol: undefined,
    });
  });
  it("reads base, index and scale", () => {
    expect(decodeUsdtLocation("0x8(%rax,%rdx,4)")).toMatchObject({
      base: "rax",
      index: "rdx",
      scale: 4,
      offset: 8n,
    });
  });
  it("reads a RIP-relative symbol with an addend", () => {
    expect(decodeUsdtLocation("counter+8(%rip)")).toMatchObject({
      base: "rip",
      symbol: "counter",
      offset: 8n,
    });
  });
  it("reads a constant", () => {
    expect(decodeUsdtLocation("$-5")).toEqual({ kind: "constant", value: -5n });
  });
  it("keeps what it does not know as unknown", () => {
    expect(decodeUsdtLocation("%st(1)+")).toEqual({ kind: "unknown", text: "%st(1)+" });
  });
});
