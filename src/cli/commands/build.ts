import type { Command } from "commander";
import { buildPatchFile } from "../../live/build-patch-file.js";
import { printResult } from "../output.js";

export function registerBuild(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("build")
    .summary("compile a fix into a patch for a binary")
    .description(
      "Compile FIX.c into a patch (an ELF object with a .graft manifest) for the binary that running\n" +
        "processes were started from. Every non-static function in the fix replaces the target's function\n" +
        "of that name; everything the fix declares but does not define binds to the target (its globals and\n" +
        "statics: use name@file.c via GRAFT_LOCAL from graft.h when ambiguous) or to its libraries (libc).",
    )
    .argument("<fix>", "C file holding the fixed function(s)")
    .argument("[cflags...]", "extra compiler flags, after --")
    .requiredOption("-t, --target <binary>", "the executable or library to patch")
    .option("-o, --output <patch>", "patch file to write (default: FIX with .graft)")
    .option("--compiler <cc>", "gcc or clang (default: what built the target)")
    .option("--after <patch...>", "patches that must be applied before this one")
    .option("--json", "print the manifest as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft build fix.c --target ./server                  writes fix.graft
  graft build fix.c -t /usr/sbin/nginx -o cve.graft -- -DNDEBUG -I src/include
  graft build fix2.c -t ./server --after fix.graft     a patch on top of another`,
    )
    .action(
      (
        fix: string,
        cflags: string[],
        opts: { target: string; output?: string; compiler?: string; after?: string[]; json: boolean },
      ) =>
        run(() => {
          const output = opts.output ?? `${fix.replace(/\.[^./]+$/, "")}.graft`;
          const built = buildPatchFile({
            fix,
            target: opts.target,
            output,
            extraFlags: cflags,
            ...(opts.compiler === undefined ? {} : { compiler: opts.compiler }),
            ...(opts.after === undefined ? {} : { after: opts.after }),
          });
          printResult(built, opts.json, (b) => {
            let out = `${b.output}: patch ${b.manifest.id} for ${b.manifest.target.file} (build-id ${b.manifest.target.buildId.slice(0, 12)}…), ${b.codeBytes} bytes of code\n`;
            for (const f of b.manifest.functions)
              out += `  replaces ${f.qualifiedName} at ${f.address} via ${f.kind}\n`;
            for (const i of b.imports) out += `  uses ${i.name} from ${i.from}\n`;
            for (const w of b.warnings) out += `  warning: ${w}\n`;
            return out;
          });
        }),
    );
}
