import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { revertPatch } from "../../live/revert-patch.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

export function registerRevert(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("revert")
    .summary("undo a patch in a running process")
    .description(
      "Put back the original bytes of a patch's sites and unmap its code. Without PATCH, the last patch\n" +
        "applied. Works after a crash of the graft that applied it (the journal says what to undo).",
    )
    .argument("<pid>", "patched process")
    .argument("[patch]", "patch id (or prefix) or patch file; default the last applied")
    .option("-a, --all", "revert every patch, last first", false)
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft revert 4242                    undo the last patch
  graft revert 4242 fix.graft          undo that patch (refused if a later one builds on it)
  graft revert 4242 --all              back to the original code`,
    )
    .action((pid: string, patch: string | undefined, opts: { all: boolean; json: boolean }) =>
      run(() => {
        if (opts.all && patch !== undefined) throw new GraftError("USAGE", "give a patch or --all, not both");
        const result = revertPatch(parsePid(pid), {
          ...(patch === undefined ? {} : { patch }),
          all: opts.all,
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
