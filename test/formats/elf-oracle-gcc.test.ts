import { describe, expect, test } from "vitest";
import { STT } from "../../src/formats/elf/constants.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildFixture, run } from "../support/fixtures.js";
import { describeOracle, fixtureMatrix } from "./elf-oracle-matrix.js";

for (const c of fixtureMatrix("gcc")) describeOracle(c);

describe("the ELF reader next to nm", () => {
  test("finds the same defined symbols at the same addresses as nm -n --defined-only", () => {
    const path = buildFixture({ compiler: "gcc", sources: ["sites.c"], flags: ["-O2"], output: "exe" });
    const elf = readElfFile(path);
    // nm lists every defined symbol but section and file symbols, with a letter for its kind.
    const theirs = run("nm", ["-n", "--defined-only", path])
      .trim()
      .split("\n")
      .map((line) => {
        const [address, letter, name] = line.split(" ");
        return { address: BigInt(`0x${address}`), letter: letter!, name: name! };
      });
    const ours = elf
      .symbols()
      .filter(
        (s) => s.st_shndx !== 0 && s.type !== STT.STT_SECTION && s.type !== STT.STT_FILE && s.name !== "",
      );
    const key = (a: bigint, n: string): string => `${a.toString(16)} ${n}`;
    expect(ours.map((s) => key(s.st_value, s.name)).sort()).toEqual(
      theirs.map((t) => key(t.address, t.name)).sort(),
    );
    // Functions are text (T/t, W for weak), objects are data, bss or read-only data.
    const letterOf = new Map(theirs.map((t) => [key(t.address, t.name), t.letter]));
    const funcs = ours.filter((s) => s.type === STT.STT_FUNC);
    const objects = ours.filter((s) => s.type === STT.STT_OBJECT);
    expect(funcs.length).toBeGreaterThan(10);
    expect(objects.length).toBeGreaterThan(3);
    for (const s of funcs) expect(`${s.name} ${letterOf.get(key(s.st_value, s.name))}`).toMatch(/ [TtWi]$/);
    for (const s of objects)
      expect(`${s.name} ${letterOf.get(key(s.st_value, s.name))}`).toMatch(/ [DdBbRrVvu]$/);
  });
});
