import type { Command } from "commander";
import type { BuildDiff } from "../../analysis/diff/diff-builds.js";
import { diffBuilds } from "../../analysis/diff/diff-builds.js";
import { getArchForMachine } from "../../arch/index.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import { EXIT } from "../exit-codes.js";
import { printResult } from "../output.js";

/** What `graft diff --json` prints: the diff without the views it was computed from. */
export function diffReport(d: BuildDiff): Omit<BuildDiff, "pairs" | "views"> {
  const { pairs: _p, views: _v, ...rest } = d;
  return rest;
}

export function registerDiff(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("diff")
    .summary("what changed between two builds, and whether a live patch can carry it")
    .description(
      "Compare two builds of one program (two .o files or two linked files).\n" +
        "Functions and data are paired by name after normalisation (clone\n" +
        "counters, ThinLTO .llvm.<hash>, .LC literals by content) and compared\n" +
        "instruction by instruction, every address by what it points at.\n" +
        "Reports changed, new and removed functions and data, changes of an\n" +
        "immediate only (a __LINE__ shift), the impacted closure (clones, their\n" +
        "callers, aliases, and with -g every function holding an inlined copy of a\n" +
        "changed one, from the original's DWARF), and what a live patch cannot do\n" +
        "(exit status 3).",
    )
    .argument("<orig>", "the original build (.o or linked)")
    .argument("<patched>", "the patched build, same kind")
    .option("--json", "print the report as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft diff orig/server.o patched/server.o          what the fix changes in one translation unit
  graft diff server.orig server                      two linked builds
  graft diff a.o b.o --json | jq '.functions.changed[].name'`,
    )
    .action((orig: string, patched: string, opts: { json: boolean }) =>
      run(() => {
        const a = readElfFile(orig);
        const b = readElfFile(patched);
        const arch = getArchForMachine(a.header.e_machine, orig);
        const d = diffBuilds(a, b, arch, { origLabel: orig, patchedLabel: patched });
        printResult(diffReport(d), opts.json, renderDiff);
        if (d.refusals.length > 0) process.exitCode = EXIT.REFUSED;
      }),
    );
}

const qualified = (u: { name: string; local: boolean; file: string | undefined }): string =>
  u.local && u.file !== undefined ? `${u.name}@${u.file}` : u.name;

/** The human rendering: one line per difference, then a summary. */
export function renderDiff(d: ReturnType<typeof diffReport>): string {
  let out = "";
  for (const f of d.functions.changed)
    out += `changed   ${qualified(f)}${f.patchedName !== f.name ? ` (now ${f.patchedName})` : ""}  at +${f.firstDifference.offset}: ${f.firstDifference.orig}  →  ${f.firstDifference.patched}${f.size !== f.patchedSize ? `  (${f.size} → ${f.patchedSize} bytes)` : ""}\n`;
  for (const f of d.functions.lineOnly)
    out += `line-only ${qualified(f)}  only immediates differ: ${f.immediates.map((i) => `+${i.offset} ${i.orig}→${i.patched}`).join(", ")}\n`;
  for (const f of d.functions.added) out += `new       ${qualified(f)} (${f.section})\n`;
  for (const f of d.functions.removed) out += `removed   ${qualified(f)}\n`;
  for (const v of d.data.changed)
    out += `changed   data ${qualified(v)} (${v.section}${v.writable ? ", writable" : ", read-only"}${v.size !== v.patchedSize ? `, ${v.size} → ${v.patchedSize} bytes` : ""})\n`;
  for (const v of d.data.added) out += `new       data ${qualified(v)} (${v.section}, ${v.size} bytes)\n`;
  for (const v of d.data.removed) out += `removed   data ${qualified(v)}\n`;
  for (const f of d.impacted) out += `impacted  ${f.name}: ${f.reasons.join("; ")}\n`;
  for (const r of d.refusals) out += `refused   ${r}\n`;
  for (const w of d.warnings) out += `warning   ${w}\n`;
  const n = d.functions;
  out += `\n${n.changed.length} changed, ${n.lineOnly.length} line-only, ${n.added.length} new, ${n.removed.length} removed function(s) (${n.unchanged} unchanged); ${d.data.changed.length} changed, ${d.data.added.length} new, ${d.data.removed.length} removed data (${d.data.unchanged} unchanged); ${d.impacted.length} impacted${d.refusals.length > 0 ? `; ${d.refusals.length} refusal(s): a live patch cannot carry this change` : ""}\n`;
  return out;
}
