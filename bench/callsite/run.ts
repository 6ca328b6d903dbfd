/**
 * bench:callsite — how long one call-site change stops a running process: the StopWindow of each
 * `changeCallSites` (first PTRACE_INTERRUPT → last PTRACE_DETACH, `windowNs`), over N changes (≥ 200)
 * that alternately NOP out and restore the logging call of the 4 worker threads of
 * test/scenarios/callsite/target.c (gcc -O2 PIE), which run through that call all the time. Prints
 * p50/p99/max of the window and of its parts (stop, held = graft's work, resume), and the wall time
 * of a whole change (analysis, checks, journal fsyncs included). A few warm-up changes are not counted.
 *
 *   npx tsx bench/callsite/run.ts [--changes N] [--threads T] [--nice K]   (npm run bench:callsite)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { changeCallSites, listCallSites, readElfFile, type StopWindow, x86_64 } from "../../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const TARGET = join(repoRoot, "test/scenarios/callsite/target.c");
const WARM_UP = 5;

function parseArgs(argv: readonly string[]): { changes: number; threads: number; nice: number } {
  const a = { changes: 200, threads: 4, nice: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = Number(argv[++i]);
    if (!Number.isInteger(v)) throw new Error(`${k} needs a whole number`);
    if (k === "--changes") a.changes = Math.max(200, v);
    else if (k === "--threads") a.threads = v;
    else if (k === "--nice") a.nice = v;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

/** The q-quantile (nearest rank) of sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const us = (ns: number): string => `${(ns / 1000).toFixed(0).padStart(7)} µs`;

function row(name: string, values: readonly number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `${name.padEnd(22)} p50 ${us(quantile(s, 0.5))}   p99 ${us(quantile(s, 0.99))}   max ${us(s[s.length - 1]!)}`;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "graft-bench-callsite-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  const exe = join(dir, "target");
  execFileSync("gcc", ["-O2", "-fPIE", "-pie", "-pthread", "-o", exe, TARGET]);
  // Started through sh so the target is not our child (libuv would reap its ptrace stops).
  const argv =
    args.nice === 0
      ? [exe, String(args.threads)]
      : ["nice", "-n", String(args.nice), exe, String(args.threads)];
  const pid = Number(
    execFileSync("sh", ["-c", '"$@" >/dev/null 2>&1 </dev/null & echo $!', "sh", ...argv], {
      encoding: "utf8",
    }).trim(),
  );
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // let the workers start
    const [site] = listCallSites(readElfFile(exe), x86_64, { to: "log_event", from: "worker" }).sites;
    if (site === undefined) throw new Error("no worker → log_event call in the target");
    const windows: StopWindow[] = [];
    const walls: number[] = [];
    for (let i = 0; i < args.changes + WARM_UP; i++) {
      const start = process.hrtime.bigint();
      const r = changeCallSites(pid, {
        site: site.address,
        action: { kind: i % 2 === 0 ? "nop" : "restore" },
      });
      const wall = Number(process.hrtime.bigint() - start);
      if (r.pause === undefined || r.sites[0]?.outcome !== "changed")
        throw new Error(`change ${i} changed nothing`);
      if (i < WARM_UP) continue;
      windows.push(r.pause);
      walls.push(wall);
    }
    // End restored (an odd count leaves the NOP in: put the call back).
    changeCallSites(pid, { site: site.address, action: { kind: "restore" } });
    process.stdout.write(
      [
        `bench:callsite — ${args.changes} changes (NOP / restore alternately) of one call site that ${args.threads} threads run through`,
        `target ${TARGET} (gcc -O2 PIE${args.nice === 0 ? "" : `, nice ${args.nice}`}), site ${site.caller} → ${site.targetName} at 0x${site.address.toString(16)}`,
        `machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), load ${loadavg()
          .map((l) => l.toFixed(2))
          .join(" ")}; realtime boost: ${windows.some((w) => w.realtime) ? "yes" : "no"}`,
        "",
        row(
          "stopped (windowNs)",
          windows.map((w) => w.windowNs),
        ),
        row(
          "  stop",
          windows.map((w) => w.stopNs),
        ),
        row(
          "  held (graft's work)",
          windows.map((w) => w.heldNs),
        ),
        row(
          "  resume",
          windows.map((w) => w.resumeNs),
        ),
        row("whole change (wall)", walls),
        "",
      ].join("\n"),
    );
  } finally {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
