/**
 * `graft check` on the builds beyond the sites.c matrix: a shared library, a ThinLTO program (with
 * `.llvm.<hash>` promoted locals), USDT probes and Rust, each compared with readelf/objdump.
 */
import { existsSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, hasCommand, type OutputKind, run } from "../support/fixtures.js";
import { readSymbols, readUsdtNotes } from "./oracles.js";
import { buildRustFixture, hasRustc, RUST_CRATE } from "./rust-fixture.js";
import { analyse, byName, expectAgreesWithBinutils, hexList, insnAt, type Subject, site } from "./subject.js";

const SLED = ["-fpatchable-function-entry=16,14"];

/** FUNC symbols a source defines, read from its own `.o` (the functions a build gets from it). */
function definedFunctions(compiler: Compiler, source: string, flags: readonly string[]): string[] {
  const o = buildFixture({ compiler, sources: [source], flags, output: "object" });
  return [
    ...new Set(
      readSymbols(o)
        .filter((s) => s.table === ".symtab" && s.type === "FUNC" && s.ndx > 0)
        .map((s) => s.name),
    ),
  ];
}

describe.each([
  { compiler: "gcc" as const, flags: ["-O2"] },
  { compiler: "clang" as const, flags: ["-O2"] },
  { compiler: "gcc" as const, flags: ["-O2", ...SLED] },
  { compiler: "clang" as const, flags: ["-O2", ...SLED] },
  { compiler: "gcc" as const, flags: ["-O0", ...SLED] },
])("graft check on a shared library: $compiler $flags", ({ compiler, flags }) => {
  let s: Subject;
  beforeAll(() => {
    s = analyse(buildFixture({ compiler, sources: ["lib.c"], flags, output: "shared" }));
  });

  it("is read as a shared library whose sleds are RELATIVE-relocated", () => {
    expect(s.report.kind).toBe("shared-library");
    if (flags.includes(SLED[0]!)) {
      const table = s.oracle.sections.find((x) => x.name === "__patchable_function_entries")!;
      const relative = s.oracle
        .relocations()
        .filter(
          (r) =>
            r.type === "R_X86_64_RELATIVE" &&
            r.offset >= table.address &&
            r.offset < table.address + table.size,
        );
      expect(relative.length).toBeGreaterThan(0);
    }
  });

  it("agrees with readelf and objdump", () => {
    expectAgreesWithBinutils(s);
  });

  if (flags.includes(SLED[0]!)) {
    it("judges every function of lib.c redirectable through its sled", () => {
      const names = definedFunctions(compiler, "lib.c", ["-fPIC", ...flags]);
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter((n) => byName(s, n)?.verdict.best !== "sled")).toEqual([]);
    });
  }
});

describe.each([
  { compiler: "gcc" as Compiler, flags: ["-O2"] },
  { compiler: "clang" as Compiler, flags: ["-O2"] },
  { compiler: "gcc" as Compiler, flags: ["-O2", "-fpatchable-function-entry=2"] },
])(
  "graft check on a stripped shared library (code no symbol covers): $compiler $flags",
  ({ compiler, flags }) => {
    let s: Subject;
    beforeAll(() => {
      const built = buildFixture({ compiler, sources: ["gap.c"], flags, output: "shared" });
      const stripped = `${built}.stripped`;
      if (!existsSync(stripped)) run("strip", ["--strip-all", "-o", stripped, built]);
      s = analyse(stripped);
    });

    it("reads functions from .dynsym, with long unsymbolized gaps before some entries", () => {
      expect(s.oracle.symbols.some((x) => x.table === ".symtab")).toBe(false);
      const long = s.report.functions.filter(
        (f) => f.address - s.elf.sectionAddress(s.elf.sections.find((x) => x.name === f.section)!) > 256n,
      );
      expect(long.length).toBeGreaterThan(0);
    });

    it("agrees with readelf and objdump, padding after the unsymbolized code included", () => {
      expectAgreesWithBinutils(s);
    });
  },
);

const LTO_SOURCES = ["lto-a.c", "lto-b.c", "lto-main.c"];
const hasLld = hasCommand("ld.lld");

describe.skipIf(!hasLld).each([
  { output: "pie" as OutputKind, flags: [] as string[] },
  { output: "pie" as OutputKind, flags: SLED },
  { output: "exe" as OutputKind, flags: SLED },
])("graft check on a clang ThinLTO build: $output $flags", ({ output, flags }) => {
  let s: Subject;
  beforeAll(() => {
    s = analyse(
      buildFixture({
        compiler: "clang",
        sources: LTO_SOURCES,
        flags: ["-O2", "-flto=thin", "-fuse-ld=lld", ...flags],
        output,
      }),
    );
  });

  it("agrees with readelf and objdump", () => {
    expectAgreesWithBinutils(s);
  });

  it("lists the locals ThinLTO promoted to `<name>.llvm.<hash>` as functions of their own", () => {
    const promoted = s.oracle.functionSymbols().filter((f) => /\.llvm\.\d+$/.test(f.name));
    expect(promoted.length).toBeGreaterThanOrEqual(1);
    for (const p of promoted) expect(byName(s, p.name), p.name).toBeDefined();
  });

  if (flags.length > 0) {
    it("judges every function of the fixture sources redirectable through its sled, promoted locals included", () => {
      const names = new Set(LTO_SOURCES.flatMap((src) => definedFunctions("clang", src, ["-O2", ...flags])));
      const ours = s.report.functions.filter((f) => names.has(f.name.replace(/\.llvm\.\d+$/, "")));
      expect(new Set(ours.map((f) => f.name.replace(/\.llvm\.\d+$/, "")))).toEqual(names);
      expect(ours.filter((f) => f.verdict.best !== "sled").map((f) => f.name)).toEqual([]);
    });
  }
});

describe.each([
  { compiler: "gcc" as Compiler, flags: ["-O2"], output: "pie" as OutputKind },
  { compiler: "gcc" as Compiler, flags: ["-O0"], output: "exe" as OutputKind },
  { compiler: "clang" as Compiler, flags: ["-O2"], output: "pie" as OutputKind },
  { compiler: "clang" as Compiler, flags: ["-O2", ...SLED], output: "exe" as OutputKind },
])("graft check on USDT probes: $compiler $flags $output", ({ compiler, flags, output }) => {
  let s: Subject;
  beforeAll(() => {
    s = analyse(buildFixture({ compiler, sources: ["usdt.c"], flags, output }));
  });

  it("agrees with readelf and objdump", () => {
    expectAgreesWithBinutils(s);
  });

  it("reports exactly the probes readelf -n lists, with their semaphores and arguments", () => {
    const notes = readUsdtNotes(s.file);
    expect(notes.length).toBeGreaterThan(0);
    const got = s.report.usdt.map((u) => ({
      provider: u.provider,
      name: u.name,
      location: u.address,
      semaphore: u.semaphore,
      arguments: u.arguments.map((a) => `${a.signed ? "-" : ""}${a.size}@${a.location}`).join(" "),
    }));
    expect(got).toEqual(notes);
  });

  it("places each probe in the function whose symbol covers it, on the NOP objdump shows", () => {
    const fns = s.oracle.functionSymbols();
    for (const u of s.report.usdt) {
      const holder = fns.find((f) => u.address >= f.address && u.address < f.address + f.size);
      expect({ probe: u.name, fn: u.function }).toEqual({ probe: u.name, fn: holder?.name });
      const insn = insnAt(s, u.address);
      expect({ probe: u.name, nop: u.nopLength }).toEqual({
        probe: u.name,
        nop: insn !== undefined && /^nop/.test(insn.text) ? insn.length : 0,
      });
      expect(byName(s, u.function!)!.usdt.map((x) => x.name)).toContain(u.name);
    }
    expect(s.report.summary.usdtProbes).toBe(s.report.usdt.length);
  });
});

describe.skipIf(!hasRustc())("graft check on Rust binaries", () => {
  const isCrate = (name: string): boolean => name.includes(`${RUST_CRATE.length}${RUST_CRATE}`);

  describe("rustc -O (stable, no patching flags)", () => {
    let s: Subject;
    beforeAll(() => {
      const file = buildRustFixture(["-O"]);
      if (file === undefined) throw new Error("rustc -O failed on test/fixtures/rust-sites.rs");
      s = analyse(file);
    });

    it("agrees with readelf and objdump", () => {
      expectAgreesWithBinutils(s);
    });

    it("finds no sled or fentry site, and judges the crate's functions by hotpatch or overwrite only", () => {
      expect(s.report.summary.sitesFound.sled + s.report.summary.sitesFound.fentry).toBe(0);
      const crate = s.report.functions.filter((f) => isCrate(f.name));
      expect(crate.length).toBeGreaterThanOrEqual(4);
      for (const f of crate) expect([undefined, "hotpatch", "overwrite"], f.name).toContain(f.verdict.best);
      expect(crate.some((f) => f.verdict.redirectable)).toBe(true);
    });
  });

  describe("RUSTC_BOOTSTRAP=1 rustc -O -Z patchable-function-entry=16,14", () => {
    const file = buildRustFixture(["-O", "-Z", "patchable-function-entry=16,14"], true);
    let s: Subject;
    beforeAll(() => {
      if (file !== undefined) s = analyse(file);
    });

    it.skipIf(file === undefined)("agrees with readelf and objdump", () => {
      expectAgreesWithBinutils(s);
    });

    it.skipIf(file === undefined)(
      "judges every function compiled from the crate redirectable through a 14+2 sled",
      () => {
        const crate = s.report.functions.filter((f) => isCrate(f.name));
        expect(crate.length).toBeGreaterThanOrEqual(4);
        for (const f of crate) {
          const sled = site(f, "sled");
          expect({ fn: f.name, best: f.verdict.best, before: sled?.detail.before }).toEqual({
            fn: f.name,
            best: "sled",
            before: 14,
          });
        }
        // The precompiled standard library has none: the sleds are exactly the crate's code.
        const sleds = s.report.functions.filter((f) => site(f, "sled") !== undefined);
        expect(hexList(sleds.map((f) => f.address))).toEqual(
          expect.arrayContaining(hexList(crate.map((f) => f.address))),
        );
      },
    );
  });
});
