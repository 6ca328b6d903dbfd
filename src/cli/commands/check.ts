import type { Command } from "commander";
import { type CheckReport, checkElf, type FunctionReport } from "../../analysis/check.js";
import type { RedirectSite } from "../../analysis/site-types.js";
import { getArchForMachine } from "../../arch/index.js";
import { hex } from "../../core/hex.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import { printResult } from "../output.js";

export function registerCheck(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("check")
    .summary("list every function's patch sites and judge whether it can be redirected")
    .description(
      "Find every place the compiler left for patching (sleds, fentry calls, hotpatch padding) in an ELF\n" +
        "executable, PIE, shared library or .o, and say per function whether and how it can be redirected\n" +
        "at run time, with every reason why not.",
    )
    .argument("<file>", "ELF file to analyse")
    .option("-f, --function <glob>", "only functions whose name matches the glob")
    .option("--summary", "print only the summary", false)
    .option("--explain", "under each function: how the redirect is written, and why other kinds fail", false)
    .option("--json", "print the full report as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft check ./server                      every function, one line each, then a summary
  graft check ./server -f 'handle_*'        only the request handlers
  graft check libfoo.so --summary           how patchable is this library?
  graft check foo.o --json | jq '.functions[] | select(.verdict.redirectable | not)'
  graft check ./arm64-server -f main --explain   how main's redirect is written (b, literal load, BTI)`,
    )
    .action((file: string, opts: { function?: string; summary: boolean; explain: boolean; json: boolean }) =>
      run(() => {
        const elf = readElfFile(file);
        const arch = getArchForMachine(elf.header.e_machine, file);
        const report = checkElf(
          elf,
          arch,
          opts.function === undefined ? {} : { functionGlob: opts.function },
        );
        printResult(report, opts.json, (r) => renderCheck(r, opts.summary, opts.explain));
      }),
    );
}

function siteText(s: RedirectSite): string {
  const d = s.detail;
  switch (d.kind) {
    case "sled":
      return `sled ${d.before}+${d.after}${d.verified ? "" : " (damaged)"}`;
    case "fentry":
      return `fentry ${d.state}${d.callee ? ` ${d.callee}` : ""}${d.recorded ? " (recorded)" : ""}`;
    case "hotpatch":
      return `pad ${d.padding}, first insn ${d.firstInstructionLength} B`;
    case "overwrite":
      return `overwrite ${s.length} B: ${d.instructions.join("; ")}`;
  }
}

function functionLine(f: FunctionReport, width: number): string {
  const best = f.sites.find((s) => s.kind === f.verdict.best && s.problems.length === 0);
  const verdict = f.verdict.best ?? "NO";
  const detail =
    best !== undefined
      ? siteText(best)
      : (f.verdict.reasons.find((r) => !r.startsWith("sled: none") && !r.startsWith("fentry: no ")) ??
        f.verdict.reasons[0] ??
        "");
  return `${hex(f.address).padStart(width)}  ${verdict.padEnd(9)} ${String(f.size).padStart(6)}  ${f.name}  ${detail}\n`;
}

/** The human rendering of a check report: one line per function, then the summary. */
export function renderCheck(r: CheckReport, summaryOnly: boolean, explain = false): string {
  let out = "";
  if (!summaryOnly) {
    const width = Math.max(10, ...r.functions.map((f) => hex(f.address).length));
    out += `${"ADDRESS".padStart(width)}  ${"VERDICT".padEnd(9)} ${"SIZE".padStart(6)}  FUNCTION  SITE / WHY NOT\n`;
    for (const f of r.functions) {
      out += functionLine(f, width);
      if (!explain) continue;
      for (const line of f.verdict.redirect) out += `${"".padStart(width)}    how: ${line}\n`;
      for (const line of f.verdict.reasons) out += `${"".padStart(width)}    not: ${line}\n`;
    }
    for (const u of r.usdt) {
      out += `${hex(u.address).padStart(width)}  ${"usdt".padEnd(9)} ${"".padStart(6)}  ${u.provider}:${u.name}  in ${u.function ?? "?"}, ${u.arguments.length} arg(s)${u.semaphore !== 0n ? `, semaphore ${hex(u.semaphore)}` : ""}\n`;
    }
    out += "\n";
  }
  const s = r.summary;
  out += `${r.file ?? "<bytes>"}: ${r.kind}, ${r.machine}, build-id ${r.buildId ?? "none"}\n`;
  out += `functions: ${s.functions}, redirectable: ${s.redirectable} (${s.percentRedirectable}%)\n`;
  out += `best kind: sled ${s.bestKind.sled}, fentry ${s.bestKind.fentry}, hotpatch ${s.bestKind.hotpatch}, overwrite ${s.bestKind.overwrite}, none ${s.bestKind.none}\n`;
  out += `sites found: sled ${s.sitesFound.sled}, fentry ${s.sitesFound.fentry}; usdt probes: ${s.usdtProbes}; patching room: ${s.roomBytes} bytes\n`;
  for (const w of r.warnings) out += `warning: ${w}\n`;
  return out;
}
