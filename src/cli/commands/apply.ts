import type { Command } from "commander";
import { hex } from "../../core/hex.js";
import { type ApplyResult, applyPatch } from "../../live/apply-patch.js";
import { loadTrustedKeys } from "../../live/patch-signature.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

function micros(ns: number): string {
  return `${(ns / 1000).toFixed(0)} µs`;
}

export function renderApply(r: ApplyResult): string {
  let out = r.dryRun
    ? `dry run: would apply patch ${r.patch} to pid ${r.pid}\n`
    : `applied patch ${r.patch} to pid ${r.pid}\n`;
  for (const n of r.notes) out += `  note: ${n}\n`;
  if (r.signer !== undefined) out += `  signed by key ${r.signer.key} (${r.signer.keyFile})\n`;
  out += `  module ${r.module} (bias ${hex(r.bias)}), patch code at ${hex(r.mapping.address)} (${r.mapping.size} bytes)\n`;
  for (const f of r.functions)
    out += `  ${f.name} at ${hex(f.address)} → ${hex(f.replacement)} (${f.kind})\n`;
  for (const w of r.writes) out += `  write ${hex(w.address)}: ${w.before} → ${w.after}\n`;
  if (r.pause !== undefined) {
    out += `  process stopped for ${micros(r.pause.windowNs)} (stop ${micros(r.pause.stopNs)}, work ${micros(r.pause.heldNs)}, resume ${micros(r.pause.resumeNs)})\n`;
  }
  return out;
}

interface ApplyFlags {
  dryRun: boolean;
  json: boolean;
  requireSignature: boolean;
  pubkey?: string[];
  signature?: string;
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
    .option(
      "--require-signature",
      "refuse unless PATCH.sig is a valid signature by a trusted key (also GRAFT_REQUIRE_SIGNATURE=1)",
      false,
    )
    .option(
      "-p, --pubkey <pub>",
      "trusted public key(s); default every .pub in $GRAFT_TRUSTED_KEYS (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option("-s, --signature <sig>", "signature file (default: PATCH.sig)")
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft apply $(pidof server) fix.graft            patch it now
  graft apply 4242 fix.graft --dry-run             what would change, and would it work?
  graft apply 4242 fix.graft --json | jq .pause    how long the process was stopped
  graft apply --require-signature --pubkey ops.pub 4242 fix.graft   only a patch ops signed`,
    )
    .action((pid: string, patch: string, opts: ApplyFlags) =>
      run(() => {
        // Giving a key means checking with it; GRAFT_REQUIRE_SIGNATURE=1 makes it the host's policy.
        const require =
          opts.requireSignature || opts.pubkey !== undefined || process.env.GRAFT_REQUIRE_SIGNATURE === "1";
        const result = applyPatch(parsePid(pid), patch, {
          dryRun: opts.dryRun,
          ...(require ? { trustedKeys: loadTrustedKeys(opts.pubkey) } : {}),
          ...(opts.signature === undefined ? {} : { signatureFile: opts.signature }),
        });
        printResult(result, opts.json, renderApply);
      }),
    );
}
