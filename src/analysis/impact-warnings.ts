import type { CompileUnit } from "../formats/dwarf/dwarf.js";
import { optimizes, parseProducer } from "./producer-flags.js";

export interface ImpactEvidence {
  readonly hasDwarf: boolean;
  /** Split-DWARF skeleton units: their DIEs are in .dwo files graft does not read. */
  readonly skeletonUnits: number;
  /** The compile units the impacted functions come from. */
  readonly units: readonly CompileUnit[];
  /** Impacted functions DWARF says nothing about (found by name only). */
  readonly functionsWithoutDwarf: number;
}

/**
 * Why an impacted set may be incomplete. GCC's `-flive-patching=inline-clone` keeps only the
 * optimisations whose effect is visible as an inlined copy or a named clone and turns off the IPA
 * passes that make callers depend on a callee's body with no trace in the binary (ipa-ra, pure-const,
 * ipa-reference, icf, ipa-vrp, bit-cp, modref…; gcc/opts.cc control_options_for_live_patching).
 * Without it, or with clang (no such option), the set may miss functions; say which units and why.
 */
export function impactWarnings(e: ImpactEvidence): string[] {
  if (!e.hasDwarf)
    return [
      "no DWARF (.debug_info): copies inlined into other functions cannot be seen; only clones found by name (.constprop, .isra, .part, .cold, .llvm.*) and aliases are listed (rebuild with -g)",
    ];
  const out: string[] = [];
  if (e.skeletonUnits > 0)
    out.push(
      `${e.skeletonUnits} unit(s) use split DWARF (-gsplit-dwarf): their DIEs are in .dwo files, which graft does not read`,
    );
  if (e.functionsWithoutDwarf > 0)
    out.push(`${e.functionsWithoutDwarf} function(s) have no DWARF and were matched by name only`);
  const groups = new Map<string, string[]>();
  for (const cu of e.units) {
    const why = unitWarning(cu);
    if (why === undefined) continue;
    const list = groups.get(why);
    const name = cu.name ?? `unit at 0x${cu.offset.toString(16)}`;
    if (list === undefined) groups.set(why, [name]);
    else if (!list.includes(name)) list.push(name);
  }
  for (const [why, names] of groups) {
    const shown = names.slice(0, 3).join(", ") + (names.length > 3 ? ` and ${names.length - 3} more` : "");
    out.push(`${shown}: ${why}`);
  }
  return out;
}

function unitWarning(cu: CompileUnit): string | undefined {
  if (cu.producer === undefined) return undefined;
  const p = parseProducer(cu.producer);
  if (p.compiler === "gcc") {
    if (p.lto)
      return "built by gcc LTO: -flive-patching is not supported with -flto, IPA effects across units are not recorded";
    if (!p.flagsRecorded)
      return "gcc recorded no flags (-gno-record-gcc-switches): cannot tell whether IPA optimisations ran";
    if (optimizes(p) && p.livePatching === undefined)
      return `built by gcc at -O${p.optimization} without -flive-patching=inline-clone: IPA passes (ipa-ra, pure-const, ipa-reference, icf, ipa-vrp, bit-cp, modref) may make callers depend on a function's body without inlining or cloning it, and leave no trace in the binary`;
    return undefined;
  }
  if (p.compiler === "clang") {
    if (p.flagsRecorded && !optimizes(p)) return undefined;
    return "built by clang, which has no -flive-patching: interprocedural constant propagation and attribute inference can change callers without a named clone (a specialised function keeps its name)";
  }
  return undefined;
}
