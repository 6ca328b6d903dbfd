import { type Command, Option } from "commander";
import {
  type CflagsAdvice,
  type CflagsCompiler,
  type CflagsKind,
  cflagsAdvice,
} from "../../analysis/cflags.js";
import { printResult } from "../output.js";

export function registerCflags(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("cflags")
    .summary("print the compiler flags that make a build patchable")
    .addOption(
      new Option("--compiler <name>", "compiler of the build")
        .choices(["gcc", "clang", "rustc"])
        .default("gcc"),
    )
    .addOption(
      new Option("--kind <kind>", "kind of patch site to reserve")
        .choices(["sled", "fentry", "hotpatch"])
        .default("sled"),
    )
    .option("--only", "print just the flags on one line (for CFLAGS=$(graft cflags --only))", false)
    .option("--json", "print as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft cflags                              gcc, NOP sled (the recommended layout), one flag per line with why
  CFLAGS="$(graft cflags --only)" make      build with them
  graft cflags --compiler clang --kind fentry
  graft cflags --compiler rustc --json`,
    )
    .action((opts: { compiler: CflagsCompiler; kind: CflagsKind; only: boolean; json: boolean }) =>
      run(() => {
        const advice = cflagsAdvice(opts.compiler, opts.kind);
        printResult(advice, opts.json, (a) =>
          opts.only ? `${a.flags.flatMap((f) => f.flags).join(" ")}\n` : renderCflags(a),
        );
      }),
    );
}

function renderCflags(a: CflagsAdvice): string {
  const width = Math.max(...a.flags.map((f) => f.flags.join(" ").length));
  let out = `# ${a.compiler}, ${a.kind} sites\n`;
  for (const f of a.flags) out += `${f.flags.join(" ").padEnd(width)}  # ${f.why}\n`;
  for (const n of a.notes) out += `# note: ${n}\n`;
  return out;
}
