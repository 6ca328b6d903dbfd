/**
 * graft's DWARF reader against readelf (the DIE tree, abbreviation codes, attribute values) and
 * llvm-dwarfdump (resolved code ranges, the line-number matrix) on gcc and clang builds of one
 * fixture: DWARF 4 and 5, -O0 and -O2, relocatable objects (relocations applied), PIE and non-PIE.
 * In a `.o`, the oracles print section-relative addresses while graft lays sections out like a
 * linker (Elf.sectionAddress); there each subprogram's low_pc must equal its symbol's address.
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { listFunctions } from "../../src/analysis/functions.js";
import { DW_AT, DW_TAG } from "../../src/formats/dwarf/constants.js";
import { type Dwarf, readDwarf } from "../../src/formats/dwarf/dwarf.js";
import type { Unit } from "../../src/formats/dwarf/unit.js";
import { parseElf } from "../../src/formats/elf/elf.js";
import { buildFixture, type Compiler, type OutputKind } from "../support/fixtures.js";
import { dwarfdumpLines, dwarfdumpRanges, readelfInfo } from "./dwarf-oracles.js";

const TAG_NAMES = new Map<number, string>(Object.entries(DW_TAG).map(([k, v]) => [v, k]));

/** Attributes compared by value, and how readelf's text turns into graft's value. */
const STRINGS = ["DW_AT_name", "DW_AT_producer", "DW_AT_comp_dir", "DW_AT_linkage_name"] as const;
const REFERENCES = [
  "DW_AT_abstract_origin",
  "DW_AT_specification",
  "DW_AT_type",
  "DW_AT_call_origin",
] as const;
const NUMBERS = [
  "DW_AT_decl_line",
  "DW_AT_decl_file",
  "DW_AT_call_line",
  "DW_AT_call_file",
  "DW_AT_inline",
] as const;
const ADDRESSES = ["DW_AT_low_pc", "DW_AT_entry_pc", "DW_AT_call_return_pc"] as const;

function depthOf(unit: Unit, index: number): number {
  let d = 0;
  for (let p = unit.dies().parents[index]!; p >= 0; p = unit.dies().parents[p]!) d++;
  return d;
}

/** Every disagreement between graft and readelf on the DIEs, as lines (empty when they agree). */
function compareWithReadelf(file: string, dwarf: Dwarf, relocatable: boolean): string[] {
  const problems: string[] = [];
  const oracle = readelfInfo(file);
  const compared = { strings: 0, references: 0, numbers: 0, addresses: 0 };
  const units = dwarf.units();
  if (units.length !== oracle.length) problems.push(`units: graft ${units.length}, readelf ${oracle.length}`);
  for (const [k, ou] of oracle.entries()) {
    const unit = units[k];
    if (unit === undefined) break;
    if (unit.offset !== ou.offset || unit.header.version !== ou.version)
      problems.push(
        `unit ${k}: graft @${unit.offset} v${unit.header.version}, readelf @${ou.offset} v${ou.version}`,
      );
    const t = unit.dies();
    if (t.count !== ou.dies.length)
      problems.push(`unit @${ou.offset}: graft ${t.count} DIEs, readelf ${ou.dies.length}`);
    for (let i = 0; i < Math.min(t.count, ou.dies.length) && problems.length < 30; i++) {
      const od = ou.dies[i]!;
      const where = `DIE <0x${od.offset.toString(16)}>`;
      const abbrev = t.abbrevs[i]!;
      if (t.offsets[i] !== od.offset || abbrev.code !== od.abbrev || depthOf(unit, i) !== od.depth) {
        problems.push(
          `${where}: graft offset 0x${t.offsets[i]!.toString(16)} abbrev ${abbrev.code} depth ${depthOf(unit, i)}, readelf abbrev ${od.abbrev} depth ${od.depth}`,
        );
        continue;
      }
      const tag = TAG_NAMES.get(abbrev.tag);
      if (tag !== undefined && tag !== od.tag) problems.push(`${where}: graft ${tag}, readelf ${od.tag}`);
      if (abbrev.attributes.length !== od.attributeCount)
        problems.push(`${where}: graft ${abbrev.attributes.length} attributes, readelf ${od.attributeCount}`);
      const attrs = unit.attributes(i);
      const mine = (name: string) => attrs.find((a) => a.at === DW_AT[name as keyof typeof DW_AT]);
      for (const name of STRINGS) {
        const o = od.attributes.get(name);
        const m = mine(name);
        if (o === undefined) continue;
        compared.strings++;
        if (m?.class !== "string" || m.value !== o)
          problems.push(`${where} ${name}: graft ${JSON.stringify(m?.value)}, readelf ${JSON.stringify(o)}`);
      }
      for (const name of REFERENCES) {
        const o = od.attributes.get(name);
        const m = mine(name);
        if (o === undefined) continue;
        // readelf prints ref1/2/4/udata as the absolute "<0x…>", ref8 as the unit-relative "0x…".
        const ref = /^<0x([0-9a-f]+)>/.exec(o);
        const ref8 = /^0x([0-9a-f]+)/.exec(o);
        if (ref === null && ref8 === null) continue; // signature references print differently
        compared.references++;
        const target = ref !== null ? BigInt(`0x${ref[1]}`) : BigInt(ou.offset) + BigInt(`0x${ref8![1]}`);
        if (m?.class !== "reference" || m.value !== target)
          problems.push(`${where} ${name}: graft ${m?.value}, readelf ${o}`);
      }
      for (const name of NUMBERS) {
        const o = od.attributes.get(name);
        const m = mine(name);
        if (o === undefined) continue;
        compared.numbers++;
        if (m?.class !== "constant" || m.value !== BigInt(o.split(/\s/)[0]!))
          problems.push(`${where} ${name}: graft ${m?.value}, readelf ${o}`);
      }
      if (relocatable) continue;
      for (const name of ADDRESSES) {
        const o = od.attributes.get(name);
        const m = mine(name);
        if (o === undefined || !/^0x[0-9a-f]+$/.test(o)) continue;
        compared.addresses++;
        if (m?.class !== "address" || m.value !== BigInt(o))
          problems.push(`${where} ${name}: graft ${m?.value}, readelf ${o}`);
      }
    }
  }
  for (const [kind, n] of Object.entries(compared))
    if (n === 0 && !(relocatable && kind === "addresses")) problems.push(`no ${kind} were compared`);
  return problems;
}

/** Code ranges of every DIE against llvm-dwarfdump's (linked files: the oracle resolves addresses). */
function compareRanges(file: string, dwarf: Dwarf): string[] {
  const problems: string[] = [];
  const oracle = dwarfdumpRanges(file);
  let compared = 0;
  for (const unit of dwarf.units()) {
    const t = unit.dies();
    for (let i = 0; i < t.count; i++) {
      const expected = oracle.get(t.offsets[i]!);
      const got = unit.ranges(i);
      if (expected === undefined) {
        if (got.length > 0)
          problems.push(`DIE 0x${t.offsets[i]!.toString(16)}: graft has ranges, llvm-dwarfdump none`);
        continue;
      }
      compared++;
      const show = (rs: readonly { low: bigint; high: bigint }[]) =>
        rs.map((r) => `[${r.low.toString(16)},${r.high.toString(16)})`).join(" ");
      if (show(got) !== show(expected))
        problems.push(
          `DIE 0x${t.offsets[i]!.toString(16)}: graft ${show(got)}, llvm-dwarfdump ${show(expected)}`,
        );
    }
  }
  if (compared === 0) problems.push("no DIE with code ranges was compared");
  return problems;
}

/** The line matrix of every unit against llvm-dwarfdump's (addresses only when linked). */
function compareLines(file: string, dwarf: Dwarf, relocatable: boolean): string[] {
  const problems: string[] = [];
  const oracle = dwarfdumpLines(file);
  let rows = 0;
  for (const unit of dwarf.units()) {
    const table = dwarf.lineTable(unit);
    if (table === undefined) continue;
    const expected = oracle.get(table.offset);
    if (expected === undefined) {
      problems.push(`line table 0x${table.offset.toString(16)}: not in llvm-dwarfdump`);
      continue;
    }
    if (table.rows.length !== expected.length)
      problems.push(
        `line table 0x${table.offset.toString(16)}: graft ${table.rows.length} rows, llvm-dwarfdump ${expected.length}`,
      );
    for (let i = 0; i < Math.min(table.rows.length, expected.length) && problems.length < 20; i++) {
      const g = table.rows[i]!;
      const e = expected[i]!;
      rows++;
      const same =
        g.line === e.line &&
        g.column === e.column &&
        g.file === e.file &&
        g.isStmt === e.isStmt &&
        g.endSequence === e.endSequence &&
        (relocatable || g.address === e.address);
      if (!same)
        problems.push(
          `row ${i}: graft ${JSON.stringify({ ...g, address: g.address.toString(16) })}, llvm-dwarfdump ${JSON.stringify({ ...e, address: e.address.toString(16) })}`,
        );
    }
  }
  if (rows === 0) problems.push("no line rows were compared");
  return problems;
}

/** The function model holds every subprogram, inlined copy and call site readelf lists, each inlined copy under its parent. */
function compareFunctionModel(file: string, dwarf: Dwarf): string[] {
  const problems: string[] = [];
  const oracle = readelfInfo(file);
  for (const [k, ou] of oracle.entries()) {
    const unit = dwarf.units()[k]!;
    const count = (tags: readonly string[]) => ou.dies.filter((d) => tags.includes(d.tag)).length;
    const model = dwarf.unitFunctions(unit).subprograms;
    type Tree = { inlined: readonly Tree[]; callSites: readonly unknown[]; offset: number };
    let inlined = 0;
    let calls = 0;
    const walk = (t: Tree, parent: number): void => {
      calls += t.callSites.length;
      for (const x of t.inlined) {
        inlined++;
        // readelf's depth says which DIE encloses it; the model's parent must be an ancestor.
        const die = ou.dies.findIndex((d) => d.offset === x.offset);
        const up = ou.dies
          .slice(0, die)
          .reverse()
          .find(
            (d) =>
              d.depth < ou.dies[die]!.depth &&
              (d.tag === "DW_TAG_subprogram" || d.tag === "DW_TAG_inlined_subroutine"),
          );
        if (up?.offset !== parent)
          problems.push(
            `inlined 0x${x.offset.toString(16)}: model parent 0x${parent.toString(16)}, readelf 0x${up?.offset.toString(16)}`,
          );
        walk(x, x.offset);
      }
    };
    for (const s of model) walk(s, s.offset);
    const expect = {
      subprograms: count(["DW_TAG_subprogram"]),
      inlined: count(["DW_TAG_inlined_subroutine"]),
      calls: count(["DW_TAG_call_site", "DW_TAG_GNU_call_site"]),
    };
    const got = { subprograms: model.length, inlined, calls };
    if (JSON.stringify(got) !== JSON.stringify(expect))
      problems.push(`unit @${ou.offset}: model ${JSON.stringify(got)}, readelf ${JSON.stringify(expect)}`);
  }
  return problems;
}

/** In a `.o`: each concrete subprogram starts at its symbol (relocations were applied). */
function compareObjectAddresses(bytes: Uint8Array, dwarf: Dwarf): string[] {
  const elf = parseElf(bytes);
  const byName = new Map(
    listFunctions(elf).flatMap((f) => [f.name, ...f.aliases].map((n) => [n, f.address] as const)),
  );
  const problems: string[] = [];
  let checked = 0;
  for (const unit of dwarf.units())
    for (const s of dwarf.unitFunctions(unit).subprograms) {
      if (s.ranges.length === 0) continue;
      const name = dwarf.functionName(s.offset).name;
      const at = name === undefined ? undefined : byName.get(name);
      if (at === undefined) continue;
      checked++;
      const low = s.ranges.reduce((m, r) => (r.low < m ? r.low : m), s.ranges[0]!.low);
      if (!s.ranges.some((r) => r.low === at))
        problems.push(`${name}: symbol at 0x${at.toString(16)}, DWARF ranges start at 0x${low.toString(16)}`);
    }
  if (checked === 0) problems.push("no subprogram matched a symbol");
  return problems;
}

const CELLS: [Compiler, 4 | 5, "-O0" | "-O2", OutputKind][] = [];
for (const compiler of ["gcc", "clang"] as const)
  for (const version of [4, 5] as const)
    for (const opt of ["-O0", "-O2"] as const)
      for (const output of ["object", "pie", "exe"] as const) CELLS.push([compiler, version, opt, output]);

describe.each(CELLS)("%s -gdwarf-%s %s (%s)", (compiler, version, opt, output) => {
  const file = buildFixture({
    compiler,
    sources: ["impact.c"],
    flags: [`-gdwarf-${version}`, opt, "-fexceptions"],
    output,
  });
  const bytes = new Uint8Array(readFileSync(file));
  const relocatable = output === "object";
  const dwarf = readDwarf(parseElf(bytes, { file }))!;

  test("has the DIE tree, abbreviation codes and attribute values readelf prints", () => {
    expect(dwarf.units().every((u) => u.header.version === version)).toBe(true);
    expect(compareWithReadelf(file, dwarf, relocatable)).toEqual([]);
  });

  test("models every subprogram, inlined copy (in its tree) and call site readelf lists", () => {
    expect(compareFunctionModel(file, dwarf)).toEqual([]);
  });

  test("has the line-number rows llvm-dwarfdump decodes", () => {
    expect(compareLines(file, dwarf, relocatable)).toEqual([]);
  });

  test(
    relocatable
      ? "puts each subprogram at its symbol's address (relocations applied)"
      : "has the code ranges llvm-dwarfdump resolves",
    () => {
      expect(relocatable ? compareObjectAddresses(bytes, dwarf) : compareRanges(file, dwarf)).toEqual([]);
    },
  );
});

describe.each([
  ["gcc", ["-gdwarf-5", "-gdwarf64", "-O2"]],
  ["gcc", ["-gdwarf-3", "-O2"]],
  ["gcc", ["-gdwarf-2", "-O0"]],
  ["clang", ["-gdwarf-4", "-O2", "-ffunction-sections"]],
] as const)("%s %s", (compiler, flags) => {
  const file = buildFixture({
    compiler,
    sources: ["impact.c"],
    flags: [...flags, "-fexceptions"],
    output: "pie",
  });
  const dwarf = readDwarf(parseElf(new Uint8Array(readFileSync(file)), { file }))!;

  test("reads as readelf and llvm-dwarfdump do", () => {
    if ((flags as readonly string[]).includes("-gdwarf64"))
      expect(dwarf.units()[0]!.header.offsetSize).toBe(8);
    expect(compareWithReadelf(file, dwarf, false)).toEqual([]);
    expect(compareLines(file, dwarf, false)).toEqual([]);
    expect(compareRanges(file, dwarf)).toEqual([]);
  });
});

describe("variants", () => {
  test("zlib-compressed debug sections (-gz) read the same as plain ones", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-gdwarf-5", "-O2", "-gz=zlib"],
      output: "pie",
    });
    const elf = parseElf(new Uint8Array(readFileSync(file)), { file });
    expect(elf.findSection(".debug_info")!.sh_flags & 0x800n).toBe(0x800n); // SHF_COMPRESSED
    const dwarf = readDwarf(elf)!;
    expect(compareWithReadelf(file, dwarf, false)).toEqual([]);
    expect(compareLines(file, dwarf, false)).toEqual([]);
  });

  test("a split-DWARF build (-gsplit-dwarf) is a skeleton unit naming its .dwo", () => {
    const file = buildFixture({
      compiler: "gcc",
      sources: ["impact.c"],
      flags: ["-gdwarf-5", "-O2", "-gsplit-dwarf"],
      output: "pie",
    });
    const dwarf = readDwarf(parseElf(new Uint8Array(readFileSync(file)), { file }))!;
    const [unit] = dwarf.units();
    expect(unit!.isSkeleton).toBe(true);
    expect(dwarf.compileUnit(unit!).dwoName).toMatch(/\.dwo$/);
    // A skeleton has one DIE: no references, line numbers or addresses to compare.
    expect(compareWithReadelf(file, dwarf, false).filter((p) => !p.endsWith("were compared"))).toEqual([]);
  });
});

/** glibc's separate debug file (libc6-dbg): 2000+ units, zlib-compressed, DWARF 5 from gcc and gas. */
function libcDebugFile(): string | undefined {
  const libc = "/lib/x86_64-linux-gnu/libc.so.6";
  if (!existsSync(libc)) return undefined;
  const id = parseElf(new Uint8Array(readFileSync(libc))).buildId();
  const path =
    id === undefined ? undefined : `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
  return path !== undefined && existsSync(path) ? path : undefined;
}

describe("a large real debug file", () => {
  const file = libcDebugFile();
  test.skipIf(file === undefined)("libc's units and unit DIEs are the ones readelf prints", () => {
    const dwarf = readDwarf(parseElf(new Uint8Array(readFileSync(file!)), { file: file! }))!;
    const oracle = readelfInfo(file!, 1);
    const units = dwarf.units();
    expect(units.length).toBe(oracle.length);
    expect(units.length).toBeGreaterThan(1000);
    const problems: string[] = [];
    for (const [k, ou] of oracle.entries()) {
      const unit = units[k]!;
      const cu = dwarf.compileUnit(unit);
      const od = ou.dies[0]!;
      if (
        unit.offset !== ou.offset ||
        unit.header.version !== ou.version ||
        unit.dies().abbrevs[0]!.code !== od.abbrev
      )
        problems.push(
          `unit ${k}: graft @${unit.offset} v${unit.header.version}, readelf @${ou.offset} v${ou.version}`,
        );
      for (const [name, value] of [
        ["DW_AT_name", cu.name],
        ["DW_AT_producer", cu.producer],
        ["DW_AT_comp_dir", cu.compDir],
      ] as const)
        if (od.attributes.get(name) !== value)
          problems.push(`unit @${ou.offset} ${name}: graft ${value}, readelf ${od.attributes.get(name)}`);
      if (problems.length > 20) break;
    }
    expect(problems).toEqual([]);
  });
});
