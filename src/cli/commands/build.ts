import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import {
  type BuiltDiffPatch,
  buildPatchFromBuilds,
  buildPatchFromSourceDiff,
} from "../../live/build-diff-patch-file.js";
import { type BuiltPatch, buildPatchFile } from "../../live/build-patch-file.js";
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
        "statics: use name@file.c via GRAFT_LOCAL from graft.h when ambiguous) or to its libraries (libc).\n\n" +
        "With --orig/--patched (two .o files of one translation unit) or --diff/--src\n" +
        "(an upstream diff and the source tree), the patch holds what graft diff finds\n" +
        "changed and impacted, with the new functions and data they need; everything\n" +
        "else binds to the target's own symbols.",
    )
    .argument("[fix]", "C file holding the fixed function(s)")
    .argument("[cflags...]", "extra compiler flags, after --")
    .requiredOption("-t, --target <binary>", "the executable or library to patch")
    .option("-o, --output <patch>", "patch file to write (default: FIX with .graft)")
    .option("--compiler <cc>", "gcc or clang (default: what built the target)")
    .option("--after <patch...>", "patches that must be applied before this one")
    .option("--orig <o>", "the original translation unit, compiled (.o)")
    .option("--patched <o>", "the same unit with the fix, compiled with the same flags (.o)")
    .option("--diff <patch>", "a unified diff to apply to --src (patch -p1)")
    .option("--src <dir>", "the source tree the target was built from")
    .option("--cflags <flags>", "compile flags for --diff (default: the target's DW_AT_producer, else -O2)")
    .option("--skip-line-only", "leave out functions whose only change is an immediate (__LINE__)", false)
    .option("--json", "print the manifest as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft build fix.c --target ./server                  writes fix.graft
  graft build fix.c -t /usr/sbin/nginx -o cve.graft -- -DNDEBUG -I src/include
  graft build fix2.c -t ./server --after fix.graft     a patch on top of another
  graft build --orig old/http.o --patched new/http.o -t ./server -o cve.graft
  graft build --diff cve.patch --src ./server-src -t ./server --cflags "-O2 -fPIE"`,
    )
    .action(
      (
        fix: string | undefined,
        cflags: string[],
        opts: {
          target: string;
          output?: string;
          compiler?: string;
          after?: string[];
          orig?: string;
          patched?: string;
          diff?: string;
          src?: string;
          cflags?: string;
          skipLineOnly: boolean;
          json: boolean;
        },
      ) =>
        run(() => {
          const after = opts.after === undefined ? {} : { after: opts.after };
          let built: BuiltPatch | BuiltDiffPatch;
          if (opts.orig !== undefined || opts.patched !== undefined) {
            if (opts.orig === undefined || opts.patched === undefined || fix !== undefined)
              throw new GraftError("USAGE", "--orig and --patched go together, without a fix file");
            built = buildPatchFromBuilds({
              orig: opts.orig,
              patched: opts.patched,
              target: opts.target,
              output: opts.output ?? `${opts.patched.replace(/\.[^./]+$/, "")}.graft`,
              skipLineOnly: opts.skipLineOnly,
              ...after,
            });
          } else if (opts.diff !== undefined) {
            if (opts.src === undefined) throw new GraftError("USAGE", "--diff needs --src, the source tree");
            const flags =
              opts.cflags !== undefined
                ? opts.cflags.split(/\s+/).filter((f) => f !== "")
                : cflags.length > 0
                  ? cflags
                  : undefined;
            built = buildPatchFromSourceDiff({
              diff: opts.diff,
              src: opts.src,
              target: opts.target,
              output: opts.output ?? `${opts.diff.replace(/\.[^./]+$/, "")}.graft`,
              skipLineOnly: opts.skipLineOnly,
              ...(flags === undefined ? {} : { cflags: flags }),
              ...(opts.compiler === undefined ? {} : { compiler: opts.compiler }),
              ...after,
            });
          } else {
            if (fix === undefined)
              throw new GraftError("USAGE", "give a fix file, --orig/--patched, or --diff/--src");
            built = buildPatchFile({
              fix,
              target: opts.target,
              output: opts.output ?? `${fix.replace(/\.[^./]+$/, "")}.graft`,
              extraFlags: cflags,
              ...(opts.compiler === undefined ? {} : { compiler: opts.compiler }),
              ...after,
            });
          }
          const shown = "diff" in built ? { ...built, diff: undefined } : built;
          printResult(shown, opts.json, (b) => {
            let out = `${b.output}: patch ${b.manifest.id} for ${b.manifest.target.file} (build-id ${b.manifest.target.buildId.slice(0, 12)}…), ${b.codeBytes} bytes of code\n`;
            const why = new Map(
              ("replaces" in b ? b.replaces : []).map((r) => [r.name.replace(/@.*$/, ""), r.why]),
            );
            for (const f of b.manifest.functions)
              out += `  replaces ${f.qualifiedName} at ${f.address} via ${f.kind}${why.has(f.name) ? ` (${why.get(f.name)})` : ""}\n`;
            for (const i of b.imports) out += `  uses ${i.name} from ${i.from}\n`;
            for (const w of b.warnings) out += `  warning: ${w}\n`;
            return out;
          });
        }),
    );
}
