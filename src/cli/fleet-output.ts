import type { FleetOptions, FleetResult } from "../live/fleet.js";
import { EXIT } from "./exit-codes.js";

/**
 * A progress bar on stderr while graft works through the processes of a binary: only on a
 * terminal and without --json (a pipe or a log gets the table alone).
 */
export function progressBar(json: boolean, label: string): FleetOptions["onProgress"] {
  if (json || !process.stderr.isTTY) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 50) return;
    last = now;
    const width = 30;
    const full = Math.round((done / total) * width);
    process.stderr.write(`\r${label} [${"#".repeat(full)}${".".repeat(width - full)}] ${done}/${total}`);
    if (done === total) process.stderr.write("\n");
  };
}

/** The per-process table and a summary line. */
export function renderFleet(r: FleetResult): string {
  const rows = r.processes.map((p) => [
    String(p.pid),
    p.outcome,
    p.pauseMs === undefined ? "" : p.pauseMs.toFixed(2),
    p.privateKiB === undefined ? "" : String(p.privateKiB),
    p.patches !== undefined ? p.patches.join(", ") || "-" : [p.code, p.message].filter((x) => x).join(": "),
  ]);
  const head = ["PID", "RESULT", "PAUSE ms", "PRIVATE KiB", r.operation === "status" ? "PATCHES" : "DETAIL"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    `${cells
      .map((c, i) =>
        i === cells.length - 1 ? c : i >= 2 && i <= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
      )
      .join("  ")
      .trimEnd()}\n`;
  let out = line(head);
  for (const row of rows) out += line(row);
  const counts = Object.entries(r.summary)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
  out += `${r.operation} on ${r.processes.length} process(es) of ${r.binary} (build-id ${r.buildId.slice(0, 12)}…): ${counts} in ${(r.totalMs / 1000).toFixed(2)} s, ${r.jobs} job(s)\n`;
  return out;
}

/** 0 when every process went through, 4 (partial) when some did, 3/1 when none did. */
export function fleetExitCode(r: FleetResult): number {
  const bad = r.processes.filter((p) =>
    ["failed", "refused", "gone", "skipped", "inconsistent"].includes(p.outcome),
  );
  if (bad.length === 0) return EXIT.OK;
  if (bad.length < r.processes.length) return EXIT.PARTIAL;
  return bad.every((p) => p.outcome === "refused") ? EXIT.REFUSED : EXIT.FAILED;
}
