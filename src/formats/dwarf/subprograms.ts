import type { Attribute } from "./attribute.js";
import { DW_AT, DW_TAG } from "./constants.js";
import type { AddressRange } from "./ranges.js";
import type { Unit } from "./unit.js";

/** A call site inside a function or an inlined copy [DWARF5 3.4; GNU call_site for DWARF 4]. */
export interface DwarfCallSite {
  readonly offset: number;
  /** DW_AT_call_return_pc (DWARF 5) or DW_AT_low_pc (DW_TAG_GNU_call_site): the return address. */
  readonly returnPc: bigint | undefined;
  /** DW_AT_call_origin / DW_AT_abstract_origin: the called subprogram's DIE, when direct. */
  readonly origin: number | undefined;
  /** DW_AT_call_tail_call / DW_AT_GNU_tail_call. */
  readonly tailCall: boolean;
}

/** What subprograms and inlined subroutines share. */
interface FunctionDie {
  /** Offset of the DIE in .debug_info. */
  readonly offset: number;
  readonly abstractOrigin: number | undefined;
  readonly ranges: readonly AddressRange[];
  readonly entryPc: bigint | undefined;
  /** Inlined copies of other functions directly inside this one (lexical blocks looked through). */
  readonly inlined: readonly InlinedSubroutine[];
  readonly callSites: readonly DwarfCallSite[];
}

/** An inlined copy of a function [DWARF5 3.3.8.2]. */
export interface InlinedSubroutine extends FunctionDie {
  readonly callFile: number | undefined;
  readonly callLine: number | undefined;
  readonly callColumn: number | undefined;
}

/** A DW_TAG_subprogram: a declaration, an abstract instance, or code (concrete or out-of-line). */
export interface Subprogram extends FunctionDie {
  readonly unitOffset: number;
  /** The DIE's own DW_AT_name (a concrete instance usually has none: see Dwarf.functionName). */
  readonly name: string | undefined;
  readonly linkageName: string | undefined;
  readonly specification: number | undefined;
  readonly declaration: boolean;
  readonly external: boolean;
  /** DW_AT_inline (DW_INL_*): set on abstract instance roots. */
  readonly inline: number | undefined;
  readonly declFile: number | undefined;
  readonly declLine: number | undefined;
}

export interface UnitFunctions {
  readonly subprograms: readonly Subprogram[];
}

interface Builder {
  offset: number;
  attrs: Attribute[];
  inlined: InlinedSubroutine[];
  callSites: DwarfCallSite[];
}

const A = DW_AT;
/** What each DIE kind needs; everything else (types, locations, frame bases) is skipped undecoded. */
const CODE = [A.DW_AT_low_pc, A.DW_AT_high_pc, A.DW_AT_ranges, A.DW_AT_entry_pc, A.DW_AT_abstract_origin];
const SUBPROGRAM = new Set<number>([
  ...CODE,
  A.DW_AT_name,
  A.DW_AT_linkage_name,
  A.DW_AT_MIPS_linkage_name,
  A.DW_AT_specification,
  A.DW_AT_declaration,
  A.DW_AT_external,
  A.DW_AT_inline,
  A.DW_AT_decl_file,
  A.DW_AT_decl_line,
]);
const INLINED = new Set<number>([...CODE, A.DW_AT_call_file, A.DW_AT_call_line, A.DW_AT_call_column]);
const CALL_SITE = new Set<number>([
  A.DW_AT_call_return_pc,
  A.DW_AT_low_pc,
  A.DW_AT_call_origin,
  A.DW_AT_abstract_origin,
  A.DW_AT_call_tail_call,
  A.DW_AT_GNU_tail_call,
]);

const num = (a: Attribute | undefined): number | undefined =>
  a?.class === "constant" ? Number(a.value) : undefined;
const ref = (a: Attribute | undefined): number | undefined =>
  a?.class === "reference" ? Number(a.value) : undefined;

/**
 * Every subprogram of a unit with the tree of inlined subroutines inside it (an inlined copy can
 * hold inlined copies of its own callees) and its call sites, in one pass over the unit's DIEs.
 * A function nested in another (GNU C nested functions, C++ local classes) is a subprogram of
 * its own, not part of its parent's tree.
 */
export function unitFunctions(unit: Unit): UnitFunctions {
  const t = unit.dies();
  const subprograms: Subprogram[] = [];
  const T = DW_TAG;
  for (let i = 0; i < t.count; i++) {
    if (t.abbrevs[i]!.tag !== T.DW_TAG_subprogram) continue;
    const builders = new Map<number, Builder>();
    const root: Builder = {
      offset: t.offsets[i]!,
      attrs: unit.attributes(i, SUBPROGRAM),
      inlined: [],
      callSites: [],
    };
    builders.set(i, root);
    const finished = new Map<number, InlinedSubroutine>();
    const end = t.ends[i]!;
    const order: number[] = [];
    for (let j = i + 1; j < end; j++) {
      const tag = t.abbrevs[j]!.tag;
      if (tag === T.DW_TAG_subprogram) {
        j = t.ends[j]! - 1;
        continue;
      }
      if (tag === T.DW_TAG_inlined_subroutine) {
        builders.set(j, {
          offset: t.offsets[j]!,
          attrs: unit.attributes(j, INLINED),
          inlined: [],
          callSites: [],
        });
        order.push(j);
      } else if (tag === T.DW_TAG_call_site || tag === T.DW_TAG_GNU_call_site) {
        const owner = builders.get(container(t.parents, builders, j))!;
        owner.callSites.push(callSite(t.offsets[j]!, unit.attributes(j, CALL_SITE)));
      }
    }
    // Close inner copies first so each parent collects finished children.
    for (let k = order.length - 1; k >= 0; k--) {
      const j = order[k]!;
      const b = builders.get(j)!;
      const a = (at: number) => b.attrs.find((x) => x.at === at);
      const copy: InlinedSubroutine = {
        ...common(unit, b),
        callFile: num(a(DW_AT.DW_AT_call_file)),
        callLine: num(a(DW_AT.DW_AT_call_line)),
        callColumn: num(a(DW_AT.DW_AT_call_column)),
      };
      finished.set(j, copy);
      builders.get(container(t.parents, builders, j))!.inlined.unshift(copy);
    }
    const a = (at: number) => root.attrs.find((x) => x.at === at);
    const str = (at: number) => {
      const v = a(at);
      return v?.class === "string" ? v.value : undefined;
    };
    const flag = (at: number) => {
      const v = a(at);
      return v?.class === "flag" && v.value;
    };
    subprograms.push({
      ...common(unit, root),
      unitOffset: unit.offset,
      name: str(DW_AT.DW_AT_name),
      linkageName: str(DW_AT.DW_AT_linkage_name) ?? str(DW_AT.DW_AT_MIPS_linkage_name),
      specification: ref(a(DW_AT.DW_AT_specification)),
      declaration: flag(DW_AT.DW_AT_declaration),
      external: flag(DW_AT.DW_AT_external),
      inline: num(a(DW_AT.DW_AT_inline)),
      declFile: num(a(DW_AT.DW_AT_decl_file)),
      declLine: num(a(DW_AT.DW_AT_decl_line)),
    });
  }
  return { subprograms };
}

/** The nearest enclosing DIE that is the subprogram or one of its inlined copies. */
function container(parents: readonly number[], builders: ReadonlyMap<number, Builder>, j: number): number {
  let p = parents[j]!;
  // Every DIE between a subprogram and its end descends from it, so this stops there at the latest.
  while (p >= 0 && !builders.has(p)) p = parents[p]!;
  return p;
}

function common(unit: Unit, b: Builder): FunctionDie {
  const a = (at: number) => b.attrs.find((x) => x.at === at);
  const entry = a(DW_AT.DW_AT_entry_pc);
  return {
    offset: b.offset,
    abstractOrigin: ref(a(DW_AT.DW_AT_abstract_origin)),
    ranges: unit.rangesOf(b.attrs),
    entryPc: entry?.class === "address" ? entry.value : undefined,
    inlined: b.inlined,
    callSites: b.callSites,
  };
}

function callSite(offset: number, attrs: readonly Attribute[]): DwarfCallSite {
  const a = (at: number) => attrs.find((x) => x.at === at);
  const pc = a(DW_AT.DW_AT_call_return_pc) ?? a(DW_AT.DW_AT_low_pc);
  const tail = a(DW_AT.DW_AT_call_tail_call) ?? a(DW_AT.DW_AT_GNU_tail_call);
  return {
    offset,
    returnPc: pc?.class === "address" ? pc.value : undefined,
    origin: ref(a(DW_AT.DW_AT_call_origin) ?? a(DW_AT.DW_AT_abstract_origin)),
    tailCall: tail?.class === "flag" && tail.value,
  };
}
