import { describe, expect, it } from "vitest";
import { buildFixture } from "../../test/support/fixtures.js";
import { hasTool } from "../../test/support/objdump-oracle.js";
import { x86_64 } from "../arch/index.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { ClobberedRegisters } from "./clobbered-registers.js";
import { listFunctions } from "./functions.js";

const ALL = x86_64.callerSavedRegisters;

describe.skipIf(!(hasTool("gcc") && hasTool("clang")))("ClobberedRegisters over calls.c", () => {
  it.each(["gcc", "clang"] as const)(
    "%s -O2: a caller clobbers what its callees do; PLT and pointer calls clobber everything",
    (compiler) => {
      const elf = readElfFile(
        buildFixture({ compiler, sources: ["calls.c"], flags: ["-O2"], output: "pie" }),
      );
      const functions = listFunctions(elf, x86_64);
      const at = (name: string) => functions.find((f) => f.name === name)!.address;
      const own = (name: string) => {
        const f = functions.find((x) => x.name === name)!;
        const bytes = elf.sectionBytes(f.section);
        const from = Number(f.address - elf.sectionAddress(f.section));
        return x86_64.registerWrites(bytes.subarray(from, from + Number(f.size)), f.address);
      };
      const clobbers = new ClobberedRegisters(elf, x86_64, functions);

      // leaf calls nothing: exactly what its own code writes, and never everything.
      expect(own("leaf").callees).toEqual([]);
      expect(clobbers.of(at("leaf"))).toEqual(own("leaf").clobbered);
      expect(clobbers.of(at("leaf")).length).toBeLessThan(ALL.length);
      // use_result calls leaf and helper: its own writes and theirs.
      const union = new Set([
        ...own("use_result").clobbered,
        ...clobbers.of(at("leaf")),
        ...clobbers.of(at("helper")),
      ]);
      expect(clobbers.of(at("use_result"))).toEqual(ALL.filter((r) => union.has(r)));
      // log_value may call puts through the PLT: anything.
      expect(clobbers.of(at("log_value"))).toEqual(ALL);
      expect(clobbers.of(at("main"))).toEqual(ALL);
      // Not a function entry (the middle of one): unknown, so everything.
      expect(clobbers.of(at("leaf") + 1n)).toEqual(ALL);
    },
  );
});
