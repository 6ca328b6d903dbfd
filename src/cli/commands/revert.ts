import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { revertPatch } from "../../live/revert-patch.js";
import { fleetChangeOptions, parseCount, runFleetCommand } from "../fleet-command.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";
import { parseConsistency } from "./apply.js";

export function registerRevert(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  const command = program
    .command("revert")
    .summary("undo a patch in a running process")
    .description(
      "Put back the original bytes of a patch's sites and unmap its code. Without PATCH, the last patch\n" +
        "applied. Works after a crash of the graft that applied it (the journal says what to undo).",
    )
    .argument("[pid]", "patched process (omit with --all-of)")
    .argument("[patch]", "patch id (or prefix) or patch file; default the last applied")
    .option("-a, --all", "revert every patch, last first", false)
    .option("--all-of <bin>", "revert in every process that maps BIN (matched by build-id)");
  fleetChangeOptions(command, "reverted")
    .option(
      "--consistency <mode>",
      "default, or quiescent: no thread running or with a frame in the patch's code",
      "default",
    )
    .option("--timeout <ms>", "how long quiescent waits for the patch's code to be free", "5000")
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft revert 4242                    undo the last patch
  graft revert 4242 fix.graft          undo that patch (refused if a later one builds on it)
  graft revert 4242 --all              back to the original code
  graft revert --all-of /usr/sbin/server --all --jobs 2     every process of that binary`,
    )
    .action(
      (
        pid: string | undefined,
        patch: string | undefined,
        opts: {
          all: boolean;
          json: boolean;
          allOf?: string;
          jobs: string;
          continueOnError: boolean;
          memorySample?: string;
          consistency: string;
          timeout: string;
        },
      ) =>
        run(async () => {
          const consistency = parseConsistency(opts.consistency);
          const timeoutMs = parseCount(opts.timeout, "--timeout");
          if (opts.allOf !== undefined) {
            if (patch !== undefined)
              throw new GraftError("USAGE", "with --all-of give at most a patch (no PID)");
            const which = pid;
            if (opts.all && which !== undefined)
              throw new GraftError("USAGE", "give a patch or --all, not both");
            await runFleetCommand(
              opts.allOf,
              {
                kind: "revert",
                ...(which === undefined ? {} : { patch: which }),
                all: opts.all,
                consistency,
                timeoutMs,
              },
              opts,
              "reverting",
            );
            return;
          }
          if (pid === undefined) throw new GraftError("USAGE", "give a PID (or --all-of BIN)");
          if (opts.all && patch !== undefined)
            throw new GraftError("USAGE", "give a patch or --all, not both");
          const result = revertPatch(parsePid(pid), {
            ...(patch === undefined ? {} : { patch }),
            all: opts.all,
            consistency,
            timeoutMs,
          });
          printResult(result, opts.json, (r) =>
            r.reverted
              .map((p) =>
                p.kind === "callsite"
                  ? `reverted call-site change ${p.id} (in ${p.functions.join(", ")}) in pid ${r.pid}: ${p.restored} site write(s) restored\n`
                  : `reverted patch ${p.id} (${p.functions.join(", ")}) in pid ${r.pid}: ${p.restored} site write(s) restored, code ${p.unmapped ? "unmapped" : "kept mapped (a thread may still return into it)"}\n`,
              )
              .join(""),
          );
        }),
    );
}
