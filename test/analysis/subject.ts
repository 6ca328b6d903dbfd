/**
 * One file under test: graft's report on it next to binutils' view of it, plus the checks that hold
 * for every file whatever its flags (graft vs readelf/objdump). Used by the check matrix tests.
 */
import { expect } from "vitest";
import { type CheckReport, checkElf, type FunctionReport } from "../../src/analysis/check.js";
import type { RedirectSite } from "../../src/analysis/site-types.js";
import { x86_64 } from "../../src/arch/index.js";
import type { Elf } from "../../src/formats/elf/elf.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { type DisasmLine, isNopText, Oracle, parseHex } from "./oracles.js";

export interface Subject {
  readonly file: string;
  readonly elf: Elf;
  readonly report: CheckReport;
  readonly oracle: Oracle;
}

export function analyse(file: string): Subject {
  const elf = readElfFile(file);
  const report = checkElf(elf, x86_64);
  const oracle = new Oracle(file, (i) => elf.sectionAddress(elf.getSection(i)), elf.isRelocatable);
  return { file, elf, report, oracle };
}

export function hexList(xs: Iterable<bigint>): string[] {
  return [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((x) => `0x${x.toString(16)}`);
}

export function site<K extends RedirectSite["kind"]>(
  f: FunctionReport,
  kind: K,
): (RedirectSite & { detail: { kind: K } }) | undefined {
  return f.sites.find((s) => s.kind === kind) as (RedirectSite & { detail: { kind: K } }) | undefined;
}

export function byName(s: Subject, name: string): FunctionReport | undefined {
  return s.report.functions.find((f) => f.name === name || f.aliases.includes(name));
}

/** objdump's instruction at `address` (undefined when its sweep has no instruction starting there). */
export function insnAt(s: Subject, address: bigint): DisasmLine | undefined {
  const i = s.oracle.indexAt(address);
  return i === undefined ? undefined : s.oracle.instructions()[i];
}

/** Where a redirect is written per objdump: the entry, or just after an `endbr64` there. */
export function redirectPoint(s: Subject, f: FunctionReport): bigint {
  const first = insnAt(s, f.address);
  return first?.text === "endbr64" ? f.address + 4n : f.address;
}

/** Bytes of consecutive NOP instructions objdump shows from `address`, up to `limit`. */
export function nopBytesFrom(s: Subject, address: bigint, limit: bigint): number {
  const lines = s.oracle.instructions();
  let i = s.oracle.indexAt(address);
  let n = 0;
  while (i !== undefined && i < lines.length) {
    const l = lines[i]!;
    if (l.address !== address + BigInt(n) || l.address >= limit || !isNopText(l.text)) break;
    n += l.length;
    i++;
  }
  return n;
}

const BRANCH_RE =
  /^(?:(?:bnd|notrack)\s+)?(j[a-z]+|call|loop[a-z]*|jrcxz|jecxz|xbegin)\s+([0-9a-f]+)(?:\s+<|$)/;

/** Direct branches objdump shows: from, to (graft space; in a `.o` intra-section only), mnemonic. */
export function branches(s: Subject): { from: bigint; to: bigint; mnemonic: string }[] {
  const out: { from: bigint; to: bigint; mnemonic: string }[] = [];
  for (const l of s.oracle.instructions()) {
    const m = BRANCH_RE.exec(l.text);
    if (!m) continue;
    // objdump prints the raw target; in a .o that is an offset in the instruction's own section.
    const raw = parseHex(m[2]!);
    const base = s.oracle.relocatable ? l.address - sectionOffsetOf(s, l.address) : 0n;
    out.push({ from: l.address, to: base + raw, mnemonic: m[1]! });
  }
  return out;
}

function sectionOffsetOf(s: Subject, address: bigint): bigint {
  if (!s.oracle.relocatable) return address;
  const sec = s.elf.sections.find((x) => {
    const a = s.elf.sectionAddress(x);
    return x.sh_size > 0n && address >= a && address < a + x.sh_size && (x.sh_flags & 4n) !== 0n;
  });
  return sec === undefined ? 0n : address - s.elf.sectionAddress(sec);
}

/**
 * The checks that hold for any file: graft's functions, sleds, fentry calls, NOP counts, first
 * instructions, padding, loop heads and relocatability agree with readelf and objdump.
 */
export function expectAgreesWithBinutils(s: Subject): void {
  expectSameFunctions(s);
  expectSameSleds(s);
  expectSledNopsMatchDisassembly(s);
  expectSameFentryCalls(s);
  expectFirstInstructionsMatch(s);
  expectPaddingMatches(s);
  expectLoopHeadsMatch(s);
  expectOverwriteRelocatability(s);
}

/** graft's functions (aliases merged) are exactly the FUNC symbols readelf lists. */
export function expectSameFunctions(s: Subject): void {
  const want = new Map<bigint, Set<string>>();
  for (const f of s.oracle.functionSymbols()) {
    const names = want.get(f.address) ?? new Set<string>();
    names.add(f.name);
    want.set(f.address, names);
  }
  expect(hexList(s.report.functions.map((f) => f.address)), "function addresses").toEqual(
    hexList(want.keys()),
  );
  for (const f of s.report.functions) {
    expect(new Set([f.name, ...f.aliases]), `names at 0x${f.address.toString(16)}`).toEqual(
      want.get(f.address),
    );
  }
}

/**
 * The sleds graft reports are exactly the records in __patchable_function_entries that lead to a
 * function symbol: the record is its entry (or just after its endbr64), or only NOPs (objdump) lie
 * between the record and the entry. Any other record (a stripped local function) is a warning.
 */
export function expectSameSleds(s: Subject): void {
  const records = s.oracle.addressTable("__patchable_function_entries");
  const entries = new Set(s.report.functions.map((f) => f.address));
  const atFunction = (r: bigint): boolean => {
    if (entries.has(r) || (entries.has(r - 4n) && insnAt(s, r - 4n)?.text === "endbr64")) return true;
    const lines = s.oracle.instructions();
    for (let i = s.oracle.indexAt(r); i !== undefined && i < lines.length; i++) {
      const l = lines[i]!;
      if (entries.has(l.address)) return true;
      if (!isNopText(l.text)) return false;
    }
    return false;
  };
  const sleds = s.report.functions.flatMap((f) =>
    f.sites.filter((x) => x.kind === "sled").map((x) => x.address),
  );
  expect(hexList(sleds), "sled records").toEqual(hexList(records.filter(atFunction)));
  const orphans = records.filter((r) => !atFunction(r));
  expect(
    s.report.warnings.filter((w) => w.includes("__patchable_function_entries")),
    "warnings",
  ).toEqual(
    orphans.map((r) => `__patchable_function_entries entry 0x${r.toString(16)} belongs to no function`),
  );
}

/** Each sled's NOP bytes before and after the entry are the NOP instructions objdump shows there. */
export function expectSledNopsMatchDisassembly(s: Subject): void {
  for (const f of s.report.functions) {
    const sled = site(f, "sled");
    if (sled === undefined) continue;
    const at = redirectPoint(s, f);
    const before = sled.address < f.address ? nopBytesFrom(s, sled.address, f.address) : 0;
    expect({
      fn: f.name,
      before: sled.detail.before,
      after: sled.detail.after,
      verified: sled.detail.verified,
    }).toEqual({
      fn: f.name,
      before,
      after: nopBytesFrom(s, at, f.address + f.size),
      verified: sled.address >= f.address || before === Number(f.address - sled.address),
    });
  }
}

const FENTRY_RE = /<\*?(__fentry__|mcount|_mcount)(@[^>]*)?>/;

/**
 * fentry sites: a call to __fentry__/mcount at the redirect point per objdump (linked files) or per
 * the relocation on the call (`.o`), and `recorded` exactly for the addresses in __mcount_loc.
 */
export function expectSameFentryCalls(s: Subject): void {
  const calls = new Set<bigint>();
  const relocTargets = new Map<bigint, string>();
  if (s.oracle.relocatable) {
    for (const r of s.oracle.relocations()) {
      if (!r.section.startsWith(".rela") || r.symbolName === undefined) continue;
      try {
        relocTargets.set(s.oracle.at(r.section.slice(5), r.offset, r.sectionOccurrence), r.symbolName);
      } catch {
        // relocations against non-code sections named differently: not calls
      }
    }
  }
  for (const f of s.report.functions) {
    const at = redirectPoint(s, f);
    const insn = insnAt(s, at);
    if (insn === undefined || !insn.text.startsWith("call")) continue;
    const callee = s.oracle.relocatable
      ? relocTargets.get(at + BigInt(insn.length) - 4n)
      : FENTRY_RE.exec(insn.text)?.[1];
    if (callee !== undefined && /^(__fentry__|mcount|_mcount)$/.test(callee)) calls.add(f.address);
  }
  const graftCalls = s.report.functions
    .filter((f) => site(f, "fentry")?.detail.state === "call")
    .map((f) => f.address);
  expect(hexList(graftCalls), "functions whose entry calls __fentry__").toEqual(hexList(calls));

  const mcountLoc = s.oracle.addressTable("__mcount_loc");
  const recorded = s.report.functions.flatMap((f) => {
    const fe = site(f, "fentry");
    return fe?.detail.recorded ? [fe.address] : [];
  });
  expect(hexList(recorded), "__mcount_loc records").toEqual(hexList(mcountLoc));
  for (const f of s.report.functions) {
    const fe = site(f, "fentry");
    if (fe?.detail.state !== "nop") continue;
    const insn = insnAt(s, fe.address);
    expect({ fn: f.name, nop: insn !== undefined && isNopText(insn.text), length: insn?.length }).toEqual({
      fn: f.name,
      nop: true,
      length: 5,
    });
  }
}

/** The hotpatch site's first instruction is objdump's, and a 1-byte one is refused by name. */
export function expectFirstInstructionsMatch(s: Subject): void {
  for (const f of s.report.functions) {
    const hp = site(f, "hotpatch")!;
    const insn = insnAt(s, redirectPoint(s, f));
    if (insn === undefined) continue; // a function objdump does not sweep into (data before it)
    // objdump spells f3 as `repz` before ret/cmps, graft's formatter as `rep`: the same prefix.
    const mnemonicOf = (text: string): string | undefined => text.split(/\s+/)[0]?.replace(/^repz$/, "rep");
    const mnemonic = mnemonicOf(insn.text);
    expect({
      fn: f.name,
      length: hp.detail.firstInstructionLength,
      mnemonic: mnemonicOf(hp.detail.firstInstruction),
    }).toEqual({
      fn: f.name,
      length: insn.length,
      mnemonic,
    });
    const tooShort = hp.problems.some((p) => /first instruction .* is 1 byte/.test(p));
    expect({ fn: f.name, tooShort }).toEqual({ fn: f.name, tooShort: insn.length < 2 });
  }
}

/**
 * Free padding before each entry: the NOP/int3 fill objdump shows between the previous function's
 * end (its st_size, or its last instruction that is not fill when st_size is 0) and the entry.
 */
export function expectPaddingMatches(s: Subject): void {
  const fns = s.report.functions;
  const lines = s.oracle.instructions();
  const isFill = (l: DisasmLine): boolean => isNopText(l.text) || l.text === "int3";
  const symbolSize = new Map<bigint, bigint>();
  for (const x of s.oracle.functionSymbols())
    if (x.size > (symbolSize.get(x.address) ?? 0n)) symbolSize.set(x.address, x.size);
  for (let k = 0; k < fns.length; k++) {
    const f = fns[k]!;
    const prev = fns[k - 1];
    let prevEnd: bigint;
    if (prev === undefined || prev.section !== f.section) {
      const sec = s.elf.sections.find(
        (x) =>
          x.name === f.section &&
          s.elf.sectionAddress(x) <= f.address &&
          f.address < s.elf.sectionAddress(x) + x.sh_size,
      )!;
      prevEnd = s.elf.sectionAddress(sec);
    } else {
      const size = symbolSize.get(prev.address) ?? 0n;
      if (size > 0n) prevEnd = prev.address + size;
      else {
        // Unsized (crtstuff, assembly): it ends after its last instruction that is not fill.
        prevEnd = prev.address;
        for (
          let j = s.oracle.indexAt(prev.address) ?? lines.length;
          j < lines.length && lines[j]!.address < f.address;
          j++
        ) {
          if (!isFill(lines[j]!)) prevEnd = lines[j]!.address + BigInt(lines[j]!.length);
        }
      }
    }
    // Walk back from the entry over whole fill instructions that start at or after prevEnd.
    let i = s.oracle.indexAt(f.address);
    if (i === undefined) continue;
    let free = 0n;
    let at = f.address;
    while (i > 0) {
      const l = lines[i - 1]!;
      if (l.address + BigInt(l.length) !== at || l.address < prevEnd || !isFill(l)) break;
      at = l.address;
      free += BigInt(l.length);
      i--;
    }
    const hp = site(f, "hotpatch")!;
    expect({ fn: f.name, padding: hp.detail.padding }).toEqual({ fn: f.name, padding: Number(free) });
  }
}

/**
 * A jump from inside a function back to its redirect point (a loop head) per objdump is exactly when
 * graft refuses hotpatch and overwrite for it with a loop-head reason; a branch into the middle of
 * the rewritten bytes exactly when it says one lands inside them.
 */
export function expectLoopHeadsMatch(s: Subject): void {
  const jumpsTo = new Map<bigint, bigint[]>();
  const anyTo = new Set<bigint>();
  for (const b of branches(s)) {
    anyTo.add(b.to);
    if (b.mnemonic === "call") continue;
    const list = jumpsTo.get(b.to);
    if (list === undefined) jumpsTo.set(b.to, [b.from]);
    else list.push(b.from);
  }
  for (const f of s.report.functions) {
    const at = redirectPoint(s, f);
    let loop = false;
    for (let t = f.address; t <= at; t++) {
      if ((jumpsTo.get(t) ?? []).some((from) => from >= f.address && from < f.address + f.size)) loop = true;
    }
    for (const kind of ["hotpatch", "overwrite"] as const) {
      const x = site(f, kind)!;
      if (kind === "overwrite" && x.problems.some((p) => p.includes("byte(s) long after the entry")))
        continue;
      const said = x.problems.some((p) => /loop head/.test(p));
      expect({ fn: f.name, kind, loopHead: said }).toEqual({ fn: f.name, kind, loopHead: loop });
      // A branch into the middle of the bytes the redirect rewrites (linked files: in a .o objdump
      // shows placeholders where graft reads relocations).
      if (s.oracle.relocatable || x.length === 0) continue;
      let inside = false;
      for (let t = at + 1n; t < at + BigInt(x.length); t++) if (anyTo.has(t)) inside = true;
      const saidInside = x.problems.some((p) => /lands inside the rewritten bytes/.test(p));
      expect({ fn: f.name, kind, landsInside: saidInside }).toEqual({
        fn: f.name,
        kind,
        landsInside: inside,
      });
    }
  }
}

/** The overwrite covers objdump's first instructions; relocatable iff none is RIP-relative or a call. */
export function expectOverwriteRelocatability(s: Subject): void {
  for (const f of s.report.functions) {
    const ow = site(f, "overwrite")!;
    if (ow.detail.instructions.length === 0 || ow.problems.some((p) => p.includes("do not decode"))) continue;
    const lines = s.oracle.instructions();
    let i = s.oracle.indexAt(redirectPoint(s, f));
    if (i === undefined) continue;
    let covered = 0;
    const texts: string[] = [];
    while (covered < 5 && i < lines.length) {
      const l = lines[i++]!;
      texts.push(l.text);
      covered += l.length;
      if (/^(ret|jmp|ud2|int3|hlt)\b/.test(l.text)) break;
    }
    const relocatable = !texts.some((t) => t.includes("(%rip)") || /^(?:(?:bnd|notrack)\s+)?call/.test(t));
    expect({
      fn: f.name,
      covered: ow.length,
      count: ow.detail.instructions.length,
      relocatable: ow.detail.relocatable,
    }).toEqual({
      fn: f.name,
      covered,
      count: texts.length,
      relocatable,
    });
  }
}
