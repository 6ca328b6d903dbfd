#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerApply } from "./commands/apply.js";
import { registerBreak } from "./commands/break.js";
import { registerBuild } from "./commands/build.js";
import { registerCalls } from "./commands/calls.js";
import { registerCallsite } from "./commands/callsite.js";
import { registerCflags } from "./commands/cflags.js";
import { registerCheck } from "./commands/check.js";
import { registerDiff } from "./commands/diff.js";
import { registerImpact } from "./commands/impact.js";
import { registerKeygen } from "./commands/keygen.js";
import { registerLog } from "./commands/log.js";
import { registerProbes } from "./commands/probes.js";
import { registerRevert } from "./commands/revert.js";
import { registerSign } from "./commands/sign.js";
import { registerStatus } from "./commands/status.js";
import { registerTrace } from "./commands/trace.js";
import { registerVerify } from "./commands/verify.js";
import { EXIT } from "./exit-codes.js";
import { reportError } from "./output.js";

const program = new Command();
program
  .name("graft")
  .description(
    "Find the room compilers leave for patching, and live-patch and trace running processes through it.",
  )
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage and examples)")
  .exitOverride()
  .option(
    "--audit-log <file>",
    "append the audit log here (also $GRAFT_AUDIT_LOG; default: in the state dir)",
  )
  .hook("preAction", () => {
    const file = program.opts<{ auditLog?: string }>().auditLog;
    if (file !== undefined) process.env.GRAFT_AUDIT_LOG = file;
  })
  .addHelpText(
    "after",
    `
Examples:
  graft check ./server                       which functions can be patched live, and how
  graft cflags --only                        flags for a patchable build
  graft build fix.c --target ./server        compile a fix into fix.graft
  graft apply $(pidof server) fix.graft      patch the running process (same PID)
  graft status $(pidof server)               what is applied
  graft revert $(pidof server)               undo it
  graft calls ./server --to log_request      where it is called, and which calls can be rewritten live
  graft callsite $(pidof server) --to log_request --nop    silence those calls (--restore: back)
  graft impact ./server parse_header         every function to patch along with parse_header
  graft log --last 20                        every change graft made (who, when, which process, result)
  graft keygen -o ops && graft sign fix.graft --key ops.key    sign a patch (verify: graft verify)
  graft probes ./server                      USDT probes and the functions graft trace can hook
  graft trace $(pidof server) -F 'handle_*'  call tree with durations until Ctrl-C
  graft break $(pidof server) handle_request registers, arguments and backtrace of the next call

Exit codes: 0 ok, 1 failed (target unchanged), 2 usage, 3 refused by a safety check, 70 internal error.
Set GRAFT_DEBUG=1 for stack traces.`,
  );

const json = process.argv.includes("--json");
/** Run a command body; every error ends here as one line and an exit code. */
async function run(action: () => void | Promise<void>): Promise<void> {
  try {
    await action();
  } catch (e) {
    process.exitCode = reportError(e, json);
  }
}

registerCheck(program, run);
registerCflags(program, run);
registerCalls(program, run);
registerDiff(program, run);
registerBuild(program, run);
registerApply(program, run);
registerRevert(program, run);
registerStatus(program, run);
registerCallsite(program, run);
registerImpact(program, run);
registerKeygen(program, run);
registerSign(program, run);
registerVerify(program, run);
registerLog(program, run);
registerProbes(program, run);
registerTrace(program, run);
registerBreak(program, run);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    process.exitCode = reportError(e, json);
  }
}
