import type { Command } from "commander";
import { type AuditRecord, auditLogPath, readAuditLog } from "../../live/audit-log.js";
import { printResult } from "../output.js";
import { parsePid } from "../parse-pid.js";

function renderRecord(r: AuditRecord): string {
  const who = `${r.user.name ?? "?"}(${r.user.uid ?? "?"})`;
  const what = r.patch?.id ?? r.entries?.join(",") ?? r.patch?.file ?? "";
  const error = r.error === undefined ? "" : ` ${r.error.code}: ${r.error.message}`;
  return `${r.time} ${who} graft[${r.graftPid}] ${r.action} pid ${r.target.pid} (${r.target.exe}) ${what} → ${r.result}${error}\n`;
}

export function registerLog(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("log")
    .summary("show the audit log of every change graft made")
    .description(
      "Every apply, revert and call-site change graft made or refused, one line each: when, who, which\n" +
        "process (exe and build-id), which patch, and how it ended. The log is JSON lines, in the state\n" +
        "directory unless --audit-log FILE or $GRAFT_AUDIT_LOG says otherwise.",
    )
    .option("--pid <pid>", "only changes to this process")
    .option("-n, --last <count>", "only the last COUNT records", (v: string) => Number.parseInt(v, 10))
    .option("--json", "print the records as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft log --last 20
  graft log --pid $(pidof server) --json | jq '.records[] | select(.result != "ok")'`,
    )
    .action((opts: { pid?: string; last?: number; json: boolean }) =>
      run(() => {
        const pid = opts.pid === undefined ? undefined : parsePid(opts.pid);
        let records = readAuditLog().filter((r) => pid === undefined || r.target.pid === pid);
        if (opts.last !== undefined && opts.last >= 0) records = records.slice(-opts.last || records.length);
        printResult({ file: auditLogPath(), records }, opts.json, (x) =>
          x.records.map(renderRecord).join(""),
        );
      }),
    );
}
