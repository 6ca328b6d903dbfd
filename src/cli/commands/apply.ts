import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import { type ApplyResult, applyPatch } from "../../live/apply-patch.js";
import type { Consistency } from "../../live/consistency.js";
import { readPatchFile } from "../../live/patch-file.js";
import { loadTrustedKeys, verifyPatchSignature } from "../../live/patch-signature.js";
import { fleetChangeOptions, parseCount, runFleetCommand } from "../fleet-command.js";
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
  allOf?: string;
  jobs: string;
  continueOnError: boolean;
  memorySample?: string;
  consistency: string;
  timeout: string;
  requireSignature: boolean;
  pubkey?: string[];
  signature?: string;
}

export function registerApply(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  const command = program
    .command("apply")
    .summary("load a patch into a running process")
    .description(
      "Load PATCH into process PID and redirect the functions it replaces, atomically: the build-id and\n" +
        "the bytes at every site are verified first, every thread is stopped for the change only, and any\n" +
        "failure leaves the process exactly as it was. Recorded in a journal for graft status and revert.",
    )
    .argument("[pid]", "process to patch (omit with --all-of)")
    .argument("[patch]", "patch file from graft build")
    .option("-n, --dry-run", "verify and plan, change nothing", false)
    .option("--all-of <bin>", "patch every process that maps BIN (matched by build-id, deleted files too)");
  fleetChangeOptions(command, "patched")
    .option(
      "--consistency <mode>",
      "default (no thread inside rewritten bytes) or quiescent (no thread running or with a frame in a replaced function)",
      "default",
    )
    .option("--timeout <ms>", "how long quiescent waits for the functions to be free", "5000")
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
  graft apply 4242 fix.graft --consistency quiescent --timeout 10000
                                                   wait until no thread is inside a replaced function
  graft apply --all-of /usr/sbin/server fix.graft --jobs 2 --continue-on-error
                                                   every process of that binary, a table at the end
  graft apply --all-of /usr/sbin/server fix.graft --jobs 2 --memory-sample 50
                                                   private memory measured on 50 of them only
  graft apply --require-signature --pubkey ops.pub 4242 fix.graft   only a patch ops signed`,
    )
    .action((pid: string | undefined, patch: string | undefined, opts: ApplyFlags) =>
      run(async () => {
        const consistency = parseConsistency(opts.consistency);
        const timeoutMs = parseCount(opts.timeout, "--timeout");
        // Giving a key means checking with it; GRAFT_REQUIRE_SIGNATURE=1 makes it the host's policy.
        const require =
          opts.requireSignature || opts.pubkey !== undefined || process.env.GRAFT_REQUIRE_SIGNATURE === "1";
        const trustedKeys = require ? loadTrustedKeys(opts.pubkey) : undefined;
        if (opts.allOf !== undefined) {
          const file = patch ?? pid;
          if (file === undefined || (patch !== undefined && pid !== undefined))
            throw new GraftError("USAGE", "with --all-of give the patch file alone (no PID)");
          if (opts.dryRun) throw new GraftError("USAGE", "--dry-run is for one process");
          // Checked once, before any process is touched; the fleet then applies the bytes it reads.
          if (trustedKeys !== undefined)
            verifyPatchSignature(readPatchFile(file), trustedKeys, opts.signature);
          await runFleetCommand(
            opts.allOf,
            { kind: "apply", patch: file, consistency, timeoutMs },
            opts,
            "applying",
          );
          return;
        }
        if (pid === undefined || patch === undefined)
          throw new GraftError("USAGE", "give a PID and a patch file (or --all-of BIN PATCH)");
        const result = applyPatch(parsePid(pid), patch, {
          dryRun: opts.dryRun,
          consistency,
          timeoutMs,
          ...(trustedKeys === undefined ? {} : { trustedKeys }),
          ...(opts.signature === undefined ? {} : { signatureFile: opts.signature }),
        });
        printResult(result, opts.json, renderApply);
      }),
    );
}

/** `--consistency` value. */
export function parseConsistency(value: string): Consistency {
  if (value !== "default" && value !== "quiescent")
    throw new GraftError("USAGE", `--consistency must be default or quiescent, not ${value}`);
  return value;
}
