import { cloneOrigin, isColdPart } from "./normalize-name.js";

/** A function that must be replaced together with a changed one, and why. */
export interface ImpactedFunction {
  readonly name: string;
  /** Human reasons: `clone of f`, `alias of f`, `its cold part f.cold changed`. */
  readonly reasons: readonly string[];
}

/** A function of the original build as the closure needs it. */
export interface ClosureFunction {
  readonly name: string;
  readonly address: bigint;
  readonly aliases: readonly string[];
}

/**
 * Where impacted sets come from. The seam between `graft diff` and `graft impact`: the symbols
 * (`symbolImpactSource`, `cloneCallerImpactSource`) and the original build's DWARF
 * (`dwarfImpact` in dwarf-impact-source.ts: inlined copies from DW_TAG_inlined_subroutine);
 * `impactedClosure` closes over all of them.
 */
export interface ImpactSource {
  /**
   * Functions directly impacted when `name` is replaced, each with the reason; `changed` says
   * whether its code changed (a seed of the closure) or it is replaced only because it was impacted.
   */
  impactedBy(name: string, changed: boolean): readonly { name: string; reason: string }[];
}

/**
 * What the symbols of one build show: clones and split parts of a function (`f.constprop.0`,
 * `f.isra.1`, `f.part.2`, `f.cold`) belong to one family, a changed member impacts the others and
 * the function they came from; a changed `.cold` part impacts its parent (it is entered from the
 * middle of the parent and jumps back there); aliases at the same address are the same code.
 */
export function symbolImpactSource(functions: readonly ClosureFunction[]): ImpactSource {
  const byName = new Map<string, ClosureFunction>();
  const family = new Map<string, string[]>();
  for (const f of functions) {
    byName.set(f.name, f);
    const root = rootOf(f.name);
    const list = family.get(root) ?? [];
    list.push(f.name);
    family.set(root, list);
  }
  return {
    impactedBy(name: string, changed: boolean) {
      const out: { name: string; reason: string }[] = [];
      const f = byName.get(name);
      for (const a of f?.aliases ?? []) out.push({ name: a, reason: `alias of ${name}` });
      // Only a changed body spreads to its family: a function replaced for calling a changed clone
      // has clones of its own that are unaffected unless they call it too (the caller rule says so).
      if (!changed) return out;
      const root = rootOf(name);
      for (const other of family.get(root) ?? []) {
        if (other === name) continue;
        if (isColdPart(name) && other === cloneOrigin(name))
          out.push({ name: other, reason: `its cold part ${name} changed` });
        else if (root === name) out.push({ name: other, reason: `clone or part of ${name}` });
        else if (other === root) out.push({ name: other, reason: `${name} was cloned from it` });
        else out.push({ name: other, reason: `clone of ${root}, like ${name}` });
      }
      return out;
    },
  };
}

/**
 * Callers of a changed clone: the compiler chose a clone's interface itself (IPA-SRA drops or splits
 * parameters, IPA-CP bakes arguments in), so the other build's clone of the same name may take
 * other arguments; every direct caller must be replaced with it. `callers` maps a function to the
 * functions that call or jump to it.
 */
export function cloneCallerImpactSource(callers: (name: string) => readonly string[]): ImpactSource {
  return {
    impactedBy(name: string) {
      if (cloneOrigin(name) === undefined || isColdPart(name)) return [];
      return callers(name)
        .filter((c) => c !== name)
        .map((c) => ({ name: c, reason: `calls ${name}, a clone whose interface the compiler chose` }));
    },
  };
}

/** The function a clone chain starts from (`f.constprop.0.isra.1` → `f`). */
function rootOf(name: string): string {
  let n = name;
  for (let o = cloneOrigin(n); o !== undefined; o = cloneOrigin(n)) n = o;
  return n;
}

/**
 * The impacted closure of a set of changed functions: everything some source says must change with
 * them, transitively, minus the changed functions themselves. Sources see whether a function is a
 * changed one or only impacted (`ImpactSource.impactedBy`). A `.cold` part is impacted only
 * through its parent (the parent's replacement carries its own copy of it).
 */
export function impactedClosure(
  changed: readonly string[],
  sources: readonly ImpactSource[],
): ImpactedFunction[] {
  const reasons = new Map<string, string[]>();
  const seen = new Set(changed);
  const queue = [...changed];
  while (queue.length > 0) {
    const name = queue.shift()!;
    for (const source of sources) {
      for (const hit of source.impactedBy(name, changed.includes(name))) {
        if (changed.includes(hit.name)) continue;
        const list = reasons.get(hit.name) ?? [];
        // Every reason that starts at a changed function; of the transitive ones, the first.
        if (!list.includes(hit.reason) && (list.length === 0 || changed.includes(name)))
          list.push(hit.reason);
        reasons.set(hit.name, list);
        if (!seen.has(hit.name)) {
          seen.add(hit.name);
          queue.push(hit.name);
        }
      }
    }
  }
  return [...reasons.entries()]
    .map(([name, r]) => ({ name, reasons: r }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
