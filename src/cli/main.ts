#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerApply } from "./commands/apply.js";
import { registerBuild } from "./commands/build.js";
import { registerCalls } from "./commands/calls.js";
import { registerCallsite } from "./commands/callsite.js";
import { registerCflags } from "./commands/cflags.js";
import { registerCheck } from "./commands/check.js";
import { registerDiff } from "./commands/diff.js";
import { registerRevert } from "./commands/revert.js";
import { registerStatus } from "./commands/status.js";
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

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    process.exitCode = reportError(e, json);
  }
}
