import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { patchStatus } from "../../live/patch-status.js";
import { traceStatus } from "../../live/trace-status.js";
import { runFleetCommand } from "../fleet-command.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

export function registerStatus(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("status")
    .summary("list the patches applied to a running process")
    .description(
      "Every patch graft applied to PID, from the journal, checked against the process's own bytes.",
    )
    .argument("[pid]", "process (omit with --all-of)")
    .option("--all-of <bin>", "every process that maps BIN (matched by build-id), one row each")
    .option("-j, --jobs <n>", "with --all-of: processes read at once", "1")
    .option("--json", "print as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft status 4242
  graft status $(pidof server) --json | jq '.patches[].sites'
  graft status --all-of /usr/sbin/server       a table: every process of that binary and its patches`,
    )
    .action((pid: string | undefined, opts: { json: boolean; allOf?: string; jobs: string }) =>
      run(async () => {
        if (opts.allOf !== undefined) {
          if (pid !== undefined) throw new GraftError("USAGE", "give a PID or --all-of, not both");
          await runFleetCommand(opts.allOf, { kind: "status" }, opts, "reading", true);
          return;
        }
        if (pid === undefined) throw new GraftError("USAGE", "give a PID (or --all-of BIN)");
        const target = parsePid(pid);
        const trace = traceStatus(target);
        const result = { ...patchStatus(target), ...(trace === undefined ? {} : { trace }) };
        printResult(result, opts.json, (r) => {
          const traced =
            trace === undefined
              ? ""
              : `  trace hooks of graft pid ${trace.by.pid} (attached ${trace.by.at}): ${trace.functions} function(s), ${trace.hooksIn} of ${trace.hooks} hook(s) in${trace.tracerRunning ? ", tracing" : ` ← that graft is gone: run graft trace --detach ${r.pid}`}\n`;
          if (r.patches.length === 0 && r.retired.length === 0)
            return `pid ${r.pid}: no patches applied by graft\n${traced}`;
          let out = `pid ${r.pid} (${r.exe}):\n`;
          for (const p of r.patches) {
            if (p.kind === "callsite") {
              const warn =
                p.journal !== "applied" || p.sites !== "applied"
                  ? `  ← ${p.journal}: run graft revert ${r.pid} ${p.id}`
                  : "";
              out += `  ${p.id}  ${p.source}  site ${p.sites}${warn}\n`;
              continue;
            }
            const warn =
              p.journal !== "applied" || p.sites !== "applied"
                ? `  ← ${p.journal}, sites ${p.sites}: run graft revert ${r.pid} ${p.id}`
                : "";
            out += `  ${p.id}  ${p.source}  ${p.functions.map((f) => `${f.name} (${f.kind})`).join(", ")}  sites ${p.sites}, code ${p.codeMapped ? `at ${p.mapping.address}` : "not mapped"}${warn}\n`;
          }
          for (const m of r.retired) out += `  retired code of ${m.patch} at ${m.address} (${m.reason})\n`;
          return out + traced;
        });
      }),
    );
}
