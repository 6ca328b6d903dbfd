import { expect, test } from "vitest";
import { optimizes, parseProducer } from "./producer-flags.js";

test("gcc records its switches: the last -O wins, -flive-patching is seen", () => {
  const p = parseProducer(
    "GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O3 -O2 -flive-patching=inline-clone",
  );
  expect(p).toEqual({
    compiler: "gcc",
    lto: false,
    flagsRecorded: true,
    flags: ["-mtune=generic", "-march=x86-64", "-g", "-O3", "-O2", "-flive-patching=inline-clone"],
    optimization: 2,
    livePatching: "inline-clone",
  });
  expect(parseProducer("GNU C11 12.2.0 -g -Os -flive-patching=inline-only-static").livePatching).toBe(
    "inline-only-static",
  );
  expect(parseProducer("GNU C17 12.2.0 -g -O").optimization).toBe(1);
  expect(optimizes(parseProducer("GNU C17 12.2.0 -g"))).toBe(false);
  expect(optimizes(parseProducer("GNU C17 12.2.0 -g -Og"))).toBe(true);
});

test("gcc LTO units, the assembler and clang are told apart", () => {
  expect(parseProducer("GNU GIMPLE 12.2.0 -O2 -flto").lto).toBe(true);
  expect(parseProducer("GNU AS 2.40").compiler).toBe("other");
  const clang = parseProducer("Debian clang version 14.0.6");
  expect(clang.compiler).toBe("clang");
  expect(clang.flagsRecorded).toBe(false);
  expect(clang.optimization).toBeUndefined();
});
