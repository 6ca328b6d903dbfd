/**
 * Damaged DWARF: real gcc and clang fixtures with bits flipped, bytes set and fields overwritten with
 * boundary values inside their debug sections (and the `.o`'s debug relocations), and each debug
 * section cut short through its section header (fixed-seed PRNG: every run tries the same cases).
 * Reading everything — units, DIEs, every attribute, ranges, line tables, the function model and
 * the impact map built on it — must return or throw a GraftError with a DWARF_* (or ELF_*) code:
 * never a TypeError, RangeError or other crash, never a hang.
 */
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { ImpactGraph } from "../../src/analysis/impact.js";
import { GraftError } from "../../src/core/errors.js";
import { readDwarf } from "../../src/formats/dwarf/dwarf.js";
import { parseElf } from "../../src/formats/elf/elf.js";
import { buildFixture, type FixtureSpec } from "../support/fixtures.js";

const MUTANTS_PER_FIXTURE = 250;
/** A case slower than this counts as a hang (healthy ones take a few ms). */
const CASE_BUDGET_MS = 2000;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Tally {
  cases: number;
  codes: Record<string, number>;
  failures: string[];
}

/** Read everything the DWARF reader offers; count outcomes. */
function exercise(bytes: Uint8Array, label: string, tally: Tally): void {
  tally.cases++;
  const started = performance.now();
  const record = (e: unknown, where: string): void => {
    if (e instanceof GraftError && /^(DWARF|ELF)_/.test(e.code)) {
      tally.codes[e.code] = (tally.codes[e.code] ?? 0) + 1;
      return;
    }
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (tally.failures.length < 20) tally.failures.push(`${label}: ${where} threw ${what}`);
  };
  const step = (where: string, f: () => void): void => {
    try {
      f();
    } catch (e) {
      record(e, where);
    }
  };
  step("read", () => {
    const elf = parseElf(bytes, { file: "mutant", onWarning: () => {} });
    const dwarf = readDwarf(elf, { onWarning: () => {} });
    if (dwarf === undefined) return;
    for (const unit of dwarf.units()) {
      step("dies", () => {
        const t = unit.dies();
        for (let i = 0; i < t.count; i++) {
          step("attributes", () => unit.attributes(i));
          step("ranges", () => unit.ranges(i));
        }
      });
      step("compileUnit", () => dwarf.compileUnit(unit));
      step("lineTable", () => dwarf.lineTable(unit));
      step("unitFunctions", () => {
        for (const s of dwarf.unitFunctions(unit).subprograms) {
          dwarf.functionName(s.offset);
          dwarf.originOf(s.offset);
        }
      });
    }
    step("impactMap", () => new ImpactGraph(elf, dwarf).impactMap());
  });
  const took = performance.now() - started;
  if (took > CASE_BUDGET_MS && tally.failures.length < 20)
    tally.failures.push(`${label}: took ${took.toFixed(0)} ms`);
}

const DEBUG = /^\.(rela\.)?debug_/;

/** One random damage inside one debug section (or its relocations). */
function mutate(original: Uint8Array, random: () => number): [Uint8Array, string] {
  const elf = parseElf(original);
  const targets = elf.sections.filter((s) => DEBUG.test(s.name) && s.sh_size > 0n);
  const s = targets[Math.floor(random() * targets.length)]!;
  const bytes = original.slice();
  const view = new DataView(bytes.buffer);
  const start = Number(s.sh_offset);
  const size = Number(s.sh_size);
  const at = (n: number): number => start + Math.floor(random() * Math.max(1, size - n + 1));
  const kind = random();
  if (kind < 0.4) {
    const o = at(1);
    const bit = 1 << Math.floor(random() * 8);
    bytes[o]! ^= bit;
    return [bytes, `${s.name}: flip 0x${o.toString(16)}^${bit}`];
  }
  if (kind < 0.6) {
    const o = at(1);
    bytes[o] = Math.floor(random() * 256);
    return [bytes, `${s.name}: byte 0x${o.toString(16)} = 0x${bytes[o]!.toString(16)}`];
  }
  const edges = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xfffffff0, 0xffffffff, size, size + 1];
  const v = edges[Math.floor(random() * edges.length)]!;
  if (size >= 4) {
    const o = at(4);
    view.setUint32(o, v >>> 0, true);
    return [bytes, `${s.name}: u32 at 0x${o.toString(16)} = 0x${(v >>> 0).toString(16)}`];
  }
  return [bytes, `${s.name}: unchanged`];
}

/** Every debug section cut to a few sizes through its sh_size field. */
function cuts(original: Uint8Array): [Uint8Array, string][] {
  const elf = parseElf(original);
  const out: [Uint8Array, string][] = [];
  for (const s of elf.sections) {
    if (!DEBUG.test(s.name) || s.sh_size === 0n) continue;
    const size = Number(s.sh_size);
    for (const keep of [0, 1, 4, 11, Math.floor(size / 3), Math.floor(size / 2), size - 1]) {
      if (keep < 0 || keep >= size) continue;
      const bytes = original.slice();
      new DataView(bytes.buffer).setBigUint64(
        Number(elf.header.e_shoff) + s.index * 64 + 32,
        BigInt(keep),
        true,
      );
      out.push([bytes, `${s.name} cut to ${keep} of ${size} bytes`]);
    }
  }
  return out;
}

const BASES: readonly [string, FixtureSpec, number][] = [
  [
    "a gcc DWARF 5 object",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-gdwarf-5", "-O2", "-fexceptions"], output: "object" },
    0x1234567,
  ],
  [
    "a clang DWARF 5 PIE",
    { compiler: "clang", sources: ["impact.c"], flags: ["-gdwarf-5", "-O2", "-fexceptions"], output: "pie" },
    0x2345678,
  ],
  [
    "a gcc DWARF 4 executable",
    { compiler: "gcc", sources: ["impact.c"], flags: ["-gdwarf-4", "-O2", "-fexceptions"], output: "exe" },
    0x3456789,
  ],
];

describe.each(BASES)("damaged DWARF of %s", (_label, spec, seed) => {
  const original = new Uint8Array(readFileSync(buildFixture(spec)));

  test("every debug section cut short reads fully or throws a DWARF error code", () => {
    const tally: Tally = { cases: 0, codes: {}, failures: [] };
    for (const [bytes, label] of cuts(original)) exercise(bytes, label, tally);
    expect(tally.failures).toEqual([]);
    expect(tally.codes.DWARF_TRUNCATED).toBeGreaterThan(0);
  });

  test(`${MUTANTS_PER_FIXTURE} random damages to the debug sections each read fully or throw a DWARF error code`, () => {
    const random = prng(seed);
    const tally: Tally = { cases: 0, codes: {}, failures: [] };
    for (let i = 0; i < MUTANTS_PER_FIXTURE; i++) {
      const [bytes, label] = mutate(original, random);
      exercise(bytes, `case ${i} (${label})`, tally);
    }
    expect(tally.failures).toEqual([]);
    // Not vacuous: the damage reaches the structure checks.
    expect(tally.codes.DWARF_CORRUPT).toBeGreaterThan(0);
    expect(tally.codes.DWARF_TRUNCATED).toBeGreaterThan(0);
  });
});
