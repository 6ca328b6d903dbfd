import type { Command } from "commander";
import { hex } from "../../core/hex.js";
import { type ApplyResult, applyPatch } from "../../live/apply-patch.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

function micros(ns: number): string {
  return `${(ns / 1000).toFixed(0)} µs`;
}

export function renderApply(r: ApplyResult): string {
  let out = r.dryRun
    ? `dry run: would apply patch ${r.patch} to pid ${r.pid}\n`
    : `applied patch ${r.patch} to pid ${r.pid}\n`;
  out += `  module ${r.module} (bias ${hex(r.bias)}), patch code at ${hex(r.mapping.address)} (${r.mapping.size} bytes)\n`;
  for (const f of r.functions)
    out += `  ${f.name} at ${hex(f.address)} → ${hex(f.replacement)} (${f.kind})\n`;
  for (const w of r.writes) out += `  write ${hex(w.address)}: ${w.before} → ${w.after}\n`;
  if (r.pause !== undefined) {
    out += `  process stopped for ${micros(r.pause.windowNs)} (stop ${micros(r.pause.stopNs)}, work ${micros(r.pause.heldNs)}, resume ${micros(r.pause.resumeNs)})\n`;
  }
  return out;
}

export function registerApply(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("apply")
    .summary("load a patch into a running process")
    .description(
      "Load PATCH into process PID and redirect the functions it replaces, atomically: the build-id and\n" +
        "the bytes at every site are verified first, every thread is stopped for the change only, and any\n" +
        "failure leaves the process exactly as it was. Recorded in a journal for graft status and revert.",
    )
    .argument("<pid>", "process to patch")
    .argument("<patch>", "patch file from graft build")
    .option("-n, --dry-run", "verify and plan, change nothing", false)
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft apply $(pidof server) fix.graft            patch it now
  graft apply 4242 fix.graft --dry-run             what would change, and would it work?
  graft apply 4242 fix.graft --json | jq .pause    how long the process was stopped`,
    )
    .action((pid: string, patch: string, opts: { dryRun: boolean; json: boolean }) =>
      run(() => {
        const result = applyPatch(parsePid(pid), patch, { dryRun: opts.dryRun });
        printResult(result, opts.json, renderApply);
      }),
    );
}
