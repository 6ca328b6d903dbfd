/**
 * `graft check` on AArch64 over a flag matrix: Debian's aarch64-linux-gnu-gcc and clang
 * --target=aarch64-linux-gnu × sled sizes (N,M count 4-byte NOPs) × -mbranch-protection=standard ×
 * -pg × -O0/-O2 × executable, PIE and `.o` (and a shared library). Each file is checked against
 * aarch64-linux-gnu-objdump/readelf: the decoder on every instruction (kind, branch target, NOP,
 * BTI, ADRP pairs, PLT names), the branch sweep, functions, sled records and NOP counts,
 * relocations; then the promises of each flag set on the functions the fixture defines.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { CallTargets } from "../../src/analysis/call-targets.js";
import { type CheckReport, checkElf, type FunctionReport } from "../../src/analysis/check.js";
import { listFunctions } from "../../src/analysis/functions.js";
import { aarch64 } from "../../src/arch/index.js";
import { constantName, R_AARCH64, SHF } from "../../src/formats/elf/constants.js";
import type { Elf } from "../../src/formats/elf/elf.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildFixture, type Compiler, hasCommand, type OutputKind, run } from "../support/fixtures.js";
import { type DisasmLine, Oracle, parseHex, readSymbols } from "./oracles.js";
import { expectPaddingMatches, expectSameFunctions, hexList, type Subject, site } from "./subject.js";

interface FlagSet {
  readonly label: string;
  readonly flags: readonly string[];
  readonly opts: readonly string[];
  readonly outputs?: readonly OutputKind[];
}

const BTI = "-mbranch-protection=standard";
const ALL_OPTS = ["-O0", "-O2"];
const FLAG_SETS: readonly FlagSet[] = [
  { label: "no flags", flags: [], opts: ALL_OPTS },
  { label: "sled 2", flags: ["-fpatchable-function-entry=2"], opts: ALL_OPTS },
  { label: "sled 3,1", flags: ["-fpatchable-function-entry=3,1"], opts: ["-O2"] },
  { label: "sled 5,4", flags: ["-fpatchable-function-entry=5,4"], opts: ["-O2"] },
  { label: "BTI", flags: [BTI], opts: ["-O2"] },
  {
    label: "BTI sled 2",
    flags: [BTI, "-fpatchable-function-entry=2"],
    opts: ["-O2"],
    outputs: ["exe", "pie", "object", "shared"],
  },
  { label: "BTI sled 5,4", flags: [BTI, "-fpatchable-function-entry=5,4"], opts: ["-O0", "-O2"] },
  { label: "-pg", flags: ["-pg"], opts: ALL_OPTS },
  { label: "BTI -pg", flags: [BTI, "-pg"], opts: ["-O2"] },
];
const COMPILERS: readonly Compiler[] = ["gcc", "clang"];

interface Cell {
  readonly name: string;
  readonly compiler: Compiler;
  readonly set: FlagSet;
  readonly opt: string;
  readonly output: OutputKind;
}

const CELLS: Cell[] = FLAG_SETS.flatMap((set) =>
  COMPILERS.flatMap((compiler) =>
    set.opts.flatMap((opt) =>
      (set.outputs ?? (["exe", "pie", "object"] as const)).map((output) => ({
        name: `${compiler} ${opt} ${set.label} ${output}`,
        compiler,
        set,
        opt,
        output,
      })),
    ),
  ),
);

function build(cell: Pick<Cell, "compiler" | "set" | "opt">, output: OutputKind): string {
  return buildFixture({
    compiler: cell.compiler,
    target: "aarch64",
    sources: ["sites.c"],
    flags: [cell.opt, ...cell.set.flags],
    output,
  });
}

function analyse(file: string): Subject {
  const elf = readElfFile(file);
  const report = checkElf(elf, aarch64);
  const oracle = new Oracle(file, (i) => elf.sectionAddress(elf.getSection(i)), elf.isRelocatable);
  return { file, elf, report, oracle };
}

/** The mnemonic objdump prints, with `bti c` → `bti`. */
const mnemonicOf = (text: string): string => text.split(/\s+/)[0] ?? "";

/** The kind graft must give an instruction objdump prints as `text`. */
function expectedKind(text: string): string {
  const m = mnemonicOf(text);
  if (m === "nop") return "nop";
  if (m === "bti") return "endbr";
  if (m === "b") return "jump";
  if (m === "bl") return "call";
  if (/^(b|bc)\.\w+$/.test(m) || /^(cbz|cbnz|tbz|tbnz)$/.test(m)) return "cond-jump";
  if (/^(br|braaz|brabz|braa|brab)$/.test(m)) return "indirect-jump";
  if (/^(blr|blraaz|blrabz|blraa|blrab)$/.test(m)) return "indirect-call";
  if (/^(ret|retaa|retab|eret)$/.test(m)) return "return";
  if (/^(brk|hlt|udf)$/.test(m)) return "trap";
  return "other";
}

/** objdump's printed destination of a branch/ADR/ADRP/LDR-literal (`b 400580 <f>` → 0x400580). */
function printedTarget(text: string): bigint | undefined {
  const m = /\s([0-9a-f]+)(?: <[^>]*>)?$/.exec(text);
  return m === null ? undefined : parseHex(m[1]!);
}

/** Section base in graft's space of the instruction at `address` (0 in linked files). */
function sectionBase(s: Subject, address: bigint): bigint {
  if (!s.elf.isRelocatable) return 0n;
  const sec = s.elf.sections.find((x) => {
    const a = s.elf.sectionAddress(x);
    return (x.sh_flags & BigInt(SHF.SHF_EXECINSTR)) !== 0n && address >= a && address < a + x.sh_size;
  });
  return sec === undefined ? 0n : s.elf.sectionAddress(sec);
}

/**
 * Addresses (graft space) of instructions a `.o` relocates: objdump prints their link-time
 * destination, the bytes hold a placeholder, so their raw targets are not compared.
 */
function relocatedInstructions(s: Subject): Set<bigint> {
  if (!s.elf.isRelocatable) return new Set();
  const out = new Set<bigint>();
  for (const r of s.oracle.relocations()) {
    try {
      out.add(s.oracle.at(r.section.slice(5), r.offset, r.sectionOccurrence));
    } catch {
      // relocations of sections objdump does not name the same way: not code
    }
  }
  return out;
}

function codeLines(s: Subject): DisasmLine[] {
  const lines = s.oracle
    .instructions()
    .filter((l) => !l.text.startsWith(".word") && !l.text.startsWith(".inst"));
  if (lines.length === 0) throw new Error(`${s.file}: objdump shows no instructions (parse error?)`);
  return lines;
}

function bytesAt(elf: Elf, address: bigint): Uint8Array {
  for (const x of elf.sections) {
    if ((x.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n) continue;
    const a = elf.sectionAddress(x);
    if (address >= a && address + 4n <= a + x.sh_size)
      return elf.sectionBytes(x).subarray(Number(address - a));
  }
  throw new Error(`no code at 0x${address.toString(16)}`);
}

/** The functions sites.c defines under these flags: FUNC symbols of its `.o` (readelf). */
function fixtureFunctions(cell: Cell): string[] {
  const names = readSymbols(build(cell, "object"))
    .filter((x) => x.table === ".symtab" && x.type === "FUNC" && x.ndx > 0)
    .map((x) => x.name);
  return [...new Set(names)];
}

function sledShape(flags: readonly string[]): { n: number; m: number } | undefined {
  for (const f of flags) {
    const m = /^-fpatchable-function-entry=(\d+)(?:,(\d+))?$/.exec(f);
    if (m) return { n: Number(m[1]), m: Number(m[2] ?? 0) };
  }
  return undefined;
}

const byName = (r: CheckReport, name: string): FunctionReport | undefined =>
  r.functions.find((f) => f.name === name || f.aliases.includes(name));

const haveTools = hasCommand("aarch64-linux-gnu-gcc") && hasCommand("aarch64-linux-gnu-objdump");

describe.runIf(haveTools).each(CELLS)("graft check on AArch64 sites.c: $name", (cell) => {
  const shape = sledShape(cell.set.flags);
  const bti = cell.set.flags.includes(BTI);
  let s: Subject;
  let fixture: string[];
  beforeAll(() => {
    s = analyse(build(cell, cell.output));
    fixture = fixtureFunctions(cell);
  });

  it("decodes every instruction as objdump does: kind, branch target, NOP, BTI, PC-relative address", () => {
    const diffs: string[] = [];
    const relocated = relocatedInstructions(s);
    for (const l of codeLines(s)) {
      const insn = aarch64.decodeOne(bytesAt(s.elf, l.address), l.address)!;
      const kind = expectedKind(l.text);
      if (insn.kind !== kind)
        diffs.push(`0x${l.address.toString(16)} ${l.text}: ${insn.kind} (${insn.text})`);
      const m = mnemonicOf(l.text);
      const printed = printedTarget(l.text);
      if ((kind === "jump" || kind === "call" || kind === "cond-jump") && !relocated.has(l.address)) {
        const want = sectionBase(s, l.address) + printed!;
        if (insn.target !== want)
          diffs.push(`0x${l.address.toString(16)} ${l.text}: target ${insn.target?.toString(16)}`);
      }
      if (!s.elf.isRelocatable && /^(adr|adrp|ldr|ldrsw|prfm)$/.test(m) && /^\S+\s+[^[]*$/.test(l.text)) {
        // A literal/ADR form (no `[`): graft's memoryAddress is objdump's printed address.
        if (insn.memoryAddress !== printed)
          diffs.push(`0x${l.address.toString(16)} ${l.text}: memory ${insn.memoryAddress?.toString(16)}`);
      }
      if (kind !== "other" && mnemonicOf(insn.text) !== m)
        diffs.push(`0x${l.address.toString(16)} ${l.text}: text ${insn.text}`);
    }
    expect(diffs).toEqual([]);
  });

  it("sweeps exactly the direct branches objdump shows", () => {
    const relocated = relocatedInstructions(s);
    const show = (from: bigint, to: bigint): string =>
      `${from.toString(16)}->${relocated.has(from) ? "link time" : to.toString(16)}`;
    const want: string[] = [];
    for (const l of codeLines(s)) {
      const kind = expectedKind(l.text);
      if (kind === "jump" || kind === "call" || kind === "cond-jump")
        want.push(show(l.address, sectionBase(s, l.address) + printedTarget(l.text)!));
    }
    const got: string[] = [];
    for (const x of s.elf.sections) {
      if ((x.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n || x.sh_type === 8) continue;
      aarch64.scanBranches(s.elf.sectionBytes(x), s.elf.sectionAddress(x), (b) =>
        got.push(show(b.from, b.to)),
      );
    }
    // The sweep also sees words in literal pools objdump prints as data ($d): only compare code.
    const code = new Set(codeLines(s).map((l) => l.address.toString(16)));
    expect(got.filter((g) => code.has(g.split("->")[0]!)).sort()).toEqual(want.sort());
  });

  if (cell.output !== "object") {
    it("completes ADRP pairs (add/ldr with the ADRP's register) to objdump's page + offset", () => {
      let pairs = 0;
      const diffs: string[] = [];
      for (const x of s.elf.sections) {
        if ((x.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n || x.sh_type === 8) continue;
        const lines = codeLines(s).filter((l) => l.address >= x.sh_addr && l.address < x.sh_addr + x.sh_size);
        const decoded = new Map(aarch64.decode(s.elf.sectionBytes(x), x.sh_addr).map((d) => [d.address, d]));
        lines.forEach((l, i) => {
          const adrp = /^adrp\s+(x\d+), ([0-9a-f]+)/.exec(l.text);
          const next = lines[i + 1];
          if (adrp === null || next === undefined || next.address !== l.address + 4n) return;
          const add = /^add\s+x\d+, (x\d+), #(0x[0-9a-f]+)$/.exec(next.text);
          const ldr = /^ldr\s+[xw]\d+, \[(x\d+)(?:, #(\d+))?\]$/.exec(next.text);
          const m = add ?? ldr;
          if (m === null || m[1] !== adrp[1]) return;
          pairs++;
          const want = parseHex(adrp[2]!) + BigInt(m[2] ?? 0);
          const got = decoded.get(next.address)?.memoryAddress;
          if (got !== want) diffs.push(`0x${next.address.toString(16)} ${next.text}: ${got?.toString(16)}`);
        });
      }
      expect(diffs).toEqual([]);
      expect(pairs).toBeGreaterThan(0);
    });

    it("names every `bl` into the PLT as objdump does (name@plt, through the ADRP/LDR slot)", () => {
      const targets = new CallTargets(s.elf, aarch64, listFunctions(s.elf, aarch64));
      const diffs: string[] = [];
      for (const l of codeLines(s)) {
        const m = /^bl\s+[0-9a-f]+ <([^>+]+@plt)>$/.exec(l.text);
        if (m === null) continue;
        const name = targets.nameOf(aarch64.decodeOne(bytesAt(s.elf, l.address), l.address)!);
        if (name !== m[1]) diffs.push(`${l.text}: ${name}`);
      }
      expect(diffs).toEqual([]);
    });
  }

  it("reports exactly the functions readelf lists, and the NOP padding objdump shows before each", () => {
    expectSameFunctions(s);
    expectPaddingMatches(s);
  });

  it("calls an entry a loop head exactly when objdump shows a branch back to it from inside", () => {
    const relocated = relocatedInstructions(s);
    const jumpsTo = new Map<bigint, bigint[]>();
    for (const l of codeLines(s)) {
      const kind = expectedKind(l.text);
      if ((kind !== "jump" && kind !== "cond-jump") || relocated.has(l.address)) continue;
      const to = sectionBase(s, l.address) + printedTarget(l.text)!;
      jumpsTo.set(to, [...(jumpsTo.get(to) ?? []), l.address]);
    }
    let loops = 0;
    for (const f of s.report.functions) {
      const at = f.address + BigInt(f.endbr ? 4 : 0);
      let loop = false;
      for (let t = f.address; t <= at; t += 4n)
        if ((jumpsTo.get(t) ?? []).some((from) => from >= f.address && from < f.address + f.size))
          loop = true;
      const ow = site(f, "overwrite")!;
      if (ow.problems.some((p) => p.includes("byte(s) long after the entry"))) continue;
      if (loop) loops++;
      expect({ fn: f.name, loopHead: ow.problems.some((p) => /loop head/.test(p)) }).toEqual({
        fn: f.name,
        loopHead: loop,
      });
    }
    if (cell.opt === "-O2" && shape === undefined && !cell.set.flags.includes("-pg") && !bti)
      expect(loops, "wait_flag's entry is its loop head at -O2").toBeGreaterThan(0);
  });

  it("reads the same sled records as readelf/objdump and counts the same NOPs around each entry", () => {
    const lines = s.oracle.instructions();
    const entries = new Set(s.report.functions.map((f) => f.address));
    const nopsFrom = (at: bigint, limit: bigint): number => {
      let n = 0;
      for (let i = s.oracle.indexAt(at); i !== undefined && i < lines.length; i++) {
        const l = lines[i]!;
        if (l.address !== at + BigInt(n) || l.address >= limit || l.text !== "nop") break;
        n += 4;
      }
      return n;
    };
    const atBti = (a: bigint): boolean =>
      mnemonicOf(s.oracle.instructions()[s.oracle.indexAt(a) ?? -1]?.text ?? "") === "bti";
    const records = s.oracle.addressTable("__patchable_function_entries");
    const ofFunction = records.filter(
      (r) =>
        entries.has(r) ||
        (entries.has(r - 4n) && atBti(r - 4n)) ||
        [...entries].some((e) => e > r && nopsFrom(r, e) === Number(e - r)),
    );
    const sleds = s.report.functions.flatMap((f) =>
      site(f, "sled") === undefined ? [] : [site(f, "sled")!.address],
    );
    expect(hexList(sleds)).toEqual(hexList(ofFunction));
    for (const f of s.report.functions) {
      const sled = site(f, "sled");
      if (sled === undefined) continue;
      const at = atBti(f.address) ? f.address + 4n : f.address;
      expect({ fn: f.name, before: sled.detail.before, after: sled.detail.after }).toEqual({
        fn: f.name,
        before: sled.address < f.address ? nopsFrom(sled.address, f.address) : 0,
        after: nopsFrom(at, f.address + f.size),
      });
    }
  });

  if (cell.output === "object") {
    it("reads every relocation readelf lists, with AArch64 type names", () => {
      const mine = s.elf
        .relocationSections()
        .flatMap((rs) =>
          rs.entries.map(
            (r) =>
              `${rs.section.name} ${r.r_offset.toString(16)} ${constantName(R_AARCH64, r.type, "R_AARCH64")}`,
          ),
        );
      const theirs = s.oracle.relocations().map((r) => `${r.section} ${r.offset.toString(16)} ${r.type}`);
      expect(mine.sort()).toEqual(theirs.sort());
    });
  }

  if (shape !== undefined) {
    it(`finds the ${shape.n},${shape.m} sled of every fixture function: ${4 * shape.m} bytes before, ${4 * (shape.n - shape.m)} after, redirected by \`b\``, () => {
      for (const name of fixture) {
        const f = byName(s.report, name)!;
        const sled = site(f, "sled")!;
        expect({
          name,
          before: sled.detail.before,
          afterAtLeast: sled.detail.after >= 4 * (shape.n - shape.m),
          best: f.verdict.best,
          landingPad: sled.detail.landingPad,
          literal: (sled.alternatives ?? []).length > 0,
        }).toEqual({
          name,
          before: 4 * shape.m,
          afterAtLeast: true,
          best: "sled",
          landingPad: bti ? "before-sled" : undefined,
          literal: shape.m >= 4,
        });
        expect(f.verdict.redirect[0], name).toMatch(/become `b` to the replacement \(reach ±128 MiB\)/);
        if (shape.m >= 4) expect(f.verdict.redirect.join("\n"), name).toMatch(/ldr x16, #8; br x16; \.quad/);
        if (bti) expect(f.verdict.redirect.join("\n"), name).toMatch(/landing pad at the entry .* stays/);
      }
    });
  } else {
    it("reports no sled anywhere (nothing records one)", () => {
      expect(s.report.functions.filter((f) => site(f, "sled") !== undefined).map((f) => f.name)).toEqual([]);
    });
  }

  if (bti) {
    it("sees the landing pad objdump shows at every fixture entry (`bti c`, or `paciasp` as implicit pad)", () => {
      for (const name of fixture) {
        const f = byName(s.report, name)!;
        const first = mnemonicOf(s.oracle.instructions()[s.oracle.indexAt(f.address)!]!.text);
        expect({ name, pad: /^(bti|paciasp|pacibsp)$/.test(first), endbr: f.endbr }).toEqual({
          name,
          pad: true,
          endbr: first === "bti",
        });
      }
    });
  }

  it("refuses to write over `paciasp` at an entry exactly when the file is marked BTI", () => {
    const marked = /AArch64 feature: BTI/.test(run("aarch64-linux-gnu-readelf", ["-n", s.file]));
    for (const f of s.report.functions) {
      const i = s.oracle.indexAt(f.address);
      if (i === undefined) continue;
      const pac = /^(paciasp|pacibsp)$/.test(mnemonicOf(s.oracle.instructions()[i]!.text));
      const refused = site(f, "overwrite")!.problems.some((p) => p.includes("landing pad of indirect calls"));
      expect({ fn: f.name, refused }).toEqual({ fn: f.name, refused: marked && pac });
    }
  });

  if (cell.set.flags.includes("-pg")) {
    it("finds each `bl _mcount` after the prologue and judges it no entry site", () => {
      const relocCalls = new Set(
        s.oracle
          .relocations()
          .filter((r) => r.symbolName === "_mcount" && r.type === "R_AARCH64_CALL26")
          .map((r) => s.oracle.at(r.section.slice(5), r.offset, r.sectionOccurrence)),
      );
      let found = 0;
      for (const name of fixture) {
        const f = byName(s.report, name)!;
        const fe = site(f, "fentry");
        const lines = s.oracle.instructions();
        const start = s.oracle.indexAt(f.address)!;
        const call = lines
          .slice(start, start + 32)
          .find((l) => /<_mcount(@plt)?>$/.test(l.text) || relocCalls.has(l.address));
        expect({
          name,
          at: fe?.address,
          state: fe?.detail.state,
          usable: fe === undefined ? undefined : fe.problems.length === 0,
        }).toEqual({
          name,
          at: call?.address,
          state: call === undefined ? undefined : "after-prologue",
          usable: call === undefined ? undefined : false,
        });
        if (call !== undefined) found++;
        expect(f.verdict.best).not.toBe("fentry");
      }
      expect(found).toBeGreaterThan(0);
    });
  } else {
    it("reports no fentry site", () => {
      expect(s.report.functions.filter((f) => site(f, "fentry") !== undefined).map((f) => f.name)).toEqual(
        [],
      );
    });
  }
});

describe.runIf(haveTools)("AArch64 sled placed before the landing pad (hand-written layout)", () => {
  it("redirects at the entry NOP and says that indirect calls fault there under BTI either way", () => {
    const file = buildFixture({
      compiler: "gcc",
      target: "aarch64",
      sources: ["aarch64/sled-before-bti.s"],
      output: "object",
    });
    const f = byName(checkElf(readElfFile(file), aarch64), "sled_first")!;
    const sled = site(f, "sled")!;
    expect({
      best: f.verdict.best,
      after: sled.detail.after,
      pad: sled.detail.landingPad,
      endbr: f.endbr,
    }).toEqual({
      best: "sled",
      after: 8,
      pad: "after-sled",
      endbr: false,
    });
    expect(sled.writes).toEqual([{ role: "entry", address: f.address, room: 8 }]);
    expect(f.verdict.redirect.join("\n")).toMatch(/sled comes before the landing pad/);
  });
});
