/**
 * Thousands of damaged copies of real fixtures: cut at every 64th byte, and bytes flipped or fields
 * overwritten with boundary values in the header, the program and section header tables, the symbol
 * tables, the string tables, notes, relocations and the dynamic section (fixed-seed PRNG, so every run
 * tries the same cases). Every lazy accessor must then either return or throw a GraftError whose code
 * is one of the ELF codes — never a TypeError, RangeError or other crash, never a hang.
 */
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { GraftError } from "../../src/core/errors.js";
import { SHT } from "../../src/formats/elf/constants.js";
import { type Elf, parseElf } from "../../src/formats/elf/elf.js";
import { buildFixture, type FixtureSpec } from "../support/fixtures.js";

const CODES = new Set(["ELF_TRUNCATED", "ELF_BAD_MAGIC", "ELF_UNSUPPORTED", "ELF_CORRUPT"]);
const FLIPS_PER_FIXTURE = 2500;
/** A case slower than this counts as a hang (healthy cases take well under 10 ms; the rest is room for GC and load). */
const CASE_BUDGET_MS = 1000;

/** mulberry32: small, fast, and the same sequence on every machine. */
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

/** Every lazy accessor, each on its own so one failing does not hide another. */
const ACCESSORS: readonly [string, (elf: Elf) => unknown][] = [
  ["kind", (e) => e.kind],
  ["symbols", (e) => e.symbols()],
  ["dynamicSymbols", (e) => e.dynamicSymbols()],
  ["relocationSections", (e) => e.relocationSections()],
  ["relrAddresses", (e) => e.relrAddresses()],
  ["notes", (e) => e.notes()],
  ["buildId", (e) => e.buildId()],
  ["usdtProbes", (e) => e.usdtProbes()],
  ["dynamic", (e) => e.dynamic()],
  ["neededLibraries", (e) => e.neededLibraries()],
  ["soname", (e) => e.soname()],
  ["sectionBytes", (e) => e.sections.map((s) => e.sectionBytes(s).length)],
  ["sectionAddress", (e) => e.sections.map((s) => e.sectionAddress(s))],
  ["findBytesAt", (e) => [e.fileOffsetOf(e.header.e_entry), e.findBytesAt(e.header.e_entry, 16)]],
];

interface Tally {
  cases: number;
  parsed: number;
  codes: Record<string, number>;
  failures: string[];
  slowest: number;
}

/** Parse and touch everything; record what came out, and anything that is not a closed-set error. */
function exercise(bytes: Uint8Array, label: string, tally: Tally): void {
  tally.cases++;
  const started = performance.now();
  const outcome = (e: unknown, where: string): void => {
    if (e instanceof GraftError && CODES.has(e.code)) {
      tally.codes[e.code] = (tally.codes[e.code] ?? 0) + 1;
      return;
    }
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (tally.failures.length < 20) tally.failures.push(`${label}: ${where} threw ${what}`);
  };
  let elf: Elf;
  try {
    elf = parseElf(bytes, { file: "mutant", onWarning: () => {} });
  } catch (e) {
    outcome(e, "parseElf");
    return;
  }
  tally.parsed++;
  for (const [name, access] of ACCESSORS) {
    try {
      access(elf);
    } catch (e) {
      outcome(e, name);
    }
  }
  const took = performance.now() - started;
  tally.slowest = Math.max(tally.slowest, took);
  if (took > CASE_BUDGET_MS && tally.failures.length < 20)
    tally.failures.push(`${label}: took ${took.toFixed(0)} ms`);
}

type Width = 2 | 4 | 8;
/** A table's entry size and its fields worth damaging: [name, offset in entry, width]. */
interface Layout {
  readonly stride: number;
  readonly fields: readonly [string, number, Width][];
}

const LAYOUTS: Readonly<Record<string, Layout>> = {
  "ELF header": {
    stride: 64,
    fields: [
      ["e_phoff", 32, 8],
      ["e_shoff", 40, 8],
      ["e_phentsize", 54, 2],
      ["e_phnum", 56, 2],
      ["e_shentsize", 58, 2],
      ["e_shnum", 60, 2],
      ["e_shstrndx", 62, 2],
    ],
  },
  "program headers": {
    stride: 56,
    fields: [
      ["p_type", 0, 4],
      ["p_offset", 8, 8],
      ["p_vaddr", 16, 8],
      ["p_filesz", 32, 8],
    ],
  },
  "section headers": {
    stride: 64,
    fields: [
      ["sh_name", 0, 4],
      ["sh_type", 4, 4],
      ["sh_flags", 8, 8],
      ["sh_addr", 16, 8],
      ["sh_offset", 24, 8],
      ["sh_size", 32, 8],
      ["sh_link", 40, 4],
      ["sh_info", 44, 4],
      ["sh_addralign", 48, 8],
      ["sh_entsize", 56, 8],
    ],
  },
  "symbol table": {
    stride: 24,
    fields: [
      ["st_name", 0, 4],
      ["st_shndx", 6, 2],
      ["st_value", 8, 8],
    ],
  },
  relocations: {
    stride: 24,
    fields: [
      ["r_offset", 0, 8],
      ["r_info.type", 8, 4],
      ["r_info.sym", 12, 4],
    ],
  },
  "dynamic section": {
    stride: 16,
    fields: [
      ["d_tag", 0, 8],
      ["d_val", 8, 8],
    ],
  },
};

/** A region of the file worth damaging: what it holds, where, and its table layout if it has one. */
interface Region {
  readonly name: string;
  readonly start: number;
  readonly length: number;
  readonly layout: Layout | undefined;
}

/** The byte ranges worth damaging, by what they hold, from an intact parse of the original. */
function regions(original: Uint8Array): Region[] {
  const elf = parseElf(original);
  const h = elf.header;
  const region = (kind: string, name: string, start: number, length: number): Region => ({
    name,
    start,
    length,
    layout: LAYOUTS[kind],
  });
  const out: Region[] = [region("ELF header", "ELF header", 0, 64)];
  if (h.e_phnum > 0)
    out.push(region("program headers", "program headers", Number(h.e_phoff), h.e_phnum * 56));
  out.push(region("section headers", "section headers", Number(h.e_shoff), h.e_shnum * 64));
  const kinds: Record<number, string> = {
    [SHT.SHT_SYMTAB]: "symbol table",
    [SHT.SHT_DYNSYM]: "symbol table",
    [SHT.SHT_STRTAB]: "string table",
    [SHT.SHT_NOTE]: "notes",
    [SHT.SHT_RELA]: "relocations",
    [SHT.SHT_DYNAMIC]: "dynamic section",
  };
  for (const s of elf.sections) {
    const kind = kinds[s.sh_type];
    if (kind !== undefined && s.sh_size > 0n) {
      out.push(region(kind, `${kind} ${s.name}`, Number(s.sh_offset), Number(s.sh_size)));
    }
  }
  return out;
}

/** Values at the edges: of the integer widths, of the index ranges (SHN_*), and of this file's size. */
function boundaries(width: Width, fileSize: number): bigint[] {
  const n = BigInt(fileSize);
  const near = [n - 1n, n, n + 1n, n / 2n];
  if (width === 2) return [0n, 1n, 2n, 0xff00n, 0xfff1n, 0xfff2n, 0xffffn];
  if (width === 4)
    return [0n, 1n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0xffffn, 0x10000n, ...near];
  return [
    0n,
    1n,
    (1n << 63n) - 1n,
    1n << 63n,
    (1n << 64n) - 1n,
    (1n << 64n) - 16n,
    1n << 32n,
    1n << 53n,
    ...near,
  ];
}

function write(view: DataView, at: number, width: Width, value: bigint): void {
  if (width === 2) view.setUint16(at, Number(BigInt.asUintN(16, value)), true);
  else if (width === 4) view.setUint32(at, Number(BigInt.asUintN(32, value)), true);
  else view.setBigUint64(at, BigInt.asUintN(64, value), true);
}

/** One random damage: flip bits, set a random byte, or write an edge value over a field or aligned word. */
function mutate(original: Uint8Array, region: Region, random: () => number): [Uint8Array, string] {
  const bytes = original.slice();
  const view = new DataView(bytes.buffer);
  const { name, start, length, layout } = region;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const at = (n: number): number =>
    Math.min(bytes.length - n, start + Math.floor(random() * Math.max(1, length - n + 1)));
  const kind = random();
  if (kind < 0.25) {
    const spots: string[] = [];
    for (let i = 1 + Math.floor(random() * 4); i > 0; i--) {
      const o = at(1);
      const bit = 1 << Math.floor(random() * 8);
      bytes[o]! ^= bit;
      spots.push(`0x${o.toString(16)}^${bit}`);
    }
    return [bytes, `${name}: flip ${spots.join(" ")}`];
  }
  if (kind < 0.4) {
    const o = at(1);
    const v = Math.floor(random() * 256);
    bytes[o] = v;
    return [bytes, `${name}: byte 0x${o.toString(16)} = 0x${v.toString(16)}`];
  }
  if (layout !== undefined && kind < 0.8) {
    const entry = Math.floor(random() * Math.max(1, Math.floor(length / layout.stride)));
    const [field, offset, width] = pick(layout.fields);
    const o = start + entry * layout.stride + offset;
    const v = pick(boundaries(width, bytes.length));
    if (o + width <= bytes.length) write(view, o, width, v);
    return [bytes, `${name}[${entry}].${field} = 0x${v.toString(16)}`];
  }
  const width: Width = random() < 0.6 ? 4 : 8;
  const o = at(width) & ~(width - 1);
  const v = pick(boundaries(width, bytes.length));
  write(view, o, width, v);
  return [bytes, `${name}: u${width * 8} at 0x${o.toString(16)} = 0x${v.toString(16)}`];
}

/** A plain Uint8Array copy: on a Buffer, `slice` would return a view and mutants would pile up. */
function load(spec: FixtureSpec): Uint8Array {
  return new Uint8Array(readFileSync(buildFixture(spec)));
}

const BASES: readonly [string, FixtureSpec, number][] = [
  [
    "a gcc PIE with USDT probes",
    { compiler: "gcc", sources: ["usdt.c"], flags: ["-O2"], output: "pie" },
    0x9e3779b9,
  ],
  [
    "a gcc object with USDT probes",
    { compiler: "gcc", sources: ["usdt.c"], flags: ["-O2"], output: "object" },
    0x85ebca6b,
  ],
  [
    "a clang shared library with -ffunction-sections",
    { compiler: "clang", sources: ["sites.c"], flags: ["-O2", "-ffunction-sections"], output: "shared" },
    0xc2b2ae35,
  ],
];

describe.each(BASES)("damaged copies of %s", (_label, spec, seed) => {
  test("cut at every 64th byte each read fully or throw an ELF error code", () => {
    const original = load(spec);
    const tally: Tally = { cases: 0, parsed: 0, codes: {}, failures: [], slowest: 0 };
    for (let size = 0; size < original.length; size += 64)
      exercise(original.subarray(0, size), `cut at ${size}`, tally);
    expect(tally.failures).toEqual([]);
    expect(tally.cases).toBe(Math.ceil(original.length / 64));
    expect(tally.codes.ELF_TRUNCATED).toBeGreaterThan(0);
  });

  test(`with ${FLIPS_PER_FIXTURE} random damages to their tables each read fully or throw an ELF error code`, () => {
    const original = load(spec);
    const random = prng(seed);
    const targets = regions(original);
    const tally: Tally = { cases: 0, parsed: 0, codes: {}, failures: [], slowest: 0 };
    for (let i = 0; i < FLIPS_PER_FIXTURE; i++) {
      const region = targets[Math.floor(random() * targets.length)]!;
      const [bytes, label] = mutate(original, region, random);
      exercise(bytes, `case ${i} (${label})`, tally);
    }
    expect(tally.failures).toEqual([]);
    // Not vacuous: many mutants still parse, and the damage reaches the structure checks.
    expect(tally.parsed).toBeGreaterThan(FLIPS_PER_FIXTURE / 4);
    expect(tally.codes.ELF_CORRUPT).toBeGreaterThan(0);
    expect(tally.codes.ELF_TRUNCATED).toBeGreaterThan(0);
  });

  test("with each bit of the ELF header flipped, then each section header byte set to 0xff, each read fully or throw an ELF error code", () => {
    const original = load(spec);
    const shoff = Number(parseElf(original).header.e_shoff);
    const tally: Tally = { cases: 0, parsed: 0, codes: {}, failures: [], slowest: 0 };
    for (let bit = 0; bit < 64 * 8; bit++) {
      const bytes = original.slice();
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      exercise(bytes, `header bit ${bit}`, tally);
    }
    for (let o = shoff; o < original.length; o++) {
      const bytes = original.slice();
      bytes[o] = 0xff;
      exercise(bytes, `section header byte 0x${o.toString(16)} = 0xff`, tally);
    }
    expect(tally.failures).toEqual([]);
    expect(Object.keys(tally.codes).sort()).toEqual([
      "ELF_BAD_MAGIC",
      "ELF_CORRUPT",
      "ELF_TRUNCATED",
      "ELF_UNSUPPORTED",
    ]);
  });
});
