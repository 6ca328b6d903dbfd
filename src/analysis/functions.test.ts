import { describe, expect, it } from "vitest";
import { buildFixture, run } from "../../test/support/fixtures.js";
import { x86_64 } from "../arch/index.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { listFunctions } from "./functions.js";

describe("listFunctions", () => {
  // gcc -fpatchable-function-entry=16,14 puts 14 NOPs before static_helper, right after crtstuff's
  // frame_dummy, whose symbol has st_size 0.
  const file = buildFixture({
    compiler: "gcc",
    sources: ["sites.c"],
    flags: ["-O2", "-fpatchable-function-entry=16,14"],
    output: "exe",
  });
  const elf = readElfFile(file);

  it("ends an unsized function after its last instruction that is not fill", () => {
    const fns = listFunctions(elf, x86_64);
    const i = fns.findIndex((f) => f.name === "frame_dummy");
    const frameDummy = fns[i]!;
    const next = fns[i + 1]!;
    expect(frameDummy.sizeFromSymbol).toBe(false);
    // objdump: frame_dummy is `endbr64; jmp register_tm_clones`, then alignment and sled NOPs.
    const lines = run("objdump", [
      "-d",
      "-w",
      "--insn-width=16",
      `--start-address=0x${frameDummy.address.toString(16)}`,
      `--stop-address=0x${next.address.toString(16)}`,
      file,
    ])
      .split("\n")
      .filter((l) => /^\s+[0-9a-f]+:\t/.test(l) && !/\t(nop|xchg\s+%ax,%ax|cs nopw|data16)/.test(l));
    const last = lines[lines.length - 1]!;
    const [addr, bytes] = last.split("\t");
    const end = BigInt(`0x${addr!.trim().replace(":", "")}`) + BigInt(bytes!.trim().split(" ").length);
    expect(frameDummy.address + frameDummy.size).toBe(end);
    expect(next.previousEnd).toBe(end);
  });

  it("without an arch, keeps the distance to the next function", () => {
    const fns = listFunctions(elf);
    const i = fns.findIndex((f) => f.name === "frame_dummy");
    expect(fns[i]!.address + fns[i]!.size).toBe(fns[i + 1]!.address);
  });
});
