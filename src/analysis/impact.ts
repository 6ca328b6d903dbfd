import { GraftError } from "../core/errors.js";
import { DW_UT } from "../formats/dwarf/constants.js";
import type { Dwarf } from "../formats/dwarf/dwarf.js";
import type { InlinedSubroutine } from "../formats/dwarf/subprograms.js";
import type { Unit } from "../formats/dwarf/unit.js";
import type { Elf } from "../formats/elf/elf.js";
import { parseCloneName } from "./clone-name.js";
import { type FunctionInfo, listFunctions } from "./functions.js";
import { impactWarnings } from "./impact-warnings.js";

/** Why a function is in an impacted set. */
export interface ImpactReason {
  /**
   * `self`: the function's own out-of-line body; `inlined`: it holds an inlined copy of `of`;
   * `clone`: a specialised copy of `of` (constprop, isra, part, …, or a DWARF concrete instance of
   * it under another name); `cold`: the split-off cold part of `of`.
   */
  readonly kind: "self" | "inlined" | "clone" | "cold";
  /** The source function whose body it carries. */
  readonly of: string;
  /** For clones: the suffixes (`constprop`, `isra`, `part`, `llvm`…), when the name has them. */
  readonly suffixes?: readonly string[];
}

/** One function (one address) that must be replaced when the queried function changes. */
export interface ImpactedFunction {
  readonly name: string;
  /** Other symbols at the same address: patched together with it. */
  readonly aliases: readonly string[];
  readonly address: bigint;
  readonly size: bigint;
  readonly reasons: readonly ImpactReason[];
}

/** A source function a query resolved to. */
export interface ImpactOrigin {
  readonly name: string;
  /** The compile unit (source file) that defines it, when DWARF says. */
  readonly unit: string | undefined;
  /** `.debug_info` offset of its DIE, or undefined when known only by symbol name. */
  readonly die: number | undefined;
}

export interface ImpactReport {
  readonly file: string | undefined;
  /** The query: one name, or several joined by ", ". */
  readonly function: string;
  readonly origins: readonly ImpactOrigin[];
  /** In address order. */
  readonly functions: readonly ImpactedFunction[];
  readonly totalSize: bigint;
  /** False when `warnings` says the set may miss functions. */
  readonly complete: boolean;
  readonly warnings: readonly string[];
}

export interface ImpactMapEntry {
  readonly function: string;
  readonly unit: string | undefined;
  /** Names of the impacted functions, its own body included, in address order. */
  readonly impacted: readonly string[];
  /** Impacted functions other than its own body (and cold part): inlined copies and clones. */
  readonly others: number;
  readonly size: bigint;
}

export interface ImpactMapReport {
  readonly file: string | undefined;
  /** Every source function with code somewhere, most impacted first. */
  readonly entries: readonly ImpactMapEntry[];
  readonly summary: {
    readonly functions: number;
    /** Functions whose change reaches other functions (others > 0). */
    readonly withImpact: number;
    readonly totalImpacted: number;
    readonly largest: { readonly function: string; readonly count: number } | undefined;
  };
  readonly complete: boolean;
  readonly warnings: readonly string[];
}

/** A source function: a DWARF origin DIE, or a bare symbol name when there is no DWARF for it. */
interface Identity {
  readonly key: string;
  readonly name: string;
  readonly linkageName: string | undefined;
  readonly die: number | undefined;
  readonly unit: Unit | undefined;
  /** Its out-of-line bodies: itself, clones, cold parts. */
  readonly instances: Set<FunctionInfo>;
  /** Functions holding an inlined copy of it. */
  readonly inlinedInto: Set<FunctionInfo>;
}

/**
 * Which functions of a binary carry a copy of which source function's body, from DWARF (the
 * abstract origins of inlined subroutines and of concrete out-of-line instances [DWARF5 3.3.8])
 * and from symbol names (clone suffixes, aliases at one address). Built once per binary; then each
 * query is a closure over it: a function inlined into an inlined function, a clone's callers that
 * inlined it, and so on — what GCC's `-flive-patching` calls the impacted functions.
 */
export class ImpactGraph {
  readonly elf: Elf;
  readonly dwarf: Dwarf | undefined;
  private readonly functions: FunctionInfo[];
  private readonly identities = new Map<string, Identity>();
  private readonly identityOfFunction = new Map<FunctionInfo, Identity>();
  private readonly byName = new Map<string, Identity[]>();
  private readonly origins = new Map<number, number>();
  private readonly skeletons: number;

  constructor(elf: Elf, dwarf: Dwarf | undefined) {
    this.elf = elf;
    this.dwarf = dwarf;
    this.functions = listFunctions(elf);
    let skeletons = 0;
    if (dwarf !== undefined) {
      for (const unit of dwarf.units()) {
        if (unit.isTypeUnit) continue;
        if (unit.header.unitType === DW_UT.DW_UT_skeleton || dwarf.compileUnit(unit).dwoName !== undefined) {
          skeletons++;
          continue;
        }
        this.addUnit(dwarf, unit);
      }
    }
    this.skeletons = skeletons;
    // Functions DWARF says nothing about (assembly, stripped units, no -g): by name, clones grouped.
    for (const f of this.functions) {
      if (this.identityOfFunction.has(f)) continue;
      const base = parseCloneName(f.name).base;
      const id = this.identity(`sym:${base}`, base, undefined, undefined, undefined);
      id.instances.add(f);
      this.identityOfFunction.set(f, id);
    }
  }

  private identity(
    key: string,
    name: string,
    linkageName: string | undefined,
    die: number | undefined,
    unit: Unit | undefined,
  ): Identity {
    let id = this.identities.get(key);
    if (id === undefined) {
      id = { key, name, linkageName, die, unit, instances: new Set(), inlinedInto: new Set() };
      this.identities.set(key, id);
      for (const n of new Set([name, ...(linkageName === undefined ? [] : [linkageName])])) {
        const list = this.byName.get(n);
        if (list === undefined) this.byName.set(n, [id]);
        else list.push(id);
      }
    }
    return id;
  }

  private originIdentity(dwarf: Dwarf, offset: number): Identity {
    let origin = this.origins.get(offset);
    if (origin === undefined) {
      origin = dwarf.originOf(offset);
      this.origins.set(offset, origin);
    }
    const key = `die:${origin}`;
    const known = this.identities.get(key);
    if (known !== undefined) return known;
    const { name, linkageName } = dwarf.functionName(origin);
    return this.identity(
      key,
      name ?? linkageName ?? `<DIE 0x${origin.toString(16)}>`,
      linkageName,
      origin,
      dwarf.findUnit(origin),
    );
  }

  private addUnit(dwarf: Dwarf, unit: Unit): void {
    for (const s of dwarf.unitFunctions(unit).subprograms) {
      if (s.ranges.length === 0) continue;
      const code = s.ranges.flatMap((r) => this.functionsIn(r.low, r.high));
      if (code.length === 0) continue;
      const self = this.originIdentity(dwarf, s.offset);
      for (const f of code) {
        self.instances.add(f);
        this.identityOfFunction.set(f, self);
      }
      const walk = (list: readonly InlinedSubroutine[]): void => {
        for (const inl of list) {
          if (inl.abstractOrigin !== undefined) {
            const id = this.originIdentity(dwarf, inl.abstractOrigin);
            for (const f of code) id.inlinedInto.add(f);
          }
          walk(inl.inlined);
        }
      };
      walk(s.inlined);
    }
  }

  /** Functions whose entry lies in [low, high). */
  private functionsIn(low: bigint, high: bigint): FunctionInfo[] {
    const fs = this.functions;
    let lo = 0;
    let hi = fs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fs[mid]!.address < low) lo = mid + 1;
      else hi = mid;
    }
    const out: FunctionInfo[] = [];
    for (let i = lo; i < fs.length && fs[i]!.address < high; i++) out.push(fs[i]!);
    return out;
  }

  /**
   * The source functions `name` stands for: a DWARF name or linkage name, a symbol, or a clone's
   * symbol; `name@file.c` keeps those whose compile unit is that file (statics of the same name).
   */
  private resolve(query: string): Identity[] {
    const at = query.lastIndexOf("@");
    if (at > 0 && this.dwarf !== undefined) {
      const file = query.slice(at + 1);
      return this.resolveName(query.slice(0, at)).filter((id) => {
        const unit = this.unitName(id);
        return unit !== undefined && (unit === file || unit.endsWith(`/${file}`));
      });
    }
    return this.resolveName(query);
  }

  private resolveName(name: string): Identity[] {
    const out = new Set<Identity>(this.byName.get(name) ?? []);
    for (const f of this.functions)
      if (f.name === name || f.aliases.includes(name)) out.add(this.identityOfFunction.get(f)!);
    if (out.size === 0) for (const id of this.byName.get(parseCloneName(name).base) ?? []) out.add(id);
    return [...out];
  }

  /** Closure from `seeds`: every function holding a copy of their bodies, transitively. */
  private closure(seeds: readonly Identity[]): {
    functions: Map<FunctionInfo, ImpactReason[]>;
    visited: Set<Identity>;
  } {
    const functions = new Map<FunctionInfo, ImpactReason[]>();
    const visited = new Set<Identity>(seeds);
    const queue = [...seeds];
    const add = (f: FunctionInfo, reason: ImpactReason): void => {
      const list = functions.get(f);
      if (list === undefined) functions.set(f, [reason]);
      else if (!list.some((r) => r.kind === reason.kind && r.of === reason.of)) list.push(reason);
      const next = this.identityOfFunction.get(f);
      if (next !== undefined && !visited.has(next)) {
        visited.add(next);
        queue.push(next);
      }
    };
    const seedSet = new Set(seeds);
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      for (const f of id.instances) {
        // A function reached through an inlined copy is already listed for that; "itself" adds nothing.
        const reason = instanceReason(f, id.name);
        if (reason.kind === "self" && !seedSet.has(id) && functions.has(f)) continue;
        add(f, reason);
      }
      for (const f of id.inlinedInto) add(f, { kind: "inlined", of: id.name });
    }
    return { functions, visited };
  }

  private unitName(id: Identity): string | undefined {
    return id.unit === undefined ? undefined : this.dwarf?.compileUnit(id.unit).name;
  }

  private warningsFor(units: Iterable<Unit>, functions: Iterable<FunctionInfo>): string[] {
    const noDwarf = [...functions].filter((f) => this.identityOfFunction.get(f)?.die === undefined).length;
    return impactWarnings({
      hasDwarf: this.dwarf !== undefined,
      skeletonUnits: this.skeletons,
      units: [...new Set(units)].map((u) => this.dwarf!.compileUnit(u)),
      functionsWithoutDwarf: this.dwarf === undefined ? 0 : noDwarf,
    });
  }

  /**
   * The impacted set of the function `name` (`name@file.c` for one static of several), or the union
   * for several names — what a patch changing all of them must replace (graft diff's closure).
   * Throws UNKNOWN_SYMBOL when a name matches nothing.
   */
  impactOf(names: string | readonly string[]): ImpactReport {
    const queries = typeof names === "string" ? [names] : names;
    const name = queries.join(", ");
    const seeds = [
      ...new Set(
        queries.flatMap((n) => {
          const found = this.resolve(n);
          if (found.length === 0)
            throw new GraftError("UNKNOWN_SYMBOL", `no function named ${n} (neither a symbol nor in DWARF)`, {
              subject: this.elf.file ?? n,
            });
          return found;
        }),
      ),
    ];
    const { functions, visited } = this.closure(seeds);
    const list = [...functions.entries()]
      .map(([f, reasons]) => ({
        name: f.name,
        aliases: f.aliases,
        address: f.address,
        size: f.size,
        reasons,
      }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const units = [...visited].flatMap((id) => (id.unit === undefined ? [] : [id.unit]));
    const warnings = this.warningsFor(units, functions.keys());
    return {
      file: this.elf.file,
      function: name,
      origins: seeds.map((id) => ({ name: id.name, unit: this.unitName(id), die: id.die })),
      functions: list,
      totalSize: list.reduce((s, f) => s + f.size, 0n),
      complete: warnings.length === 0,
      warnings,
    };
  }

  /**
   * The source function a symbol's code belongs to: `scale.llvm.123` → scale of lto-a.c,
   * `f.cold` → f. Lets a differ pair renamed copies across builds by source function and file.
   */
  findOrigin(symbol: string): ImpactOrigin | undefined {
    const f = this.functions.find((x) => x.name === symbol || x.aliases.includes(symbol));
    const id = f === undefined ? undefined : this.identityOfFunction.get(f);
    return id === undefined ? undefined : { name: id.name, unit: this.unitName(id), die: id.die };
  }

  /** The impacted set of every source function that has code, most impacted first. */
  impactMap(): ImpactMapReport {
    const entries: ImpactMapEntry[] = [];
    const units = new Set<Unit>();
    for (const id of this.identities.values()) {
      if (id.instances.size === 0 && id.inlinedInto.size === 0) continue;
      if (id.unit !== undefined) units.add(id.unit);
      const { functions } = this.closure([id]);
      const sorted = [...functions.entries()].sort(([a], [b]) =>
        a.address < b.address ? -1 : a.address > b.address ? 1 : 0,
      );
      entries.push({
        function: id.name,
        unit: this.unitName(id),
        impacted: sorted.map(([f]) => f.name),
        others: sorted.filter(([, rs]) => rs.some((r) => r.kind !== "self" && r.kind !== "cold")).length,
        size: sorted.reduce((s, [f]) => s + f.size, 0n),
      });
    }
    entries.sort(
      (a, b) => b.others - a.others || (a.function < b.function ? -1 : a.function > b.function ? 1 : 0),
    );
    const withImpact = entries.filter((e) => e.others > 0);
    const reaching = new Set(entries.filter((e) => e.others > 0).flatMap((e) => e.impacted));
    const warnings = this.warningsFor(
      units,
      this.functions.filter((f) => reaching.has(f.name)),
    );
    return {
      file: this.elf.file,
      entries,
      summary: {
        functions: entries.length,
        withImpact: withImpact.length,
        totalImpacted: entries.reduce((s, e) => s + e.impacted.length, 0),
        largest:
          entries[0] === undefined
            ? undefined
            : { function: entries[0].function, count: entries[0].impacted.length },
      },
      complete: warnings.length === 0,
      warnings,
    };
  }
}

const RENAMES: ReadonlySet<string> = new Set(["llvm", "lto_priv", "localalias"]);

/** Why an out-of-line body of `origin` is in its set: its own, a clone, or its cold part. */
function instanceReason(f: FunctionInfo, origin: string): ImpactReason {
  const names = [f.name, ...f.aliases];
  if (names.includes(origin)) return { kind: "self", of: origin };
  const kinds = names.map((n) => parseCloneName(n)).find((c) => c.kinds.length > 0)?.kinds ?? [];
  if (kinds.length > 0 && kinds[kinds.length - 1] === "cold") return { kind: "cold", of: origin };
  // ThinLTO's promoted `f.llvm.<hash>`, LTO's `f.lto_priv.0`, gcc's `f.localalias`: f itself, renamed.
  if (kinds.length > 0 && kinds.every((k) => RENAMES.has(k)))
    return { kind: "self", of: origin, suffixes: kinds };
  return kinds.length === 0 ? { kind: "clone", of: origin } : { kind: "clone", of: origin, suffixes: kinds };
}

/** The impacted set of `name` in `elf` (DWARF from `dwarf` when given). See ImpactGraph. */
export function impactOf(
  elf: Elf,
  dwarf: Dwarf | undefined,
  names: string | readonly string[],
): ImpactReport {
  return new ImpactGraph(elf, dwarf).impactOf(names);
}

/** The impacted set of every function of `elf`. See ImpactGraph. */
export function impactMap(elf: Elf, dwarf: Dwarf | undefined): ImpactMapReport {
  return new ImpactGraph(elf, dwarf).impactMap();
}
