import type { Command } from "commander";
import { ImpactGraph, type ImpactMapReport, type ImpactReport } from "../../analysis/impact.js";
import { GraftError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import { readWithDebugFile } from "../../formats/dwarf/debug-link-file.js";
import { readDwarf } from "../../formats/dwarf/dwarf.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import { printResult } from "../output.js";

export function registerImpact(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("impact")
    .summary("list every function that must be patched with FUNC (inlined copies, clones, aliases)")
    .description(
      "The impacted set of a function: every function holding an inlined copy of it (DWARF\n" +
        "inlined subroutines, transitively), every clone (.constprop, .isra, .part, .cold,\n" +
        ".llvm.<hash>, or a DWARF concrete instance under another name) and every alias at the\n" +
        "same address. A live patch of FUNC must replace all of them. Says when the set may be\n" +
        "incomplete: no DWARF, split DWARF, or a build whose IPA passes leave no trace (gcc\n" +
        "without -flive-patching=inline-clone, clang), read from DW_AT_producer. A stripped\n" +
        "file's DWARF is read from its separate debug file (build-id or .gnu_debuglink under\n" +
        "/usr/lib/debug, as gdb finds it), e.g. from a -dbgsym package.",
    )
    .argument("<file>", "ELF file (executable, shared library or .o), built with -g for inlined copies")
    .argument(
      "[func]",
      "function name (source name, symbol, or a clone's symbol); name@file.c picks one static",
    )
    .option("--all", "the whole map: every function's impacted set, most impacted first", false)
    .option("--json", "print the full report as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft impact ./server parse_header            functions to patch along with parse_header
  graft impact ./server parse_header --json     the same, with reasons, addresses and sizes
  graft impact ./server scale@util.c            the static scale of util.c only
  graft impact ./server --all                   every function whose change reaches others
  graft impact libfoo.so --all --json | jq '.summary'`,
    )
    .action((file: string, func: string | undefined, opts: { all: boolean; json: boolean }) =>
      run(() => {
        if (opts.all === (func !== undefined))
          throw new GraftError("USAGE", "give either FUNC or --all", { subject: "graft impact" });
        const elf = readElfFile(file);
        // A stripped file: DWARF and the full symbol table from its separate debug file, if installed.
        const { debugElf, debugFile } = readWithDebugFile(elf);
        if (debugFile !== undefined && !opts.json) process.stderr.write(`graft: DWARF from ${debugFile}\n`);
        const symbols = debugElf !== undefined && elf.symbols().length === 0 ? debugElf : elf;
        const graph = new ImpactGraph(symbols, readDwarf(debugElf ?? elf));
        if (func !== undefined) printResult(graph.impactOf(func), opts.json, renderImpact);
        else printResult(graph.impactMap(), opts.json, renderImpactMap);
      }),
    );
}

/** One line per impacted function with why, then the total and any completeness warning. */
export function renderImpact(r: ImpactReport): string {
  const width = r.functions.reduce((w, f) => Math.max(w, hex(f.address).length), 10);
  let out = `${"ADDRESS".padStart(width)}  ${"SIZE".padStart(6)}  FUNCTION  WHY\n`;
  for (const f of r.functions) {
    const names = [f.name, ...f.aliases].join(" = ");
    const why = f.reasons
      .map((x) =>
        x.kind === "self"
          ? x.suffixes === undefined
            ? "itself"
            : `itself (renamed: ${x.suffixes.join(", ")})`
          : x.kind === "inlined"
            ? `inlines ${x.of}`
            : x.kind === "cold"
              ? `cold part of ${x.of}`
              : `clone of ${x.of}${x.suffixes === undefined ? "" : ` (${x.suffixes.join(", ")})`}`,
      )
      .join("; ");
    out += `${hex(f.address).padStart(width)}  ${String(f.size).padStart(6)}  ${names}  ${why}\n`;
  }
  const where = [...new Set(r.origins.map((o) => o.unit).filter((u) => u !== undefined))];
  out += `\n${r.function}${where.length > 0 ? ` (${where.join(", ")})` : ""}: ${r.functions.length} function(s) to patch, ${r.totalSize} bytes\n`;
  for (const w of r.warnings) out += `warning: may be incomplete: ${w}\n`;
  return out;
}

/** The functions whose change reaches others, most impacted first, then the summary. */
export function renderImpactMap(r: ImpactMapReport): string {
  let out = "";
  const seen = new Map<string, number>();
  for (const e of r.entries) seen.set(e.function, (seen.get(e.function) ?? 0) + 1);
  for (const e of r.entries) {
    if (e.others === 0) continue;
    // Static functions of one name in several files (a header's static inline): say which.
    const where =
      (seen.get(e.function) ?? 0) > 1 && e.unit !== undefined ? ` (${e.unit.replace(/^.*\//, "")})` : "";
    out += `${e.function}${where}: ${e.impacted.length} function(s), ${e.size} bytes: ${e.impacted.join(", ")}\n`;
  }
  const s = r.summary;
  out += `\n${r.file ?? "<bytes>"}: ${s.functions} function(s) with code, ${s.withImpact} reach other functions; ${s.totalImpacted} entries in all`;
  out += s.largest === undefined ? "\n" : `, largest: ${s.largest.function} (${s.largest.count})\n`;
  for (const w of r.warnings) out += `warning: may be incomplete: ${w}\n`;
  return out;
}
