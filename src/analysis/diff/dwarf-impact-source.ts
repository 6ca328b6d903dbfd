import { GraftError } from "../../core/errors.js";
import { readDwarf } from "../../formats/dwarf/dwarf.js";
import type { Elf } from "../../formats/elf/elf.js";
import { ImpactGraph } from "../impact.js";
import type { ImpactSource } from "./impacted-closure.js";

/** What the original build's DWARF adds to a diff's impacted closure, and what it could not see. */
export interface DwarfImpact {
  /** Undefined when the build has no DWARF. */
  readonly source: ImpactSource | undefined;
  /** Why the closure may miss functions (no DWARF, split DWARF, IPA passes that leave no trace). */
  readonly warnings: () => readonly string[];
}

/**
 * The DWARF-based impact of the ORIGINAL build (the one running: its functions hold the old copies):
 * every function holding an inlined copy of a changed function (DW_TAG_inlined_subroutine,
 * transitively), and copies DWARF names as concrete instances of it under another symbol. A caller
 * whose inlined copy compiles to the same code in both builds (the fix is in a branch its arguments
 * never take) is seen only here, and still must be replaced with the function. The graph is built on
 * first use: a diff with no changed function never reads the DWARF.
 */
export function dwarfImpact(orig: Elf): DwarfImpact {
  const dwarf = readDwarf(orig);
  if (dwarf === undefined)
    return {
      source: undefined,
      warnings: () => [
        "no DWARF in the original build: functions holding an inlined copy of a changed function could not be seen (rebuild with -g)",
      ],
    };
  let graph: ImpactGraph | undefined;
  const seen = new Set<string>();
  return {
    source: {
      impactedBy(name: string) {
        graph ??= new ImpactGraph(orig, dwarf);
        let report: ReturnType<ImpactGraph["impactOf"]>;
        try {
          report = graph.impactOf(name);
        } catch (e) {
          // A symbol DWARF and the symbol table both lack (a local label, a section name): no copies.
          if (e instanceof GraftError && e.code === "UNKNOWN_SYMBOL") return [];
          throw e;
        }
        for (const w of report.warnings) seen.add(w);
        const out: { name: string; reason: string }[] = [];
        for (const f of report.functions) {
          if (f.name === name || f.aliases.includes(name)) continue;
          for (const r of f.reasons) {
            if (r.kind === "inlined") out.push({ name: f.name, reason: `holds an inlined copy of ${r.of}` });
            // Suffixed clones and cold parts are the symbol source's; DWARF adds the unnamed ones.
            else if (r.kind === "clone" && r.suffixes === undefined)
              out.push({ name: f.name, reason: `a copy of ${r.of} (DWARF concrete instance)` });
          }
        }
        return out;
      },
    },
    warnings: () => [...seen],
  };
}
