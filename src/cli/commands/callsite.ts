import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import { type CallSiteAction, type CallSiteResult, changeCallSites } from "../../live/change-call-sites.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

const micros = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;

/** The human rendering of a call-site change. */
export function renderCallsite(r: CallSiteResult): string {
  const verb =
    r.action === "nop"
      ? "NOP out"
      : r.action === "retarget"
        ? `retarget to ${r.newTarget?.name} (${hex(r.newTarget?.address ?? 0n)})`
        : "restore";
  const changed = r.sites.filter((s) => s.outcome === "changed").length;
  let out = `${r.dryRun ? "dry run: would " : ""}${verb}: ${changed} of ${r.sites.length} call site(s) ${r.dryRun ? "change" : "changed"} in pid ${r.pid}\n`;
  out += `  module ${r.module} (bias ${hex(r.bias)})\n`;
  for (const s of r.sites) {
    const bytes = s.outcome === "changed" ? `${s.before} → ${s.after}` : `${s.after} (unchanged)`;
    out += `  ${hex(s.address)} (${hex(s.runtime)})  ${s.caller} → ${s.callee ?? "?"}  ${bytes}${s.entries.length > 0 ? `  [${s.entries.join(", ")}]` : ""}\n`;
  }
  if (r.pause !== undefined) {
    out += `  process stopped for ${micros(r.pause.windowNs)} (stop ${micros(r.pause.stopNs)}, work ${micros(r.pause.heldNs)}, resume ${micros(r.pause.resumeNs)})\n`;
  }
  return out;
}

/** A link-time address: hex, with or without 0x. */
function parseSite(text: string): bigint {
  if (!/^(0x)?[0-9a-f]+$/i.test(text)) {
    throw new GraftError("USAGE", `"${text}" is not a call-site address`, {
      hint: "pass the hex address graft calls FILE prints, e.g. 0x11a5",
    });
  }
  return BigInt(text.toLowerCase().startsWith("0x") ? text : `0x${text}`);
}

interface CallsiteOptions {
  to?: string;
  from?: string;
  nop: boolean;
  retarget?: string;
  restore: boolean;
  force: boolean;
  module?: string;
  dryRun: boolean;
  json: boolean;
}

export function registerCallsite(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("callsite")
    .summary("NOP out, retarget or restore calls in a running process")
    .description(
      "Rewrite one call (SITE, the link-time address graft calls prints) or every\n" +
        "call to a function (--to) in process PID, in one stop of all its threads:\n" +
        "--nop removes the call, --retarget makes it call another function of the file\n" +
        "or of an applied patch (patch-id:function), --restore puts back what graft\n" +
        "changed. The bytes at every site are verified first; a call whose result the\n" +
        "caller reads is not NOP'd out without --force. Journaled: graft status lists\n" +
        "the change, graft revert undoes it.",
    )
    .argument("<pid>", "process to change")
    .argument("[site]", "call site: link-time address in the file, hex (see graft calls)")
    .option("--to <func>", "every call to this function (name, name@plt) instead of one SITE")
    .option("--from <glob>", "with --to: only calls made by functions matching the glob")
    .option("--nop", "replace the call with one NOP of its length", false)
    .option("--retarget <func>", "call FUNC instead (a function of the file, or patch-id:function)")
    .option("--restore", "undo graft's changes to these call sites", false)
    .option("--force", "NOP out a call whose result is used; retarget the -pg -mfentry hook", false)
    .option("--module <file>", "the loaded file SITE is in (default: the main executable)")
    .option("-n, --dry-run", "verify and plan, change nothing", false)
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft callsite $(pidof server) --to log_request --nop             silence a logging call everywhere
  graft callsite 4242 0x11a5 --retarget parse_v2                    this one call now calls parse_v2
  graft callsite 4242 0x11a5 --retarget 1f2e3d4c5b6a7980:parse      …or the parse a patch loaded
  graft callsite 4242 --to log_request --from 'handle_*' --restore  the handlers log again
  graft callsite 4242 0x11a5 --nop --dry-run --json                 what would change, and would it work?`,
    )
    .action((pid: string, site: string | undefined, opts: CallsiteOptions) =>
      run(() => {
        const actions = [opts.nop, opts.retarget !== undefined, opts.restore].filter(Boolean).length;
        if (actions !== 1)
          throw new GraftError("USAGE", "give exactly one of --nop, --retarget FUNC, --restore");
        if ((site === undefined) === (opts.to === undefined))
          throw new GraftError("USAGE", "give a call site address or --to FUNC, not both or neither");
        if (opts.from !== undefined && opts.to === undefined)
          throw new GraftError("USAGE", "--from narrows --to; give --to FUNC as well");
        const action: CallSiteAction = opts.nop
          ? { kind: "nop" }
          : opts.restore
            ? { kind: "restore" }
            : { kind: "retarget", to: opts.retarget! };
        const result = changeCallSites(parsePid(pid), {
          action,
          ...(site === undefined ? {} : { site: parseSite(site) }),
          ...(opts.to === undefined ? {} : { to: opts.to }),
          ...(opts.from === undefined ? {} : { from: opts.from }),
          ...(opts.module === undefined ? {} : { module: opts.module }),
          force: opts.force,
          dryRun: opts.dryRun,
        });
        printResult(result, opts.json, renderCallsite);
      }),
    );
}
