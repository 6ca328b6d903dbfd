import { describe, expect, test } from "vitest";
import { parseUsdtArguments } from "./stapsdt.js";

describe("parseUsdtArguments", () => {
  test("reads size, sign and operand from each `[-]N@OPERAND`", () => {
    expect(parseUsdtArguments("-4@%edi 8@-16(%rbp) 1@$5 -2@foo(%rip)")).toEqual([
      { size: 4, signed: true, location: "%edi" },
      { size: 8, signed: false, location: "-16(%rbp)" },
      { size: 1, signed: false, location: "$5" },
      { size: 2, signed: true, location: "foo(%rip)" },
    ]);
  });

  test("treats a bare operand from an old sdt.h as 8 bytes signed", () => {
    expect(parseUsdtArguments("%rdi")).toEqual([{ size: 8, signed: true, location: "%rdi" }]);
  });

  test("ignores runs of spaces and returns nothing for an empty spec", () => {
    expect(parseUsdtArguments("  -4@%edi   8@%rsi ").map((a) => a.location)).toEqual(["%edi", "%rsi"]);
    expect(parseUsdtArguments("")).toEqual([]);
  });
});
