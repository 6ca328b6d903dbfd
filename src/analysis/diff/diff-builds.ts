import type { Arch } from "../../arch/arch.js";
import { hex } from "../../core/hex.js";
import { SHF } from "../../formats/elf/constants.js";
import type { Elf } from "../../formats/elf/elf.js";
import type { Unit } from "./build-units.js";
import { BuildView } from "./build-view.js";
import { correlateUnits, type UnitPair } from "./correlate.js";
import { dwarfImpact } from "./dwarf-impact-source.js";
import {
  cloneCallerImpactSource,
  type ImpactedFunction,
  type ImpactSource,
  impactedClosure,
  symbolImpactSource,
} from "./impacted-closure.js";
import { type Identify, type NormalizedItem, normalizeData, normalizeFunction } from "./normalize-code.js";
import { isColdPart } from "./normalize-name.js";
import { findReferences, type References } from "./references.js";

/** A function of both builds whose code differs. */
export interface ChangedFunction {
  /** Name in the original build. */
  readonly name: string;
  /** Name in the patched build (differs when a counter or ThinLTO hash did). */
  readonly patchedName: string;
  readonly local: boolean;
  readonly file: string | undefined;
  readonly address: bigint;
  readonly size: bigint;
  readonly patchedSize: bigint;
  /** The first instruction that differs, in both builds (objdump syntax). */
  readonly firstDifference: { readonly offset: number; readonly orig: string; readonly patched: string };
}

/** A function whose code is the same but for plain immediates, the mark of a `__LINE__` shift. */
export interface LineOnlyFunction extends ChangedFunction {
  readonly immediates: readonly {
    readonly offset: number;
    readonly orig: string;
    readonly patched: string;
  }[];
}

/** A unit present in one build only. */
export interface OneSidedUnit {
  readonly name: string;
  readonly local: boolean;
  readonly file: string | undefined;
  readonly address: bigint;
  readonly size: bigint;
  readonly section: string;
}

export interface ChangedData extends OneSidedUnit {
  readonly patchedName: string;
  readonly patchedSize: bigint;
  readonly writable: boolean;
}

/** What graft diff reports. */
export interface BuildDiff {
  readonly orig: string;
  readonly patched: string;
  readonly kind: "object" | "linked";
  readonly functions: {
    readonly changed: readonly ChangedFunction[];
    readonly lineOnly: readonly LineOnlyFunction[];
    readonly added: readonly OneSidedUnit[];
    readonly removed: readonly OneSidedUnit[];
    readonly unchanged: number;
  };
  readonly data: {
    readonly changed: readonly ChangedData[];
    readonly added: readonly OneSidedUnit[];
    readonly removed: readonly OneSidedUnit[];
    readonly unchanged: number;
  };
  /** Functions that must be replaced with the changed ones, beyond them, with the reasons. */
  readonly impacted: readonly ImpactedFunction[];
  /** What a live patch cannot do, one sentence each; empty when the change is patchable. */
  readonly refusals: readonly string[];
  readonly warnings: readonly string[];
  /** Correlated pairs, for building a patch (not printed). */
  readonly pairs: readonly UnitPair[];
  readonly views: { readonly orig: BuildView; readonly patched: BuildView };
}

export interface DiffOptions {
  readonly origLabel?: string;
  readonly patchedLabel?: string;
  /** More impact sources, besides what the symbols and the original build's DWARF show. */
  readonly impactSources?: readonly ImpactSource[];
  /** Read the original build's DWARF for inlined copies (default true). */
  readonly dwarf?: boolean;
}

const CONSTRUCTOR_SECTIONS = /^\.(init_array|ctors|preinit_array)(\.|$)/;

/**
 * Compare two builds of the same program (two .o files or two linked files): correlate their
 * functions and data (correlate.ts), compare each pair relocation-aware (normalize-code.ts), and
 * sort the differences into changed, `__LINE__`-only, new and removed functions; changed, new and
 * removed data; the impacted closure; and what no live patch can do (refusals).
 */
export function diffBuilds(orig: Elf, patched: Elf, arch: Arch, options: DiffOptions = {}): BuildDiff {
  const o = new BuildView(orig, arch, options.origLabel ?? "orig");
  const p = new BuildView(patched, arch, options.patchedLabel ?? "patched");
  const warnings: string[] = [];
  if (orig.isRelocatable !== patched.isRelocatable)
    warnings.push(
      "one build is a .o and the other a linked file: every address is compared by what it resolves to",
    );

  // References are needed only when names are ambiguous or a clone changed: computed on first use.
  let origRefs: References | undefined;
  let patchedRefs: References | undefined;
  const origReferences = (): References => (origRefs ??= findReferences(o));
  const patchedReferences = (): References => (patchedRefs ??= findReferences(p));

  // Pass 1: content by names, to pair units whose names alone cannot (ThinLTO hashes, several clones).
  const byName: Identify = (u) => `${u.kind}:${u.canonical}`;
  const contentKey = (u: Unit, side: "orig" | "patched"): string => {
    const view = side === "orig" ? o : p;
    return u.kind === "function"
      ? normalizeFunction(view, u, byName)
          .map((i) => `${i.shape}|${i.immediates.join(",")}`)
          .join(";")
      : normalizeData(view, u, byName);
  };
  const sameFile = o.files.length === 1 && p.files.length === 1;
  // Who refers to a unit, by name: two statics `count` of different functions differ here.
  const referrerKey = (u: Unit, side: "orig" | "patched"): string =>
    ((side === "orig" ? origReferences() : patchedReferences()).referrers.get(u) ?? [])
      .map((r) => r.canonical)
      .sort()
      .join(",");
  const { pairs, removed, added } = correlateUnits(o.units, p.units, contentKey, sameFile, referrerKey);

  // Pass 2: ids from the pairing; a changed read-only object gets a new identity on the patched side,
  // so every function that reads it differs too and is replaced, reading the new copy.
  const ids = new Map<Unit, string>();
  pairs.forEach((pair, i) => {
    ids.set(pair.orig, `u${i}`);
    ids.set(pair.patched, `u${i}`);
  });
  const changedReadOnly = new Set<Unit>();
  const origUnits = new Set(o.units);
  const identify: Identify = (u) => {
    const id = ids.get(u) ?? `${origUnits.has(u) ? "gone" : "new"}:${u.canonical}`;
    return changedReadOnly.has(u) ? `${id}#changed` : id;
  };

  const refusals: string[] = [];
  const changedData: ChangedData[] = [];
  let unchangedData = 0;
  for (const pair of pairs) {
    if (pair.orig.kind !== "data") continue;
    const a = normalizeData(o, pair.orig, identify);
    const b = normalizeData(p, pair.patched, identify);
    if (a === b) {
      unchangedData++;
      continue;
    }
    const what = describe(pair.orig);
    changedData.push({
      ...oneSided(pair.orig),
      patchedName: pair.patched.name,
      patchedSize: pair.patched.size,
      writable: pair.orig.writable,
    });
    if (pair.orig.tls)
      refusals.push(`thread-local ${what} changed: each thread's copy was set up when the thread started`);
    else if (pair.orig.size !== pair.patched.size && pair.orig.writable)
      refusals.push(
        `${what} changed size or layout (${pair.orig.size} → ${pair.patched.size} bytes): the running process holds the old layout`,
      );
    else if (pair.orig.writable)
      refusals.push(
        `${what} has a changed initialiser: the process initialised it at start and may have changed it since; a patch cannot re-run that`,
      );
    else changedReadOnly.add(pair.patched);
  }
  for (const u of added)
    if (u.tls) refusals.push(`new thread-local ${describe(u)}: threads already running have no room for it`);

  const changed: ChangedFunction[] = [];
  const lineOnly: LineOnlyFunction[] = [];
  let unchangedFunctions = 0;
  for (const pair of pairs) {
    if (pair.orig.kind !== "function") continue;
    const a = normalizeFunction(o, pair.orig, identify);
    const b = normalizeFunction(p, pair.patched, identify);
    const verdict = compareCode(a, b);
    if (verdict.kind === "same") {
      unchangedFunctions++;
      continue;
    }
    const base: ChangedFunction = {
      name: pair.orig.name,
      patchedName: pair.patched.name,
      local: pair.orig.local,
      file: pair.orig.file,
      address: pair.orig.address,
      size: pair.orig.size,
      patchedSize: pair.patched.size,
      firstDifference: {
        offset: verdict.offset,
        orig: textAt(o, pair.orig, verdict.offset),
        patched: textAt(p, pair.patched, verdict.offset),
      },
    };
    if (
      verdict.kind === "immediates" &&
      verdict.immediates.every((i) => feedsCallArgument(p, pair.patched, i.offset))
    )
      lineOnly.push({ ...base, immediates: verdict.immediates });
    else changed.push(base);
  }

  refusals.push(...constructorRefusals(o, p, identify, [...changed, ...lineOnly]));

  const functions = o.units.filter((u) => u.kind === "function");
  const seeds = [...changed, ...lineOnly].map((f) => f.name);
  // Inlined copies are in the original build's DWARF only; without it, say the closure may miss them.
  const dwarf = options.dwarf === false || seeds.length === 0 ? undefined : dwarfImpact(orig);
  const impacted = impactedClosure(seeds, [
    symbolImpactSource(functions),
    cloneCallerImpactSource(callGraph(origReferences)),
    ...(dwarf?.source === undefined ? [] : [dwarf.source]),
    ...(options.impactSources ?? []),
  ]).filter((f) => functions.some((u) => u.name === f.name));
  if (dwarf !== undefined) warnings.push(...dwarf.warnings());
  const addedFunctions = added.filter((u) => u.kind === "function").map(oneSided);
  return {
    orig: options.origLabel ?? "orig",
    patched: options.patchedLabel ?? "patched",
    kind: orig.isRelocatable ? "object" : "linked",
    functions: {
      changed,
      lineOnly,
      added: addedFunctions,
      removed: removed.filter((u) => u.kind === "function").map(oneSided),
      unchanged: unchangedFunctions,
    },
    data: {
      changed: changedData,
      added: added.filter((u) => u.kind === "data").map(oneSided),
      removed: removed.filter((u) => u.kind === "data").map(oneSided),
      unchanged: unchangedData,
    },
    impacted: impacted.filter((f) => !isColdPart(f.name)),
    refusals,
    warnings,
    pairs,
    views: { orig: o, patched: p },
  };
}

/** Callers by name, from the references of one build, computed on first use. */
function callGraph(references: () => References): (name: string) => readonly string[] {
  let byName: Map<string, string[]> | undefined;
  return (name) => {
    if (byName === undefined) {
      byName = new Map();
      for (const [callee, list] of references().callers)
        byName.set(
          callee.name,
          list.map((u) => u.name),
        );
    }
    return byName.get(name) ?? [];
  };
}

function oneSided(u: Unit): OneSidedUnit {
  return {
    name: u.name,
    local: u.local,
    file: u.file,
    address: u.address,
    size: u.size,
    section: u.section.name,
  };
}

function describe(u: Unit): string {
  return `${u.local ? "static " : ""}${u.kind === "data" ? "variable" : "function"} ${u.name}${u.local && u.file !== undefined ? `@${u.file}` : ""} (${u.section.name})`;
}

type CodeVerdict =
  | { kind: "same" }
  | { kind: "changed"; offset: number }
  | { kind: "immediates"; offset: number; immediates: { offset: number; orig: string; patched: string }[] };

/**
 * Same shapes and immediates: the same code. Same shapes, some immediates differ and nothing else:
 * what a `__LINE__` shift leaves (kept apart, since graft cannot tell a line number from any other
 * constant without the line table). Anything else: changed.
 */
function compareCode(a: readonly NormalizedItem[], b: readonly NormalizedItem[]): CodeVerdict {
  const n = Math.min(a.length, b.length);
  const immediates: { offset: number; orig: string; patched: string }[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.shape !== y.shape || x.offset !== y.offset) return { kind: "changed", offset: x.offset };
    if (x.immediates.length !== y.immediates.length) return { kind: "changed", offset: x.offset };
    x.immediates.forEach((v, k) => {
      const w = y.immediates[k]!;
      if (v !== w) immediates.push({ offset: x.offset, orig: hex(v), patched: hex(w) });
    });
  }
  if (a.length !== b.length) return { kind: "changed", offset: a[n]?.offset ?? b[n]?.offset ?? 0 };
  if (immediates.length === 0) return { kind: "same" };
  return { kind: "immediates", offset: immediates[0]!.offset, immediates };
}

/** Registers of the SysV integer arguments, as gas prints them. */
const ARGUMENT_LOAD = /^mov[lq]?\s+\$0x[0-9a-f]+,%(e?di|e?si|e?dx|e?cx|r[89]d?)$/;

/**
 * A `__LINE__` passed to a logging or assertion call is an immediate loaded into an argument
 * register shortly before a call (kpatch's `kpatch_line_macro_change_only` rule). Without the line
 * table graft cannot tell a line number from any other constant, so only this shape counts as
 * line-only; any other changed immediate (`return x * 2` → `x * 3`) is a change.
 */
function feedsCallArgument(view: BuildView, u: Unit, offset: number): boolean {
  const bytes = view.unitBytes(u).subarray(offset);
  const ins = view.arch.decode(bytes, u.address + BigInt(offset), 8);
  if (ins[0] === undefined || !ARGUMENT_LOAD.test(ins[0].text)) return false;
  return ins.slice(1).some((i) => i.kind === "call" || i.kind === "jump");
}

function textAt(view: BuildView, u: Unit, offset: number): string {
  const bytes = view.unitBytes(u);
  if (offset >= bytes.length) return "(end)";
  return view.arch.decodeOne(bytes.subarray(offset), u.address + BigInt(offset))?.text ?? "(end)";
}

/**
 * Constructors ran when the process started: a changed .init_array/.ctors list, or a changed
 * function only a constructor list refers to, cannot take effect in a running process.
 */
function constructorRefusals(
  o: BuildView,
  p: BuildView,
  identify: Identify,
  changed: readonly ChangedFunction[],
): string[] {
  const entries = (view: BuildView): string[] => {
    const out: string[] = [];
    for (const s of view.elf.sections) {
      if (!CONSTRUCTOR_SECTIONS.test(s.name) || (s.sh_flags & BigInt(SHF.SHF_ALLOC)) === 0n) continue;
      const start = view.elf.sectionAddress(s);
      for (let off = 0n; off + 8n <= s.sh_size; off += 8n) {
        const r = view.relocations.get(start + off);
        let to: bigint | undefined = r?.target;
        if (r === undefined && !view.elf.isRelocatable) {
          const b = view.bytesAt(start + off, 8);
          to = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
        }
        const u = to === undefined ? undefined : view.unitAt(to);
        out.push(u === undefined ? (r?.external ?? "?") : `${identify(u)}:${u.name}`);
      }
    }
    return out;
  };
  const a = entries(o);
  const b = entries(p);
  const refusals: string[] = [];
  const strip = (e: string): string => e.replace(/:.*$/, "");
  if (a.map(strip).sort().join() !== b.map(strip).sort().join())
    refusals.push(`the constructor list (.init_array) changed: constructors ran when the process started`);
  const ctorNames = new Set(a.map((e) => e.replace(/^[^:]*:/, "")));
  for (const f of changed)
    if (ctorNames.has(f.name))
      refusals.push(
        `constructor ${f.name} changed (${hex(f.address)}): it ran when the process started and will not run again`,
      );
  return refusals;
}
