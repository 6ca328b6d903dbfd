import type { Command } from "commander";
import { type CallSite, type CallSiteReport, listCallSites } from "../../analysis/list-call-sites.js";
import { getLiveArchForMachine } from "../../arch/index.js";
import { hex } from "../../core/hex.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import { printResult } from "../output.js";

export function registerCalls(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("calls")
    .summary("list the call sites of a file and whether each can be rewritten live")
    .description(
      "List every direct call in an ELF file (call rel32, call through a GOT slot,\n" +
        "the -pg -mfentry hook or its NOP): caller, address, length, callee, and\n" +
        "whether graft callsite may NOP it out or retarget it in a running process,\n" +
        "with every reason why not.",
    )
    .argument("<file>", "ELF file to analyse")
    .option("--to <func>", "only calls to this function (name, name@plt)")
    .option("--from <glob>", "only calls made by functions whose name matches the glob")
    .option("--json", "print the full report as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft calls ./server                          every call site, one line each
  graft calls ./server --to log_request         where log_request is called from
  graft calls ./server --from 'handle_*'        what the request handlers call
  graft calls ./server --to puts --json | jq '.sites[] | select(.rewritable) | .address'`,
    )
    .action((file: string, opts: { to?: string; from?: string; json: boolean }) =>
      run(() => {
        const elf = readElfFile(file);
        // Call sites are judged for rewriting in a live process (register writes, result use): x86-64 only.
        const arch = getLiveArchForMachine(elf.header.e_machine, file);
        const report = listCallSites(elf, arch, {
          ...(opts.to === undefined ? {} : { to: opts.to }),
          ...(opts.from === undefined ? {} : { from: opts.from }),
        });
        printResult(report, opts.json, renderCalls);
      }),
    );
}

/** What a site allows: `ok`, `retarget` (the result is used), or `NO`. */
function verdict(s: CallSite): string {
  if (!s.rewritable) return "NO";
  return s.resultUse?.used === true ? "retarget" : "ok";
}

/** The human rendering: one line per site, then a summary. */
export function renderCalls(r: CallSiteReport): string {
  const width = r.sites.reduce((w, s) => Math.max(w, hex(s.address).length), 10); // no spread: 10⁶ sites overflow the stack
  let out = `${"ADDRESS".padStart(width)}  LEN  ${"VERDICT".padEnd(8)}  CALLER → CALLEE  WHY\n`;
  for (const s of r.sites) {
    const callee =
      s.form === "nop" ? "(fentry nop)" : (s.targetName ?? (s.target === undefined ? "?" : hex(s.target)));
    const why = !s.rewritable
      ? s.problems.join("; ")
      : s.resultUse?.used === true
        ? `result used: ${s.resultUse.reason}`
        : "";
    out += `${hex(s.address).padStart(width)}  ${String(s.length).padStart(3)}  ${verdict(s).padEnd(8)}  ${s.caller} → ${callee}${s.fentry ? " (fentry)" : ""}${why === "" ? "" : `  ${why}`}\n`;
  }
  out += `\n${r.file ?? "<bytes>"}: ${r.summary.sites} call site(s), ${r.summary.rewritable} rewritable (${r.summary.resultUsed} of them only by retargeting: the caller uses the result)\n`;
  for (const w of r.warnings) out += `warning: ${w}\n`;
  return out;
}
